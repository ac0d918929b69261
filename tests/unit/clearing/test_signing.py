"""SM2 signatures of the clearing files: deterministic, verifiable, and a changed byte fails."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.clearing.adapters.signing import Signer, public_key_of, signer_from_reference, verify

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
