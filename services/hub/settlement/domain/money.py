"""Money is integer fen. Conversions from yuan are exact; every rounding is half-up, in one place."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from hub.money import MAX_AMOUNT_FEN, AmountError, fen_to_yuan, yuan_to_fen  # noqa: F401  (the kernel's, used here)

BP = 10_000  # basis points in 100 %


def div_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half-up, for non-negative integers."""
    if numerator < 0 or denominator <= 0:
        raise ValueError(f"div_half_up needs numerator >= 0 and denominator > 0, got {numerator}/{denominator}")
    return (2 * numerator + denominator) // (2 * denominator)


def apply_bp(amount_fen: int, ratio_bp: int) -> int:
    """amount × ratio, rounded half-up to the fen."""
    return div_half_up(amount_fen * ratio_bp, BP)


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
