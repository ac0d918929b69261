"""Shared kernel: money is integer fen; yuan strings convert to and from it exactly, in one place."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_AMOUNT_FEN = 10**12  # 10 billion yuan: far above any bill, far below int64 overflow in sums


class AmountError(ValueError):
    """A money amount that cannot be converted exactly; the message says why."""


def yuan_to_fen(value: object, field: str = "amount") -> int:
    """A yuan amount from the interface (a decimal string, an integer, or a JSON number read
    exactly as a Decimal; at most 2 decimals) as fen.

    Binary floats are refused: 0.1 + 0.2 is not 0.3, and a bill must add up to the fen (the
    hospital edge reads JSON numbers as Decimal from their text, so none reach here).
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise AmountError(f"{field}: send yuan as a decimal string such as \"12.50\", not a {type(value).__name__}")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
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


