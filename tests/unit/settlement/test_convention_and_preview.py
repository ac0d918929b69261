"""The national-convention edge and the offline preview (`hub settle preview`), no servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.settlement.domain.money import AmountError, fen_to_yuan, yuan_to_fen
from hub.settlement.service_layer.convention import ConventionError, claim_from, mask_person_id

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "claim-inpatient.json"
MDTRT = {"med_type": "21", "mdtrtarea_admvs": "440100", "hosp_lv": "3", "begntime": "2026-03-10"}


@pytest.mark.parametrize("value,fen", [("12.50", 1250), ("0.01", 1), (7, 700), ("100", 10000), ("-3.10", -310)])
def test_yuan_converts_exactly(value, fen):
    assert yuan_to_fen(value) == fen
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


@pytest.mark.parametrize("value", [12.5, "1.005", "abc", "NaN", True, None, "1e400"])
def test_bad_yuan_is_refused(value):
    with pytest.raises(AmountError):
        yuan_to_fen(value)


BAD_CLAIMS = [
    ("float price", [{"med_list_codg": "A", "cnt": "1", "pric": 1.5}], MDTRT, "invalid_field"),
    ("three decimals", [{"med_list_codg": "A", "cnt": "1", "pric": "1.005"}], MDTRT, "invalid_amount"),
    ("zero quantity", [{"med_list_codg": "A", "cnt": "0", "pric": "1"}], MDTRT, "invalid_amount"),
    ("sum that does not match", [{"med_list_codg": "A", "cnt": "2", "pric": "1", "det_item_fee_sumamt": "3"}], MDTRT, "amount_mismatch"),
    ("no lines", [], MDTRT, "invalid_field"),
    ("unknown med_type", [{"med_list_codg": "A", "cnt": "1", "pric": "1"}], {**MDTRT, "med_type": "99"}, "invalid_field"),
    ("region not 6 digits", [{"med_list_codg": "A", "cnt": "1", "pric": "1"}], {**MDTRT, "mdtrtarea_admvs": "4401"}, "invalid_field"),
    ("bad level", [{"med_list_codg": "A", "cnt": "1", "pric": "1"}], {**MDTRT, "hosp_lv": "7P"}, "invalid_field"),
]


@pytest.mark.parametrize("name,fees,mdtrt,code", BAD_CLAIMS, ids=[b[0] for b in BAD_CLAIMS])
def test_bad_claims_are_refused_with_a_stable_code(name, fees, mdtrt, code):
    with pytest.raises(ConventionError) as err:
        claim_from(mdtrt, fees)
    assert err.value.code == code


def test_national_level_codes_and_timestamps_are_understood():
    claim = claim_from({**MDTRT, "hosp_lv": "02", "begntime": "2026-03-10 09:30:00", "endtime": "2026-03-12 10:00:00"},
                       [{"med_list_codg": "A", "cnt": "1.5", "pric": "0.33"}])
    assert claim.hospital_level.value == "3"
    assert (claim.admission_date.day, claim.discharge_date.day) == (10, 12)
    assert claim.lines[0].amount_fen == 50  # 1.5 x 33 = 49.5 -> 50, half-up


def test_a_preview_claim_carries_its_diagnoses_and_hospital_kind():
    claim = claim_from({**MDTRT, "med_type": "14", "dise_codg": "N18.500", "diag_codes": ["I10.x00", "N18.500"],
                        "hospital_kind": "TCM"}, [{"med_list_codg": "A", "cnt": "1", "pric": "1"}])
    assert (claim.diagnoses, claim.hospital_kind.value) == (("N18.500", "I10.x00"), "TCM")
    with pytest.raises(ConventionError):
        claim_from({**MDTRT, "hospital_kind": "SPA"}, [{"med_list_codg": "A", "cnt": "1", "pric": "1"}])


def test_person_ids_are_masked():
    assert mask_person_id("360402199001011234") == "3604**********1234"
    assert mask_person_id("1234") == "****"


def test_preview_prints_the_settlement_in_the_interface_field_names():
    result = CliRunner().invoke(app, ["settle", "preview", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)["output"]["setlinfo"]
    # Bed 5 x 60.00 capped at 5 x 58.62 (6.90 over); surgery 2000.00 capped at 1937.81 (62.19 over);
    # 乙 drug 350.00 with 5 % first (17.50); unknown item 80.00 self-paid; in scope 2931.41.
    # 九江 referral outside the city: deductible 600, 50 %: (2931.41 - 600) x 50 % = 1165.705 -> 1165.71
    assert out["medfee_sumamt"] == "3098.00"
    assert out["overlmt_selfpay"] == "69.09"
    assert out["inscp_scp_amt"] == "2931.41"
    assert out["hifp_pay"] == "1165.71"
    assert out["psn_part_amt"] == "1932.29"
    assert "360402199001011234" not in result.output


def test_preview_answers_a_refusal_with_its_code(tmp_path):
    claim = json.loads(EXAMPLE.read_text())
    claim["psn"]["enrolled_from"] = "2027-01-01"
    path = tmp_path / "claim.json"
    path.write_text(json.dumps(claim))
    result = CliRunner().invoke(app, ["settle", "preview", str(path)])
    assert result.exit_code == 1
    assert json.loads(result.output)["err_code"] == "person_not_enrolled"


def test_preview_refuses_a_broken_policy_directory_listing_every_error(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "catalogues").mkdir()
    (tmp_path / "policies" / "bad.yaml").write_text(
        "pool_code: '12'\npool_name: x\ninsurance_type: RESIDENT\npolicy_version: v\neffective_from: 2026-01-01\n"
        "sources: [s]\ninpatient: {deductible_by_level: {'1': 1.5, '2': 1, '3': 1}, ratio_by_level: {'1': 80}}\n")
    result = CliRunner().invoke(app, ["settle", "preview", str(EXAMPLE), "--reference", str(tmp_path)])
    assert result.exit_code == 2
    for path in ("pool_code", "inpatient.deductible_by_level.1", "inpatient"):
        assert f"bad.yaml: {path}" in result.output
