"""The funds clearing keeps apart. Pure: no I/O.

Employees' (职工, insutype 310) and residents' (居民, 390) insurance are separate funds, and a
settlement's three shares are paid from different pools of money; each is a `fund_pay_type` of
the national interface (the codes public HIS code reads in `setldetail`):

| share (engine)  | EMPLOYEE (310)                     | RESIDENT (390)                    |
|-----------------|------------------------------------|-----------------------------------|
| hifp_pay        | 310100 职工基本医疗保险统筹基金     | 390100 城乡居民基本医疗保险基金   |
| hifmi_pay       | 330100 职工大额医疗费用补助         | 390200 城乡居民大病医疗保险资金   |
| maf_pay         | 610100 医疗救助基金                  | 610100 医疗救助基金                |

Medical assistance is one fund, but is kept apart by insurance type like the others, so a
bureau books each insurance type's clearing on its own. The civil-servant subsidy (320100) is
not computed by the engine and never appears.
"""

from __future__ import annotations

from typing import NamedTuple

from hub.reference.policy import INSUTYPE_CODES  # noqa: F401  (clearing names a line's insutype by it)

SHARES = ("hifp_pay_fen", "hifmi_pay_fen", "maf_pay_fen")
FUND_PAY_TYPES = {
    "EMPLOYEE": ("310100", "330100", "610100"),
    "RESIDENT": ("390100", "390200", "610100"),
}
FUND_NAMES = {
    "310100": "职工基本医疗保险统筹基金", "330100": "职工大额医疗费用补助", "390100": "城乡居民基本医疗保险基金",
    "390200": "城乡居民大病医疗保险资金", "610100": "医疗救助基金",
}


class Fund(NamedTuple):
    """One fund as clearing keeps it: the insurance type's code and the fund_pay_type."""

    insutype: str  # 310, 390
    fund_pay_type: str  # 310100 ...

    @property
    def name(self) -> str:
        return FUND_NAMES[self.fund_pay_type]

    @property
    def key(self) -> str:
        return f"{self.insutype}-{self.fund_pay_type}"


def funds_of(insurance_type: str) -> tuple[Fund, Fund, Fund]:
    """The funds a settlement of this insurance type pays its three shares from, in SHARES order."""
    code = INSUTYPE_CODES[insurance_type]
    a, b, c = FUND_PAY_TYPES[insurance_type]
    return Fund(code, a), Fund(code, b), Fund(code, c)
