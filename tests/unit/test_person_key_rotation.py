"""The person key rotates (hub.privacy.PersonKey): what the old key sealed still opens, new records
are sealed under the new key with its id, every person keeps their ref (the pseudonym key stays),
and a service that lacks a key says which variable to give it. No server."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub import settings
from hub.privacy import SEAL_VERSION, SEAL_VERSION_KEYED, PersonKey, _seal_key, person_ref, seal, unseal

OLD, NEW = b"the key of 2025 (retired)", b"the key of 2026"
PERSON = {"psn_no": "36040019800101123X", "name": "张三"}


def test_records_sealed_under_the_retired_key_still_open_and_new_ones_use_the_new_key():
    before = PersonKey(OLD)
    sealed_before = seal(before, PERSON)
    rotated = PersonKey.of(NEW, retired=OLD.decode(), ref=OLD.decode())
    assert unseal(rotated, sealed_before) == PERSON
    sealed_after = seal(rotated, PERSON)
    assert sealed_after[:1] == SEAL_VERSION_KEYED and sealed_after[1:5] != sealed_before[1:5]  # the new key's id
    assert unseal(rotated, sealed_after) == PERSON
    with pytest.raises(ValueError, match="HUB_PERSON_RETIRED_KEYS"):  # a service not given the new key
        unseal(before, sealed_after)
    with pytest.raises(ValueError, match="HUB_PERSON_RETIRED_KEYS"):  # one that dropped the old key too soon
        unseal(PersonKey(NEW), sealed_before)


def test_a_record_sealed_before_keys_had_ids_opens_under_whichever_key_sealed_it():
    nonce = os.urandom(12)
    legacy = SEAL_VERSION + nonce + AESGCM(_seal_key(OLD)).encrypt(nonce, b'{"psn_no":"X1"}', SEAL_VERSION)
    assert unseal(PersonKey.of(NEW, retired=OLD.decode()), legacy) == {"psn_no": "X1"}
    with pytest.raises(InvalidTag):
        unseal(PersonKey(NEW), legacy)


def test_every_person_keeps_their_ref_through_a_rotation():
    ref = person_ref(OLD, "36040019800101123X")  # a bare key: one that never rotated
    assert person_ref(PersonKey.of(NEW, retired=OLD.decode(), ref=OLD.decode()), "36040019800101123X") == ref
    assert person_ref(PersonKey(NEW), "36040019800101123X") != ref  # without the ref key: everyone re-keyed


def test_outside_development_the_sample_key_is_refused_as_the_ref_key(monkeypatch):
    from hub.settlement.bootstrap import Settings

    monkeypatch.setenv("HUB_ENV", "production")
    monkeypatch.setenv("HUB_PERSON_KEY", "a real key")
    monkeypatch.setenv("HUB_VOUCHER_KEY", "a real voucher key")
    monkeypatch.setenv("HUB_PERSON_REF_KEY", settings.DEVELOPMENT_SECRETS["HUB_PERSON_KEY"])
    with pytest.raises(settings.UnsafeSecret, match="HUB_PERSON_REF_KEY"):
        Settings()
    monkeypatch.setenv("HUB_PERSON_REF_KEY", "the key of 2025")
    monkeypatch.setenv("HUB_PERSON_RETIRED_KEYS", "the key of 2025, the key of 2024")
    keys = Settings().person_keys
    assert keys == PersonKey(b"a real key", (b"the key of 2025", b"the key of 2024"), b"the key of 2025")
