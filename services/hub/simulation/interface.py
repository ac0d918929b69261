"""What the simulated hospitals and bureaus share: the national interface's path and the gateway's
signed headers, the visit id in an answer, a weighted choice, and yuan for the summary."""

from __future__ import annotations

import hashlib
import random
import secrets
import time

from hub import money

CONVENTION_PATH = "/fsi/api/rsfComIntfaceService/commInterface"


def gateway_headers(paasid: str, paas_token: str) -> dict[str, str]:
    """The platform gateway's signed headers, as a HIS sends them."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
    signature = hashlib.sha256(f"{timestamp}{paas_token}{nonce}{timestamp}".encode()).hexdigest()
    return {"x-tif-paasid": paasid, "x-tif-timestamp": timestamp, "x-tif-nonce": nonce, "x-tif-signature": signature}


def visit_id(body: dict) -> str:
    """The visit id in a 2201 answer (node `data`) or a 2401 answer (node `result`)."""
    output = body["output"]
    return (output.get("data") or output["result"])["mdtrt_id"]


def weighted(rnd: random.Random, mix):
    x, acc = rnd.random(), 0.0
    for value, weight in mix:
        acc += weight
        if x < acc:
            return value
    return mix[-1][0]


def fen_to_yuan(fen: int) -> str:
    """For the summary: the kernel's exact yuan string with thousands separators."""
    whole, _, cents = money.fen_to_yuan(fen).partition(".")
    sign, digits = ("-", whole[1:]) if whole.startswith("-") else ("", whole)
    return f"{sign}{int(digits):,}.{cents}"
