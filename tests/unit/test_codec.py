"""Avro single-object codec: framing, round trips and a bad-bytes table for every schema."""

from __future__ import annotations

import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from hub.messaging import AvroCodec, SchemaRegistry, UndecodableMessage, UnencodableRecord
from tests.fixtures.avro.samples import SAMPLES

COMMON_FIELDS = {"event_id", "event_time", "producer", "schema_version"}


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(SchemaRegistry())


def test_every_schema_has_a_sample(codec):
    assert sorted(SAMPLES) == codec.registry.names()


def test_crc64_avro_fingerprint_matches_the_specification_vector():
    # The Avro specification's test vector: the schema "null" has fingerprint 0x63dd24e7cc258f8a,
    # written little-endian in the single-object header.
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form("null"), "CRC-64-AVRO"))
    assert int.from_bytes(fp, "little") == 0x63DD24E7CC258F8A


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip_is_equal_and_framed(codec, name):
    data = codec.encode(name, SAMPLES[name])
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == codec.registry.latest(name).fingerprint
    decoded = codec.decode(data)
    assert decoded.record_name == name
    assert decoded.value == SAMPLES[name]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_message_carries_the_common_fields_and_money_in_fen(codec, name):
    fields = {f["name"]: f["type"] for f in codec.registry.latest(name).parsed["fields"]}
    assert COMMON_FIELDS <= set(fields)
    for field_name, field_type in fields.items():
        if field_name.endswith("_fen"):
            assert field_type in ("long", ["null", "long"]), f"{name}.{field_name} must be long fen"


def _bad_bytes(codec: AvroCodec, name: str) -> list[tuple[str, bytes | None, str]]:
    good = codec.encode(name, SAMPLES[name])
    return [
        ("null value", None, "empty_value"),
        ("empty", b"", "not_single_object_avro"),
        ("header only, truncated", good[:6], "not_single_object_avro"),
        ("wrong magic", b"\xc3\x02" + good[2:], "not_single_object_avro"),
        ("plain json", b'{"settlement_id": "S1"}', "not_single_object_avro"),
        ("unknown fingerprint", good[:2] + b"\x00" * 8 + good[10:], "unknown_schema_fingerprint"),
        ("body cut short", good[: len(good) - 3], "corrupt_avro_body"),
        ("trailing bytes", good + b"\x00\x01", "trailing_bytes"),
    ]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_bad_bytes_are_refused_with_a_stable_code(codec, name):
    for label, data, code in _bad_bytes(codec, name):
        with pytest.raises(UndecodableMessage) as err:
            codec.decode(data)
        assert err.value.code == code, label


def test_decode_refuses_an_unexpected_record_type(codec):
    data = codec.encode("DeadLetter", SAMPLES["cn.hub.messaging.DeadLetter"])
    with pytest.raises(UndecodableMessage) as err:
        codec.decode(data, expect="SettlementCompleted")
    assert err.value.code == "unexpected_record_type"


def test_encode_refuses_a_record_that_does_not_match_its_schema(codec):
    record = dict(SAMPLES["cn.hub.settlement.SettlementCompleted"], hifp_pay_fen=12.5)
    with pytest.raises(UnencodableRecord):
        codec.encode("SettlementCompleted", record)
    record = dict(SAMPLES["cn.hub.settlement.SettlementCompleted"])
    del record["settlement_id"]
    with pytest.raises(UnencodableRecord):
        codec.encode("SettlementCompleted", record)
