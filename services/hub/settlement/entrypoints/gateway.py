"""Who is calling, and what they sent: the platform gateway's signed headers (or a Bearer
token), and the body read as JSON with every number exact.

The gateway (as public HIS code signs for the national platform):

    x-tif-paasid     the hospital's paas id
    x-tif-timestamp  unix seconds
    x-tif-nonce      a string used once
    x-tif-signature  sha256_hex(timestamp + paas token + nonce + timestamp)

A timestamp more than `max_skew_s` from the hub's clock is refused, and so is a nonce seen
before within twice that window (a captured request cannot be replayed): that check is awaited
(adapters/nonces.py), never run on the event loop's own time. `Authorization:
Bearer <token>` stays accepted (the hub's own clients and tools).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Any, Awaitable, Callable, Protocol

import orjson

from hub.settlement.service_layer.identity import Hospital, HospitalRegistry


class Nonces(Protocol):
    def first_use(self, paasid: str, nonce: str, ttl_s: int) -> Awaitable[bool]: ...

_HEADERS = (b"x-tif-paasid", b"x-tif-timestamp", b"x-tif-nonce", b"x-tif-signature")


def signature(timestamp: str, paas_token: str, nonce: str) -> str:
    return hashlib.sha256(f"{timestamp}{paas_token}{nonce}{timestamp}".encode()).hexdigest()


class Gateway:
    def __init__(self, hospitals: HospitalRegistry, nonces: Nonces, max_skew_s: int = 300,
                 clock: Callable[[], float] = time.time):
        self.hospitals = hospitals
        self.nonces = nonces
        self.max_skew_s = max_skew_s
        self.clock = clock

    async def authenticate(self, headers: list[tuple[bytes, bytes]]) -> Hospital | str:
        """The calling hospital, or why it is not recognised (a message for the caller)."""
        found: dict[bytes, bytes] = {}
        for name, value in headers:
            if name == b"authorization" or name in _HEADERS:  # ASGI header names are lower-case
                found[name] = value
        if b"x-tif-signature" in found:
            checked = self._signed(found)
            if isinstance(checked, str):
                return checked
            hospital, paasid, nonce = checked
            if not await self.nonces.first_use(paasid, nonce, 2 * self.max_skew_s):
                return "x-tif-nonce was used before: a signed request is accepted once"
            return hospital
        auth = found.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            hospital = self.hospitals.authenticate(auth[7:].decode("latin-1"))
            if hospital is not None:
                return hospital
            return "the Bearer token is not one the hub issued"
        return ("sign the request with the gateway headers x-tif-paasid, x-tif-timestamp, x-tif-nonce and "
                "x-tif-signature (or send 'Authorization: Bearer <token>')")

    def _signed(self, found: dict[bytes, bytes]) -> tuple[Hospital, str, str] | str:
        """(hospital, paasid, nonce) of a correctly signed, current request; or why not."""
        try:
            paasid, timestamp, nonce, sent = (found[h].decode("ascii") for h in _HEADERS)
        except (KeyError, UnicodeDecodeError):
            return "x-tif-paasid, x-tif-timestamp, x-tif-nonce and x-tif-signature go together, in ASCII"
        known = self.hospitals.paas(paasid)
        if known is None:
            return f"x-tif-paasid {paasid[:40]!r} is not a hospital of the hub"
        hospital, token = known
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > self.max_skew_s:
            return f"x-tif-timestamp: unix seconds within {self.max_skew_s} s of the hub's clock"
        if not 1 <= len(nonce) <= 64:
            return "x-tif-nonce: 1 to 64 characters"
        if not hmac.compare_digest(sent.lower(), signature(timestamp, token, nonce)):
            return "x-tif-signature does not match sha256(timestamp + paas token + nonce + timestamp)"
        return hospital, paasid, nonce


def parse_body(raw: bytes) -> Any:
    """The request's JSON. Numbers with a fraction or an exponent become Decimal, read from their
    text (never through a binary float): public HIS code sends amounts as JSON numbers
    (`"pric": 12.5`), and 0.1 + 0.2 must stay 0.30. Raises ValueError if it is not JSON."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None
    if _has_float(value):
        return json.loads(raw, parse_float=Decimal)
    return value


MAX_JSON_DEPTH = 64  # far above the convention's nesting (the service refuses beyond 8)


def _has_float(value: Any) -> bool:
    """Whether a fraction is anywhere in the document; an iterative walk, so a hostile nesting
    cannot exhaust the stack (anything deeper than MAX_JSON_DEPTH is refused as not JSON)."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, float):
            return True
        if isinstance(node, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return False
