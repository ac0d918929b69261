"""Shared kernel: how every service refers to a person without holding the person's id.

A national person id never leaves the edge in clear: services key a person by an HMAC of the
id under the hub's secret (`HUB_PERSON_KEY`) and show people only the masked id. The same
function in every service makes the keys agree.

What the hub must be able to give back in clear — the person's number, resident id and name,
to the hospital treating the person and to no one else — travels and rests *sealed*: AES-256-GCM
under a key derived from the same secret, so a topic, a table or a file holds ciphertext only.
The credentials a hospital may identify a person by (a resident id number, a social-security
card) are keyed like the person (`credential_ref`), never kept in clear.

The secret rotates (`PersonKey`): records are sealed under the current key, with its id, and
records sealed under a retired key still open; the key ids are hashed under stays the same (the
pseudonym key, `HUB_PERSON_REF_KEY`, by default the person key itself): changing it would give
every person a new ref, a re-keying of every topic and table rather than a rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import date
from typing import Union

SEAL_VERSION = b"\x01"  # version, 12-byte nonce, AES-GCM ciphertext and tag (one key, no id)
SEAL_VERSION_KEYED = b"\x02"  # version, the sealing key's 4-byte id, nonce, ciphertext and tag


@dataclass(frozen=True)
class PersonKey:
    """The person secret with its rotations: `current` seals; `retired` keys (newest first) still
    open what they sealed; ids are hashed under `ref` (the key of before any rotation)."""

    current: bytes
    retired: tuple[bytes, ...] = ()
    ref: bytes = b""

    @classmethod
    def of(cls, current: bytes, retired: str = "", ref: str = "") -> "PersonKey":
        """From the environment's form: retired keys comma-separated; no ref key: the current one."""
        return cls(current, tuple(k.strip().encode() for k in retired.split(",") if k.strip()),
                   ref.encode() if ref else b"")

    @property
    def ref_key(self) -> bytes:
        return self.ref or self.current


Key = Union[bytes, PersonKey]  # a bare key: one that never rotated


def _person_key(key: Key) -> PersonKey:
    return key if isinstance(key, PersonKey) else PersonKey(key)
CREDENTIAL_KINDS = {"02": "resident id number", "03": "social-security card"}  # mdtrt_cert_type of each


def person_ref(person_key: Key, psn_no: str) -> str:
    return "p_" + hmac.new(_person_key(person_key).ref_key, psn_no.strip().encode(), hashlib.sha256).hexdigest()[:32]


def credential_ref(person_key: Key, kind: str, number: str) -> str:
    """The key of a credential of kind `kind` (mdtrt_cert_type 02 or 03): a keyed hash, like a
    person's, in a space of its own (a resident id never collides with a person number)."""
    return "c_" + hmac.new(_person_key(person_key).ref_key, f"{kind}:{number.strip().upper()}".encode(),
                           hashlib.sha256).hexdigest()[:32]


def mask_person_id(psn_no: str) -> str:
    """First 4 and last 4 characters; everything between as '*'."""
    if len(psn_no) <= 8:
        return "*" * len(psn_no)
    return psn_no[:4] + "*" * (len(psn_no) - 8) + psn_no[-4:]


def _seal_key(person_key: bytes) -> bytes:
    return hmac.new(person_key, b"hub person seal v1", hashlib.sha256).digest()


def _key_id(seal_key: bytes) -> bytes:
    return hashlib.sha256(b"hub person seal key id" + seal_key).digest()[:4]


def seal(person_key: Key, fields: dict[str, str]) -> bytes:
    """The fields as ciphertext only the hub's services can open (a fresh nonce each time), under
    the current key, with its id."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = _seal_key(_person_key(person_key).current)
    head = SEAL_VERSION_KEYED + _key_id(key)
    nonce = os.urandom(12)
    plain = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    return head + nonce + AESGCM(key).encrypt(nonce, plain, head)


def unseal(person_key: Key, sealed: bytes) -> dict[str, str]:
    """What `seal` sealed, under the current key or a retired one; {} for nothing sealed. A key
    the hub does not hold, or altered bytes, raise."""
    if not sealed:
        return {}
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    keys = [_seal_key(k) for k in (_person_key(person_key).current, *_person_key(person_key).retired)]
    if sealed[:1] == SEAL_VERSION_KEYED:
        head = sealed[:5]
        key = next((k for k in keys if _key_id(k) == head[1:]), None)
        if key is None:
            raise ValueError(f"sealed under a person key this service does not hold (key id {head[1:].hex()}): "
                             "add it to HUB_PERSON_RETIRED_KEYS")
        return json.loads(AESGCM(key).decrypt(sealed[5:17], sealed[17:], head))
    if sealed[:1] != SEAL_VERSION:
        raise ValueError("not a sealed person record")
    for key in keys:  # before keys had ids: whichever opens it
        try:
            return json.loads(AESGCM(key).decrypt(sealed[1:13], sealed[13:], SEAL_VERSION))
        except InvalidTag:
            continue
    raise InvalidTag()


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
