"""SM2 signatures over SM3 digests (GB/T 32918 with the standard's default user id, GB/T
32905) for the clearing files, by the `gmssl` package: the hub signs each file set's manifest,
a bureau verifies it with the hub's public key.

Signing is deterministic — the per-signature secret k is derived from the private key and the
digest (HMAC-SHA256, the idea of RFC 6979) — so a file set rendered again is byte-identical,
its signature included. Keys are hex: the private key 64 hex digits, the public key `04` + x + y.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gmssl import func, sm2, sm3

ALGORITHM = "SM2-with-SM3 (GB/T 32918.2, user id 1234567812345678)"
_N = int(sm2.default_ecc_table["n"], 16)
# The development key: derived from a phrase anyone can read, like the sample hospital tokens.
# `hub clearing serve` warns while it is in use; a deployment sets HUB_CLEARING_SIGNING_KEY.
SAMPLE_PHRASE = b"interregion-hub sample clearing signing key (not for production)"


class SignatureError(ValueError):
    """A signature or key that cannot be used; the message says which."""


def _private_int(private_hex: str) -> int:
    try:
        d = int(private_hex, 16)
    except ValueError:
        raise SignatureError("the SM2 private key is 64 hex digits") from None
    if not 1 <= d < _N - 1 or len(private_hex) != 64:
        raise SignatureError("the SM2 private key is 64 hex digits, a number from 1 to n-2")
    return d


def public_key_of(private_hex: str) -> str:
    d = _private_int(private_hex)
    point = sm2.CryptSM2(private_key=private_hex, public_key="")._kg(d, sm2.default_ecc_table["g"])
    return "04" + point


def sm3_hex(data: bytes) -> str:
    return sm3.sm3_hash(func.bytes_to_list(data))


@dataclass(frozen=True)
class Signer:
    private_key_hex: str
    sample: bool = False  # the development key

    @cached_property
    def public_key_hex(self) -> str:  # a point multiplication: once per signer
        return public_key_of(self.private_key_hex)

    def sign(self, data: bytes) -> str:
        """The signature (r ‖ s, 128 hex digits) of `data`; the same bytes always sign alike.
        (tests/unit/clearing/test_signing.py checks signatures verify and a changed byte fails.)"""
        crypt = sm2.CryptSM2(private_key=self.private_key_hex, public_key=self.public_key_hex[2:])
        seed = hmac.new(bytes.fromhex(self.private_key_hex), bytes.fromhex(sm3_hex(data)), hashlib.sha256).digest()
        k = int.from_bytes(seed, "big") % (_N - 1) + 1
        return crypt.sign_with_sm3(data, f"{k:064x}")


def verify(public_key_hex: str, data: bytes, signature_hex: str) -> bool:
    key = public_key_hex.strip().lower()
    if key.startswith("04") and len(key) == 130:
        key = key[2:]
    if len(key) != 128 or len(signature_hex.strip()) != 128:
        return False
    try:
        int(key, 16), int(signature_hex, 16)
    except ValueError:
        return False
    return bool(sm2.CryptSM2(private_key="", public_key=key).verify_with_sm3(signature_hex.strip().lower(), data))


def signer_from_reference(ref: str) -> Signer:
    """The hub's signing key from its reference: `env:NAME` (hex in an environment variable),
    `file:PATH` (hex in a mounted secret file), or `sample:` (the development key)."""
    scheme, _, rest = ref.partition(":")
    if scheme == "env":
        import os

        value = os.environ.get(rest, "").strip()
        if not value:
            raise SignatureError(f"the environment variable {rest} holding the clearing signing key is not set")
        return Signer(value.lower())
    if scheme == "file":
        return Signer(Path(rest).read_text(encoding="utf-8").strip().lower())
    if scheme == "sample":
        d = int.from_bytes(hashlib.sha256(SAMPLE_PHRASE).digest(), "big") % (_N - 2) + 1
        return Signer(f"{d:064x}", sample=True)
    raise SignatureError(f"signing key reference {ref!r} is not env:NAME, file:PATH or sample:")


def signature_document(signed_name: str, public_key_hex: str, signature_hex: str) -> bytes:
    """The detached signature file beside a manifest: what was signed, by which key, and how."""
    return (f"algorithm: {ALGORITHM}\nsigned-file: {signed_name}\npublic-key: {public_key_hex}\n"
            f"signature: {signature_hex}\n").encode()


def parse_signature_document(data: bytes) -> dict[str, str]:
    fields = {}
    for line in data.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    missing = {"signed-file", "public-key", "signature"} - set(fields)
    if missing:
        raise SignatureError(f"not a signature file: no {', '.join(sorted(missing))}")
    return fields


@dataclass(frozen=True)
class Verification:
    ok: bool
    message: str
    files: tuple[str, ...] = ()


def verify_file_set(path: Path, trusted_public_key: str | None) -> Verification:
    """Verify the file set `path` belongs to (any of its files: .csv, .json, .xlsx, .sha256, .sig):
    the signature over the manifest, by the trusted key (else the key the signature file names,
    which proves integrity but not authorship), then every file the manifest lists, by its SHA-256."""
    stem = path.name.split(".", 1)[0]
    manifest_path, sig_path = path.with_name(f"{stem}.sha256"), path.with_name(f"{stem}.sig")
    for needed in (manifest_path, sig_path):
        if not needed.is_file():
            return Verification(False, f"{needed.name} is missing beside {path.name}")
    manifest = manifest_path.read_bytes()
    try:
        fields = parse_signature_document(sig_path.read_bytes())
    except SignatureError as exc:
        return Verification(False, f"{sig_path.name}: {exc}")
    if fields["signed-file"] != manifest_path.name:
        return Verification(False, f"{sig_path.name} signs {fields['signed-file']}, not {manifest_path.name}")
    key = (trusted_public_key or fields["public-key"]).strip().lower()
    if trusted_public_key and fields["public-key"].lower() != key:
        return Verification(False, f"{sig_path.name} names another key than the trusted one")
    if not verify(key, manifest, fields["signature"]):
        return Verification(False, f"the SM2 signature on {manifest_path.name} does not verify with key {key[:18]}…")
    checked = []
    for line in manifest.decode("utf-8", "replace").splitlines():
        digest, _, name = line.partition("  ")
        target = path.with_name(name)
        if not target.is_file():
            return Verification(False, f"{name}, listed in {manifest_path.name}, is missing")
        if hashlib.sha256(target.read_bytes()).hexdigest() != digest:
            return Verification(False, f"{name} was changed: its SHA-256 is not the one signed")
        checked.append(name)
    who = "the trusted key" if trusted_public_key else "the key the signature names (pass --public-key to prove the hub wrote it)"
    return Verification(True, f"verified {len(checked)} files signed by {who}", tuple(checked))
