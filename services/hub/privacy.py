"""Shared kernel: how every service refers to a person without holding the person's id.

A national person id never leaves the edge in clear: services key a person by an HMAC of the
id under the hub's secret (`HUB_PERSON_KEY`) and show people only the masked id. The same
function in every service makes the keys agree.
"""

from __future__ import annotations

import hashlib
import hmac


def person_ref(person_key: bytes, psn_no: str) -> str:
    return "p_" + hmac.new(person_key, psn_no.strip().encode(), hashlib.sha256).hexdigest()[:32]


def mask_person_id(psn_no: str) -> str:
    """First 4 and last 4 characters; everything between as '*'."""
    if len(psn_no) <= 8:
        return "*" * len(psn_no)
    return psn_no[:4] + "*" * (len(psn_no) - 8) + psn_no[-4:]
