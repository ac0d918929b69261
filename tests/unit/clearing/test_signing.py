"""SM2 signatures of the clearing files: deterministic, verifiable, and a changed byte fails."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gmssl import sm2

import pytest

from hub.signing import (_A, _B, _GX, _GY, _N, _P, SignatureError, Signer, _sign, public_key_of, signature_document,
                         signer_from_reference, sm3, verify)

SAMPLE = signer_from_reference("sample:")
OTHER = Signer("%064x" % 0x1234567890ABCDEF)


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=0, max_size=2000), st.integers(min_value=0, max_value=1999))
def test_a_signature_verifies_once_and_only_for_its_bytes_and_key(data, at):
    signature = SAMPLE.sign(data)
    assert signature == SAMPLE.sign(data)  # deterministic: a re-run writes the same bytes
    assert verify(SAMPLE.public_key_hex, data, signature)
    assert not verify(OTHER.public_key_hex, data, signature)
    changed = bytearray(data or b"\\x00")
    changed[at % len(changed)] ^= 0x01
    assert not verify(SAMPLE.public_key_hex, bytes(changed), signature)


def test_keys_and_garbage():
    assert public_key_of(OTHER.private_key_hex).startswith("04") and len(OTHER.public_key_hex) == 130
    assert not verify(SAMPLE.public_key_hex, b"x", "zz" * 64)
    assert not verify("04" + "0" * 10, b"x", SAMPLE.sign(b"x"))


def test_sm3_is_the_standards_example_digest():
    # GB/T 32905-2016, example 1: SM3("abc")
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=_N - 2), st.integers(min_value=1, max_value=_N - 1),
       st.binary(min_size=0, max_size=600))
def test_each_signature_is_the_one_gmssl_makes_with_the_same_k(d, k, data):
    # gmssl (an independent implementation of GB/T 32918) is the oracle: same key, k and bytes,
    # the same r and s; each verifies the other's. Its key parsing strips leading 0/4 digits.
    key = f"{d:064x}"
    public = public_key_of(key)
    assume(not public[2:].startswith("04"))
    gm = sm2.CryptSM2(private_key=key, public_key=public[2:])
    assert public == "04" + gm._kg(d, sm2.default_ecc_table["g"])
    oracle = gm.sign_with_sm3(data, f"{k:064x}")
    assume(oracle is not None)  # r = 0 or r + k = n: the standard's "pick another k"
    assert _sign(d, public, data, k) == oracle
    assert verify(public, data, oracle) and gm.verify_with_sm3(oracle, data)


def test_a_key_gmssl_misreads_signs_and_verifies_here():
    key = f"{17009214073:064x}"  # its public x begins 04...: gmssl's lstrip("04") eats those digits
    public = public_key_of(key)
    assert public[2:4] == "04"
    signer = Signer(key)
    signature = signer.sign(b"manifest")
    assert verify(public, b"manifest", signature) and not verify(public, b"manifesT", signature)
    gm = sm2.CryptSM2(private_key=key, public_key=public[2:])
    try:  # gmssl reads another point for this key: no verification (it even fails inside)
        accepted = gm.verify_with_sm3(signature, b"manifest")
    except TypeError:
        accepted = False
    assert not accepted


def test_the_curve_is_the_standards_and_the_signers_k_is_gmssls():
    table = sm2.default_ecc_table  # an independent copy of GB/T 32918.5's parameters
    assert (_P, _A, _B, _N) == tuple(int(table[k], 16) for k in ("p", "a", "b", "n"))
    assert f"{_GX:064x}{_GY:064x}" == table["g"].lower()
    data = b"clearing_2026-03-14_440100.csv ...\n"
    seed = hmac.new(bytes.fromhex(SAMPLE.private_key_hex), sm3(data), hashlib.sha256).digest()
    k = int.from_bytes(seed, "big") % (_N - 1) + 1
    oracle = sm2.CryptSM2(private_key=SAMPLE.private_key_hex, public_key=SAMPLE.public_key_hex[2:]
                          ).sign_with_sm3(data, f"{k:064x}")
    assert SAMPLE.sign(data) == oracle  # the same signature bytes the files carried before


def test_verify_refuses_points_off_the_curve_and_out_of_range_signatures():
    signature = SAMPLE.sign(b"x")
    x, y = SAMPLE.public_key_hex[2:66], SAMPLE.public_key_hex[66:]
    off = f"04{x}{(int(y, 16) + 1) % _P:064x}"
    assert verify(SAMPLE.public_key_hex, b"x", signature)
    assert not verify(off, b"x", signature)
    assert not verify(SAMPLE.public_key_hex, b"x", "0" * 64 + signature[64:])  # r = 0
    assert not verify(SAMPLE.public_key_hex, b"x", f"{_N:064x}" + signature[64:])  # r = n
    assert not verify(SAMPLE.public_key_hex, b"x", "-" + signature[1:])  # not hex digits
    assert not verify("04" + x[:-1] + "_" + y, b"x", signature)
    assert verify(SAMPLE.public_key_hex.upper(), b"x", signature.upper())  # hex in either case


def test_after_a_rotation_files_signed_with_the_retired_key_still_verify_and_only_with_it_trusted():
    from hub.signing import public_keys, verify_manifest

    old, new = Signer("5" + "a" * 63), Signer("6" + "b" * 63)
    manifest = b"0" * 64 + b"  clearing_2026-02-05_360400.csv\n"
    sig = signature_document("m.sha256", old.public_key_hex, old.sign(manifest))
    trusted = [new.public_key_hex, *public_keys(f" {old.public_key_hex} ,")]
    assert verify_manifest("m.sha256", manifest, "m.sig", sig, trusted).ok
    assert not verify_manifest("m.sha256", manifest, "m.sig", sig, [new.public_key_hex]).ok
    assert not verify_manifest("m.sha256", manifest, "m.sig", sig, new.public_key_hex).ok
    with pytest.raises(SignatureError):
        public_keys("04" + "1" * 128)  # not a point of the curve
