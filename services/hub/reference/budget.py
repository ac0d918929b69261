"""A bureau's yearly off-site budget per fund, as data (reference/budgets/<pool>-<version>.yaml):
what the fund-risk watch (基金运行风险预警) compares off-site spending with.

    pool_code: "371525"
    budget_version: 371525-2026.1      # a correction is a new version; the newest in force wins
    year: 2026
    funds:                              # fund_pay_type -> yuan for the year's off-site care
      "390100": 12000000
      "390200": 1500000
    source: "冠县医保局 2026 年度基金预算 (sample)"

Money in yuan (integer or a decimal string, at most 2 decimals), held as fen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from hub.reference.policy import Fen, PolicyFileError, Strict

FUND_PAY_TYPES = ("310100", "330100", "390100", "390200", "610100")


class Budget(Strict):
    pool_code: str = Field(pattern=r"^[0-9]{6}$")
    budget_version: str = Field(min_length=1, max_length=64)
    year: int = Field(ge=2000, le=2100)
    funds: dict[str, Fen] = Field(min_length=1)
    source: str = Field(min_length=1)

    @field_validator("funds")
    @classmethod
    def _known_funds(cls, funds: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(funds) - set(FUND_PAY_TYPES))
        if unknown:
            raise ValueError(f"unknown fund_pay_type {', '.join(unknown)}: one of {', '.join(FUND_PAY_TYPES)}")
        if any(v <= 0 for v in funds.values()):
            raise ValueError("a budget is a positive amount")
        return funds


def load_budgets(directory: Path) -> list[Budget]:
    """Every budget file in `directory` (none when it does not exist); all errors together."""
    import yaml

    budgets, errors = [], []
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        try:
            document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
            budgets.append(Budget.model_validate(document))
        except ValidationError as exc:
            errors += [f"{path.name}: {'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()]
        except yaml.YAMLError as exc:
            errors.append(f"{path.name}: not valid YAML: {exc}")
    seen = set()
    for b in budgets:
        if b.budget_version in seen:
            errors.append(f"budget version {b.budget_version} appears twice")
        seen.add(b.budget_version)
    if errors:
        raise PolicyFileError(str(directory), errors)
    return budgets


def in_force(budgets: list[Budget], pool: str, year: int) -> Budget | None:
    """The pool's budget for the year: its newest version."""
    mine = [b for b in budgets if b.pool_code == pool and b.year == year]
    return max(mine, key=lambda b: b.budget_version) if mine else None
