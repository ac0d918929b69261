"""What a visit's transactions read from a request's data — whether the care was an accident
without a liable third party, the bill's last day, the diagnoses — and what an answer carries: a reversal's, the person's sealed details."""

from __future__ import annotations

from datetime import date
from typing import Any

from hub.settlement.adapters.repository import StoredSettlement, Visit
from hub.settlement.domain.money import yuan_to_fen
from hub.settlement.service_layer import convention
from hub.settlement.service_layer.envelope import SEALED, SHANGHAI, Answer
from hub.settlement.service_layer.people import PersonShown
from hub.settlement.service_layer.reasons import Why
def reversal_output(row: StoredSettlement, reversal_id: str, now) -> dict:
    """2208/2305 as the convention answers it: the reversal as a settlement of its own (its own
    `setl_id`; every amount the original's, negated, so the two net to zero), its fund lines
    likewise; the settlement it reverses in the hub's extension `hub_reversal`."""
    def negated(value: str) -> str:
        return convention.fen_to_yuan(-yuan_to_fen(value))

    setlinfo = dict(row.output["setlinfo"])
    for key in convention.SETLINFO_AMOUNTS:
        if key in setlinfo:
            setlinfo[key] = negated(setlinfo[key])
    setlinfo.update(setl_id=reversal_id, setl_time=now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"))
    setldetail = [{**d, **{k: negated(d[k]) for k in ("inscp_scp_amt", "crt_payb_lmt_amt", "fund_payamt")}}
                  for d in row.output.get("setldetail", [])]
    out = {"setlinfo": setlinfo, "setldetail": setldetail,
           "hub_reversal": {"setl_id": row.setl_id, "reversal_id": reversal_id, "status": "REVERSED"}}
    if row.output.get(SEALED):
        out[SEALED] = row.output[SEALED]
    return out


def sealed(output: dict, holder: PersonShown) -> dict:
    """The answer with the person's sealed details beside it (for `reveal`, and for a replay)."""
    if holder.sealed:
        output[SEALED] = holder.sealed
    return output


def accident(med_type: str, data: dict) -> bool:
    """An accident without a liable third party: med_type 22 (外伤住院), or the convention's
    trum_flag 1 (外伤) without rel_ttp_flag 1 (涉及第三方), or the hub's own accident_injury."""
    if med_type in convention.ACCIDENT_MED_TYPES or data.get("accident_injury") in (True, "1", 1, "true"):
        return True
    return str(data.get("trum_flag", "")) == "1" and str(data.get("rel_ttp_flag", "")) != "1"


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def end_day(data: dict, visit: Visit) -> date | None:
    """The bill's last day: the input's endtime (or enddate), else the discharge (2402), else the
    day the visit began."""
    end = data.get("endtime") or data.get("enddate")
    return convention.parse_day(end) if end else (visit.endtime or visit.begntime)


def diagnosis_codes(data: dict, payload: dict) -> str:
    """The visit's diagnosis codes, space-separated, in the order sent: the 病种 `dise_codg` (or
    the discharge's main diagnosis `dscg_maindiag_code`), then every `diseinfo` code."""
    codes = [data.get(name) for name in ("dise_codg", "dscg_maindiag_code")]
    diseinfo = payload.get("diseinfo")
    if isinstance(diseinfo, list):
        codes += [d.get("diag_code") for d in diseinfo if isinstance(d, dict)]
    return " ".join(dict.fromkeys(c.strip()[:32] for c in codes if isinstance(c, str) and c.strip() and " " not in c.strip()))


def check_diagnoses(payload: dict, required: bool = False) -> None:
    """`diseinfo` (when sent, or `required`): a list of diagnoses, each with its code."""
    diseinfo = payload.get("diseinfo")
    if diseinfo is None and not required:
        return
    if not isinstance(diseinfo, list) or not diseinfo or not all(isinstance(d, dict) for d in diseinfo):
        raise Answer(Why.INVALID_INPUT, "input.diseinfo: a list of diagnoses")
    for n, d in enumerate(diseinfo):
        if not isinstance(d.get("diag_code"), str) or not d["diag_code"].strip():
            raise Answer(Why.INVALID_FIELD, f"diseinfo.{n}.diag_code: the diagnosis code")
