"""A treatment pool's catalogue (目录) as data: which items are covered, in which class, at what cap.

One CSV per pool and version, `reference/catalogues/<pool>-<version>.csv` (UTF-8), columns:

    item_code,item_name,item_kind,item_class,self_pay_first_pct,price_cap_yuan,over_cap_rule,essential_drug

and, optionally, `former_code`: the item's code in an earlier version, still accepted for it
(a HIS that mapped its items to the old code keeps working; answers name the current code).

`item_class` is 甲/乙/丙 (or JIA/YI/BING); `self_pay_first_pct` the 乙 self-pay-first share;
`price_cap_yuan` empty for no cap; `over_cap_rule` SELF_PAY (the over-cap part is the
patient's) or HOSPITAL_ABSORBS (the hospital may not charge it: it is cut from the bill's
eligible amount and from the patient's share alike); `essential_drug` 1 for 基本药物.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from hub.reference.policy import _percent_to_bp, _yuan_to_fen

COLUMNS = ("item_code", "item_name", "item_kind", "item_class", "self_pay_first_pct",
           "price_cap_yuan", "over_cap_rule", "essential_drug")
_CLASS_WORDS = {"甲": "JIA", "乙": "YI", "丙": "BING", "JIA": "JIA", "YI": "YI", "BING": "BING"}


class ItemClass(str, Enum):
    JIA = "JIA"
    YI = "YI"
    BING = "BING"


class OverCapRule(str, Enum):
    SELF_PAY = "SELF_PAY"
    HOSPITAL_ABSORBS = "HOSPITAL_ABSORBS"


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    item_code: str
    item_name: str
    item_kind: str
    item_class: ItemClass
    self_pay_first_bp: int = 0
    price_cap_fen: int | None = None
    over_cap_rule: OverCapRule = OverCapRule.SELF_PAY
    essential_drug: bool = False
    former_code: str = ""  # its code in an earlier catalogue version, still accepted


@dataclass(frozen=True)
class Catalogue:
    pool_code: str
    catalogue_version: str
    items: dict[str, CatalogueItem]
    former: dict[str, str] = field(default_factory=dict)  # former code -> current code

    def __post_init__(self) -> None:
        if not self.former:
            self.former.update({i.former_code: code for code, i in self.items.items() if i.former_code})

    def get(self, code: str) -> CatalogueItem | None:
        item = self.items.get(code)
        if item is None and code in self.former:
            return self.items.get(self.former[code])
        return item


class CatalogueFileError(ValueError):
    def __init__(self, source: str, errors: list[str]):
        super().__init__(f"{source}: {len(errors)} error(s)\n" + "\n".join(f"  {e}" for e in errors[:50]))
        self.source = source
        self.errors = errors


def parse_item(row: dict[str, str]) -> CatalogueItem:
    """One CSV row as an item; ValueError says what is wrong."""
    code = (row.get("item_code") or "").strip()
    if not code:
        raise ValueError("item_code is empty")
    cls = _CLASS_WORDS.get((row.get("item_class") or "").strip().upper() or (row.get("item_class") or "").strip())
    if cls is None:
        raise ValueError(f"item_class must be 甲, 乙 or 丙, not {row.get('item_class')!r}")
    share = (row.get("self_pay_first_pct") or "0").strip() or "0"
    cap = (row.get("price_cap_yuan") or "").strip()
    rule = (row.get("over_cap_rule") or "SELF_PAY").strip() or "SELF_PAY"
    if rule not in OverCapRule.__members__:
        raise ValueError(f"over_cap_rule must be SELF_PAY or HOSPITAL_ABSORBS, not {rule!r}")
    essential = (row.get("essential_drug") or "0").strip()
    if essential not in ("0", "1", ""):
        raise ValueError(f"essential_drug is 0 or 1, not {essential!r}")
    self_pay_first_bp = _percent_to_bp(share)
    if cls != "YI" and self_pay_first_bp:
        raise ValueError("only 乙 items have a self-pay-first share")
    return CatalogueItem(
        item_code=code,
        item_name=(row.get("item_name") or "").strip(),
        item_kind=(row.get("item_kind") or "OTHER").strip().upper() or "OTHER",
        item_class=ItemClass(cls),
        self_pay_first_bp=self_pay_first_bp,
        price_cap_fen=_yuan_to_fen(cap) if cap else None,
        over_cap_rule=OverCapRule(rule),
        essential_drug=essential == "1",
        former_code=(row.get("former_code") or "").strip(),
    )


def load_catalogue_file(path: Path) -> Catalogue:
    stem = path.stem
    pool_code = stem.split("-", 1)[0]
    if len(pool_code) != 6 or not pool_code.isdigit() or "-" not in stem:
        raise CatalogueFileError(str(path), ["(file): name it <6-digit pool>-<version>.csv"])
    items: dict[str, CatalogueItem] = {}
    formers: set[str] = set()
    errors: list[str] = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CatalogueFileError(str(path), [f"(header): missing columns {', '.join(missing)}"])
        for line_no, row in enumerate(reader, start=2):
            try:
                item = parse_item(row)
            except ValueError as exc:
                errors.append(f"line {line_no}: {exc}")
                continue
            if item.item_code in items:
                errors.append(f"line {line_no}: item_code {item.item_code} appears twice")
            if item.former_code and (item.former_code in formers or item.former_code in items):
                errors.append(f"line {line_no}: former_code {item.former_code} names another item too")
            formers.add(item.former_code)
            items[item.item_code] = item
    if errors:
        raise CatalogueFileError(str(path), errors)
    return Catalogue(pool_code, stem, items)


def load_catalogues(directory: Path) -> list[Catalogue]:
    return [load_catalogue_file(p) for p in sorted(directory.glob("*.csv"))]
