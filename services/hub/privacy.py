"""Shared kernel: how every service refers to a person without holding the person's id.

A national person id never leaves the edge in clear: services key a person by an HMAC of the
id under the hub's secret (`HUB_PERSON_KEY`) and show people only the masked id. The same
function in every service makes the keys agree.

What the hub must be able to give back in clear — the person's number, resident id and name,
to the hospital treating the person and to no one else — travels and rests *sealed*: AES-256-GCM
under a key derived from the same secret, so a topic, a table or a file holds ciphertext only.
The credentials a hospital may identify a person by (a resident id number, a social-security
card) are keyed like the person (`credential_ref`), never kept in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import date

SEAL_VERSION = b"\x01"
CREDENTIAL_KINDS = {"02": "resident id number", "03": "social-security card"}  # mdtrt_cert_type of each


def person_ref(person_key: bytes, psn_no: str) -> str:
    return "p_" + hmac.new(person_key, psn_no.strip().encode(), hashlib.sha256).hexdigest()[:32]


def credential_ref(person_key: bytes, kind: str, number: str) -> str:
    """The key of a credential of kind `kind` (mdtrt_cert_type 02 or 03): a keyed hash, like a
    person's, in a space of its own (a resident id never collides with a person number)."""
    return "c_" + hmac.new(person_key, f"{kind}:{number.strip().upper()}".encode(), hashlib.sha256).hexdigest()[:32]


def mask_person_id(psn_no: str) -> str:
    """First 4 and last 4 characters; everything between as '*'."""
    if len(psn_no) <= 8:
        return "*" * len(psn_no)
    return psn_no[:4] + "*" * (len(psn_no) - 8) + psn_no[-4:]


def _seal_key(person_key: bytes) -> bytes:
    return hmac.new(person_key, b"hub person seal v1", hashlib.sha256).digest()


def seal(person_key: bytes, fields: dict[str, str]) -> bytes:
    """The fields as ciphertext only the hub's services can open (a fresh nonce each time)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    plain = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    return SEAL_VERSION + nonce + AESGCM(_seal_key(person_key)).encrypt(nonce, plain, SEAL_VERSION)


def unseal(person_key: bytes, sealed: bytes) -> dict[str, str]:
    """What `seal` sealed; {} for nothing sealed. A wrong key or altered bytes raise."""
    if not sealed:
        return {}
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if sealed[:1] != SEAL_VERSION:
        raise ValueError("not a sealed person record")
    return json.loads(AESGCM(_seal_key(person_key)).decrypt(sealed[1:13], sealed[13:], SEAL_VERSION))


# ---------------------------------------------------------------- the resident id number (GB 11643-1999)

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def resident_id_check_char(first17: str) -> str:
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS)) % 11]


def resident_id_facts(certno: str) -> tuple[date, str] | None:
    """(birth date, gend) of an 18-character resident id number whose check character holds —
    gend as the convention codes it, 1 male, 2 female (the 17th digit odd or even) — or None."""
    certno = certno.strip().upper()
    if len(certno) != 18 or not certno[:17].isdigit() or resident_id_check_char(certno[:17]) != certno[17]:
        return None
    try:
        born = date(int(certno[6:10]), int(certno[10:12]), int(certno[12:14]))
    except ValueError:
        return None
    return born, "1" if int(certno[16]) % 2 else "2"
