"""The sample catalogues: codes in the national shape a HIS maps its items to, and each item's
code of the previous version still accepted for it (reference/make_sample_catalogues.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.reference.catalogue import CatalogueFileError, load_catalogue_file, load_catalogues
from hub.settlement.adapters.read_model import pack_item, unpack_item

REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "catalogues"
NATIONAL = {"DRUG": re.compile(r"^X[A-Z]\d{2}[A-Z]{2}A\d{3}A\d{3}\d{4}\d{5}$"),  # XJ01CAA040A001010102699
            "SERVICE": re.compile(r"^\d{15}$"), "MATERIAL": re.compile(r"^C\d{19}$")}


@pytest.mark.parametrize("catalogue", load_catalogues(REFERENCE), ids=lambda c: c.catalogue_version)
def test_every_code_has_the_national_shape_and_its_former_code_names_the_same_item(catalogue):
    for code, item in catalogue.items.items():
        assert NATIONAL[item.item_kind].match(code), code
        assert item.former_code and catalogue.get(item.former_code) is item
    assert catalogue.get("XJ01CAA001A001010101001").item_name.startswith("阿莫西林片")
    assert catalogue.get("X00001E78900") is catalogue.get("XJ01CAA001A001010101001")  # 2024.1's code


def test_a_former_code_naming_two_items_is_refused(tmp_path):
    source = (REFERENCE / "440100-2024.2.csv").read_text(encoding="utf-8").splitlines()
    header, first, second = source[0], source[1].split(","), source[2].split(",")
    second[1] = first[1]  # the second item claims the first one's former code
    path = tmp_path / "440100-2099.1.csv"
    path.write_text("\n".join([header, ",".join(first), ",".join(second)]) + "\n", encoding="utf-8")
    with pytest.raises(CatalogueFileError, match="former_code"):
        load_catalogue_file(path)


def test_the_read_model_keeps_the_former_code_and_reads_items_packed_before_it():
    value = {"item_class": "YI", "self_pay_first_share_bp": 1000, "price_cap_fen": 2350, "over_cap_rule": "SELF_PAY",
             "essential_drug": True, "item_kind": "DRUG", "former_code": "X00004E88300", "item_name": "阿莫西林胶囊"}
    item = unpack_item("XJ01CAA001A002020101001", pack_item(value))
    assert (item.former_code, item.item_name, item.price_cap_fen, item.essential_drug) == (
        "X00004E88300", "阿莫西林胶囊", 2350, True)
    old = "\x1f".join(["YI", "1000", "2350", "SELF_PAY", "1", "DRUG", "阿莫西林胶囊"])
    assert (unpack_item("X", old).former_code, unpack_item("X", old).item_name) == ("", "阿莫西林胶囊")
