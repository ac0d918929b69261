"""Money is integer fen. Conversions from yuan are exact; every rounding is half-up, in one place."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

BP = 10_000  # basis points in 100 %
MAX_AMOUNT_FEN = 10**12  # 10 billion yuan: far above any bill, far below int64 overflow in sums


class AmountError(ValueError):
    """A money amount that cannot be converted exactly; the message says why."""


def div_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half-up, for non-negative integers."""
    if numerator < 0 or denominator <= 0:
        raise ValueError(f"div_half_up needs numerator >= 0 and denominator > 0, got {numerator}/{denominator}")
    return (2 * numerator + denominator) // (2 * denominator)


def apply_bp(amount_fen: int, ratio_bp: int) -> int:
    """amount × ratio, rounded half-up to the fen."""
    return div_half_up(amount_fen * ratio_bp, BP)


def yuan_to_fen(value: object, field: str = "amount") -> int:
    """A yuan amount from the interface (decimal string or integer, at most 2 decimals) as fen.

    Floats are refused: 0.1 + 0.2 is not 0.3, and a bill must add up to the fen.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise AmountError(f"{field}: send yuan as a decimal string such as \"12.50\", not a {type(value).__name__}")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise AmountError(f"{field}: {value!r} is not a yuan amount") from None
    else:
        raise AmountError(f"{field}: {value!r} is not a yuan amount")
    if not amount.is_finite() or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise AmountError(f"{field}: {value!r} has more than 2 decimals")
    if abs(amount) * 100 > MAX_AMOUNT_FEN:
        raise AmountError(f"{field}: {value!r} is larger than {MAX_AMOUNT_FEN // 100} yuan")
    return int(amount * 100)


def fen_to_yuan(fen: int) -> str:
    """Fen as the interface's yuan string with exactly 2 decimals."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def quantity(value: object, field: str = "cnt") -> Decimal:
    """A line quantity: positive, at most 4 decimals (the national interface allows fractions)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise AmountError(f"{field}: send quantities as a decimal string or an integer")
    try:
        q = Decimal(str(value).strip())
    except InvalidOperation:
        raise AmountError(f"{field}: {value!r} is not a quantity") from None
    if not q.is_finite() or q <= 0 or q > 1_000_000 or q.as_tuple().exponent < -4:  # type: ignore[operator]
        raise AmountError(f"{field}: {value!r} must be positive, at most 1000000, with at most 4 decimals")
    return q


def times_quantity(unit_fen: int, qty: Decimal) -> int:
    """unit price × quantity in fen, half-up (exact for whole quantities)."""
    exact = Decimal(unit_fen) * qty
    return int(exact.to_integral_value(rounding="ROUND_HALF_UP"))
