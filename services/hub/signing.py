"""SM2 signatures over SM3 digests (GB/T 32918 with the standard's default user id, GB/T
32905) for the clearing files: the hub signs each file set's manifest, a bureau verifies it with
the hub's public key. Shared kernel: the clearing service signs, `hub clearing verify` and the
bureau portal verify.

The curve's arithmetic is here (Jacobian coordinates on Python integers; SM3 from
`cryptography`'s OpenSSL). It replaced the `gmssl` package, whose signing took ~25-50 ms (its
SM3 and points work on hex strings and lists; a close signs a manifest per bureau) and which
reads a public key with `lstrip("04")`, which strips every leading 0 and 4 digit, not a prefix:
for a key whose x begins with the digits 04 (one in 256), given x ‖ y as the hub gave it, gmssl
hashes a wrong Z, and its signatures by that key fail every other SM2 implementation (found by
the property test that uses gmssl as the oracle for all other keys).
Not constant-time: the hub signs its own files in a batch job, where no one can time it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable

from cryptography.hazmat.primitives import hashes

ALGORITHM = "SM2-with-SM3 (GB/T 32918.2, user id 1234567812345678)"
# The recommended curve of GB/T 32918.5: field prime p, coefficients a and b, order n, base point G.
_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
_GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
_GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
_CURVE_BYTES = b"".join(v.to_bytes(32, "big") for v in (_A, _B, _GX, _GY))
_HEX128 = re.compile("[0-9a-f]{128}")
_USER_ID = b"1234567812345678"  # the standard's default signer id, 128 bits (ENTL 0x0080)
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
    """`04` ‖ x ‖ y of dG, hex."""
    x, y = _times(_private_int(private_hex), _GX, _GY)
    return f"04{x:064x}{y:064x}"


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _double(x: int, y: int, z: int) -> tuple[int, int, int]:
    """2P in Jacobian coordinates (X/Z², Y/Z³); Z = 0 is the point at infinity."""
    if not y or not z:
        return 0, 1, 0
    p = _P
    yy = y * y % p
    s = 4 * x * yy % p
    zz = z * z % p
    m = (3 * x * x + _A * zz * zz) % p
    x3 = (m * m - 2 * s) % p
    return x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * y * z % p


def _add_affine(x1: int, y1: int, z1: int, x2: int, y2: int) -> tuple[int, int, int]:
    """P + Q, P Jacobian and Q affine."""
    if not z1:
        return x2, y2, 1
    p = _P
    z1z1 = z1 * z1 % p
    h = (x2 * z1z1 - x1) % p
    r = (y2 * z1 * z1z1 - y1) % p
    if not h:
        return _double(x1, y1, z1) if not r else (0, 1, 0)
    hh = h * h % p
    hhh = h * hh % p
    v = x1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - y1 * hhh) % p, z1 * h % p


def _times(k: int, px: int, py: int) -> tuple[int, int]:
    """kP for an affine point P, affine (double and add, most significant bit first)."""
    x, y, z = 0, 1, 0
    for bit in bin(k)[2:]:
        x, y, z = _double(x, y, z)
        if bit == "1":
            x, y, z = _add_affine(x, y, z, px, py)
    if not z:
        raise SignatureError("the point at infinity")
    return _affine(x, y, z)


def _affine(x: int, y: int, z: int) -> tuple[int, int]:
    zi = pow(z, -1, _P)
    zi2 = zi * zi % _P
    return x * zi2 % _P, y * zi2 * zi % _P


def _digest(public: tuple[int, int], data: bytes) -> int:
    """e = SM3(Z ‖ M), Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA)."""
    z = sm3((len(_USER_ID) * 8).to_bytes(2, "big") + _USER_ID + _CURVE_BYTES
            + public[0].to_bytes(32, "big") + public[1].to_bytes(32, "big"))
    return int.from_bytes(sm3(z + data), "big")


def _public_point(public_key_hex: str) -> tuple[int, int] | None:
    """(x, y) of a hex public key (`04` ‖ x ‖ y, or x ‖ y) on the curve; None if it is not one."""
    key = public_key_hex.strip().lower()
    if len(key) == 130 and key.startswith("04"):
        key = key[2:]
    if not _HEX128.fullmatch(key):  # int(..., 16) alone would take a sign, "0x" or underscores
        return None
    x, y = int(key[:64], 16), int(key[64:], 16)
    if not (x < _P and y < _P) or (y * y - (x * x * x + _A * x + _B)) % _P:
        return None
    return x, y


def _sign(d: int, public_key_hex: str, data: bytes, k: int) -> str:
    """GB/T 32918.2 signature of `data` by private key d with secret k: r ‖ s, 128 hex digits.
    (x1, y1) = kG; r = (e + x1) mod n; s = (1 + d)⁻¹ (k − r d) mod n."""
    public = _public_point(public_key_hex)
    if public is None:
        raise SignatureError("the public key is not a point of the curve")
    e = _digest(public, data)
    x1, _ = _times(k, _GX, _GY)
    r = (e + x1) % _N
    s = pow(1 + d, -1, _N) * (k - r * d) % _N
    if r == 0 or r + k == _N or s == 0:  # never met with a k from a hash; the standard says pick another
        raise SignatureError("this k gives no signature; derive another")
    return f"{r:064x}{s:064x}"


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
        seed = hmac.new(bytes.fromhex(self.private_key_hex), sm3(data), hashlib.sha256).digest()
        k = int.from_bytes(seed, "big") % (_N - 1) + 1
        return _sign(_private_int(self.private_key_hex), self.public_key_hex, data, k)


def verify(public_key_hex: str, data: bytes, signature_hex: str) -> bool:
    """Whether r ‖ s is a signature of `data` by the key: with t = (r + s) mod n and
    (x1, y1) = sG + tP, (e + x1) mod n equals r (GB/T 32918.2, 7.1)."""
    public = _public_point(public_key_hex)
    text = signature_hex.strip().lower()
    if public is None or not _HEX128.fullmatch(text):
        return False
    r, s = int(text[:64], 16), int(text[64:], 16)
    t = (r + s) % _N
    if not (1 <= r < _N and 1 <= s < _N) or t == 0:
        return False
    sx, sy = _times(s, _GX, _GY)
    tx, ty = _times(t, *public)
    x, y, z = _add_affine(tx, ty, 1, sx, sy)
    if not z:
        return False
    x1, _ = _affine(x, y, z)
    return (_digest(public, data) + x1) % _N == r


def public_keys(text: str) -> tuple[str, ...]:
    """Public keys (04 ‖ x ‖ y, hex) separated by commas, each checked to be a point of the curve
    (HUB_CLEARING_PREVIOUS_PUBLIC_KEYS: the keys a rotation retired, which still verify)."""
    keys = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    for k in keys:
        if _public_point(k) is None:
            raise SignatureError(f"{k[:18]}… is not an SM2 public key (04 followed by x and y, 130 hex digits)")
    return keys


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


def verify_file_set(path: Path, trusted_public_key: str | Iterable[str] | None) -> Verification:
    """Verify the file set `path` belongs to (any of its files: .csv, .json, .xlsx, .sha256, .sig):
    the signature over the manifest, by the trusted key (else the key the signature file names,
    which proves integrity but not authorship), then every file the manifest lists, by its SHA-256."""
    stem = path.name.split(".", 1)[0]
    manifest_path, sig_path = path.with_name(f"{stem}.sha256"), path.with_name(f"{stem}.sig")
    for needed in (manifest_path, sig_path):
        if not needed.is_file():
            return Verification(False, f"{needed.name} is missing beside {path.name}")
    manifest = manifest_path.read_bytes()
    files = {name: path.with_name(name).read_bytes() for name in manifest_digests(manifest)
             if path.with_name(name).is_file()}
    verdict = verify_file_bytes(manifest_path.name, manifest, sig_path.name, sig_path.read_bytes(), files,
                                trusted_public_key)
    if verdict.ok and not trusted_public_key:
        return Verification(True, f"{verdict.message} (pass --public-key to prove the hub wrote it)", verdict.files)
    return verdict


def verify_file_bytes(manifest_name: str, manifest: bytes, sig_name: str, sig: bytes, files: dict[str, bytes],
                      trusted_public_key: str | Iterable[str] | None) -> Verification:
    """The same check over a file set held in memory (the bureau portal verifies what it fetched):
    the signature over the manifest, then each listed file present in `files` by its SHA-256; a
    listed file absent from `files` fails."""
    signed = verify_manifest(manifest_name, manifest, sig_name, sig, trusted_public_key)
    if not signed.ok:
        return signed
    checked = []
    for name, digest in manifest_digests(manifest).items():
        if name not in files:
            return Verification(False, f"{name}, listed in {manifest_name}, is missing")
        if hashlib.sha256(files[name]).hexdigest() != digest:
            return Verification(False, f"{name} was changed: its SHA-256 is not the one signed")
        checked.append(name)
    who = "the trusted key" if trusted_public_key else "the key the signature names"
    return Verification(True, f"verified {len(checked)} files signed by {who}", tuple(checked))


def verify_manifest(manifest_name: str, manifest: bytes, sig_name: str, sig: bytes,
                    trusted_public_key: str | Iterable[str] | None) -> Verification:
    """The signature over a manifest alone (its files are then checked one by one against
    `manifest_digests`, as each is fetched). `trusted_public_key`: one key, or every key the
    verifier trusts (after a rotation the hub's current key and its previous ones: files signed
    before the rotation keep verifying), or None to check integrity only."""
    try:
        fields = parse_signature_document(sig)
    except SignatureError as exc:
        return Verification(False, f"{sig_name}: {exc}")
    if fields["signed-file"] != manifest_name:
        return Verification(False, f"{sig_name} signs {fields['signed-file']}, not {manifest_name}")
    key = fields["public-key"].strip().lower()
    if trusted_public_key:
        trusted = {trusted_public_key} if isinstance(trusted_public_key, str) else set(trusted_public_key)
        if key not in {k.strip().lower() for k in trusted}:
            return Verification(False, f"{sig_name} names another key than the trusted one")
    if not verify(key, manifest, fields["signature"]):
        return Verification(False, f"the SM2 signature on {manifest_name} does not verify with key {key[:18]}…")
    return Verification(True, f"{manifest_name} is signed by the {'trusted ' if trusted_public_key else ''}key",
                        tuple(manifest_digests(manifest)))


def manifest_digests(manifest: bytes) -> dict[str, str]:
    """File name -> SHA-256 (hex) as a manifest lists them."""
    out = {}
    for line in manifest.decode("utf-8", "replace").splitlines():
        digest, _, name = line.partition("  ")
        if name:
            out[name] = digest
    return out
