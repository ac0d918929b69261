"""Shared kernel: the medical-insurance e-voucher (医保电子凭证, mdtrt_cert_type 01) as the hub
models it.

The home region's voucher service issues a short-lived token to the insured person's phone;
the hospital scans it and presents it as `mdtrt_cert_no`. Here the issuer is the registration
service (the home bureaus' side of the hub) and the verifier the settlement service; they share
the voucher key (`HUB_VOUCHER_KEY`). A token names the person only by `person_ref` and carries
its home pool and expiry, under an HMAC: it opens nothing by itself, and a changed character
makes it worthless.

    <home pool, 6 digits> "EC" <expiry, unix seconds, base 36> "." <person_ref> "." <signature, 32 hex>
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

TTL_S = 600  # reading: a scanned code is good for ten minutes (DESIGN.md names no figure; see README)
MAX_TOKEN_LEN = 128


@dataclass(frozen=True)
class Voucher:
    home_pool: str
    person_ref: str
    expires_at: int  # unix seconds


def _signature(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]


def issue(key: bytes, home_pool: str, person_ref: str, now_s: float, ttl_s: int = TTL_S) -> tuple[str, int]:
    """A token for the person, and when it expires."""
    expires = int(now_s) + ttl_s
    body = f"{home_pool}EC{_base36(expires)}.{person_ref}"
    return f"{body}.{_signature(key, body)}", expires


def verify(key: bytes, token: str, now_s: float) -> Voucher | str:
    """The voucher a token stands for, or why it does not: 'malformed', 'forged' or 'expired'."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LEN or token.count(".") != 2:
        return "malformed"
    body, _, signature = token.rpartition(".")
    head, _, ref = body.partition(".")
    if len(head) < 9 or head[6:8] != "EC" or not head[:6].isdigit() or not ref.startswith("p_"):
        return "malformed"
    if not hmac.compare_digest(signature, _signature(key, body)):
        return "forged"
    try:
        expires = int(head[8:], 36)
    except ValueError:
        return "malformed"
    if now_s > expires:
        return "expired"
    return Voucher(head[:6], ref, expires)


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
