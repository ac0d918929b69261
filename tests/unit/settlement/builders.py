"""Small builders for engine tests: a hand-sized catalogue and claims in yuan."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from hub.reference.catalogue import Catalogue, CatalogueItem, ItemClass, OverCapRule
from hub.reference.policy import HospitalKind, InsuranceType, Level, Policy, SpecialPopulation, load_policies
from hub.settlement.domain.model import Accumulators, Claim, FeeLine, Filing, FilingType, Person, VisitType
from hub.settlement.domain.money import times_quantity, yuan_to_fen

REPO = Path(__file__).resolve().parents[3]
TREATMENT_POOL = "440100"
HOME = {"冠县": "371525", "佳木斯": "230800", "九江": "360400", "遂宁": "510900", "广州": "440100", "示例市": "999903", "district": "999901"}

# Item codes of the test catalogue: A 甲 drug, E 甲 essential drug, B 乙 (10 % self-pay first),
# C 丙, S 甲 service capped at 100.00 a unit (over-cap self-paid), M 乙 material capped at
# 1,000.00 (20 % first, over-cap absorbed by the hospital).
CATALOGUE = Catalogue(TREATMENT_POOL, "440100-test", {
    "A": CatalogueItem("A", "甲 drug", "DRUG", ItemClass.JIA),
    "E": CatalogueItem("E", "甲 essential drug", "DRUG", ItemClass.JIA, essential_drug=True),
    "B": CatalogueItem("B", "乙 drug", "DRUG", ItemClass.YI, self_pay_first_bp=1000),
    "C": CatalogueItem("C", "丙 drug", "DRUG", ItemClass.BING),
    "S": CatalogueItem("S", "capped service", "SERVICE", ItemClass.JIA, price_cap_fen=10_000),
    "M": CatalogueItem("M", "capped material", "MATERIAL", ItemClass.YI, self_pay_first_bp=2000,
                       price_cap_fen=100_000, over_cap_rule=OverCapRule.HOSPITAL_ABSORBS),
})


@lru_cache(maxsize=1)
def sample_policies() -> tuple[Policy, ...]:
    return tuple(load_policies(REPO / "reference" / "policies"))


def policy(version: str) -> Policy:
    return next(p for p in sample_policies() if p.policy_version == version)


def lines(*items: tuple[str, str] | tuple[str, str, str]) -> tuple[FeeLine, ...]:
    """(code, unit price in yuan[, quantity]) -> fee lines."""
    out = []
    for n, item in enumerate(items, start=1):
        code, price = item[0], item[1]
        qty = Decimal(item[2]) if len(item) > 2 else Decimal(1)
        unit = yuan_to_fen(price)
        out.append(FeeLine(n, code, qty, unit, times_quantity(unit, qty)))
    return tuple(out)


def claim(*items, level: str = "3", visit: VisitType = VisitType.INPATIENT, day: date = date(2026, 3, 10),
          accident: bool = False, pool: str = TREATMENT_POOL, diagnoses: tuple[str, ...] = (),
          kind: HospitalKind = HospitalKind.GENERAL) -> Claim:
    return Claim(visit, Level(level), pool, day, day, lines(*items), accident, diagnoses, kind)


def person(home: str, filing: FilingType | None = None, *, insurance: InsuranceType = InsuranceType.RESIDENT,
           pops: tuple[SpecialPopulation, ...] = (), years: int = 1, filing_to: date | None = None,
           target: str = TREATMENT_POOL) -> Person:
    filings = ()
    if filing is not None:
        filings = (Filing("F1", filing, target, date(2015, 1, 1), filing_to),)
    return Person("p_test", home, insurance, date(2015, 1, 1), date(2015, 1, 1), None, frozenset(pops), filings, years)


def acc(**fields_yuan) -> Accumulators:
    """Accumulators with money given in yuan; `admissions` as a count."""
    values = {k: (v if k == "admissions" else yuan_to_fen(str(v))) for k, v in fields_yuan.items()}
    return Accumulators(year=2026, **values)
