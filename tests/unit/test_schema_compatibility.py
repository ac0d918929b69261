"""Every schema change must read what every older writer wrote.

`tests/fixtures/avro/<name>.v<N>.bin` holds the bytes each version's writer produced; they are
committed once and never regenerated. Each is read here with the newest version of its record.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hub.messaging import AvroCodec, SchemaRegistry, UndecodableMessage
from tests.fixtures.avro.make_fixtures import HERE as FIXTURES
from tests.fixtures.avro.make_fixtures import fixture_path


def incompatibilities(codec: AvroCodec, fixtures: Path) -> list[str]:
    """What the newest schemas cannot read of the older writers' fixtures."""
    problems = []
    for name in codec.registry.names():
        for schema in codec.registry.versions(name):
            path = fixtures / f"{name}.v{schema.version}.bin"
            if not path.exists():
                problems.append(f"{path.name}: no fixture (run python -m tests.fixtures.avro.make_fixtures)")
                continue
            try:
                decoded = codec.decode(path.read_bytes())
            except UndecodableMessage as exc:
                problems.append(f"{path.name}: newest {name} cannot read it: {exc}")
                continue
            if decoded.writer_version != schema.version:
                problems.append(f"{path.name}: written by v{decoded.writer_version}, filed as v{schema.version}")
    return problems


def test_the_newest_schemas_read_every_older_writer():
    assert incompatibilities(AvroCodec(SchemaRegistry()), FIXTURES) == []


def _evolve(tmp_path: Path, new_field: dict) -> AvroCodec:
    """A copy of schemas/ with a next version of SettlementReversed that adds `new_field`."""
    schemas = tmp_path / "schemas"
    shutil.copytree(SchemaRegistry().schema_dir, schemas)
    newest = SchemaRegistry().latest("cn.hub.settlement.SettlementReversed").version
    document = json.loads((schemas / "settlement" / f"SettlementReversed.v{newest}.avsc").read_text())
    document["fields"].append(new_field)
    (schemas / "settlement" / f"SettlementReversed.v{newest + 1}.avsc").write_text(json.dumps(document))
    return AvroCodec(SchemaRegistry(schemas))


def test_a_field_added_with_a_default_reads_old_data(tmp_path):
    codec = _evolve(tmp_path, {"name": "reason_code", "type": "string", "default": "hospital_request"})
    # v2 has no fixture of its own in this copy: the check names it, and reads v1 fine.
    problems = incompatibilities(codec, FIXTURES)
    newest = SchemaRegistry().latest("cn.hub.settlement.SettlementReversed").version
    assert problems == [f"cn.hub.settlement.SettlementReversed.v{newest + 1}.bin: no fixture"
                        " (run python -m tests.fixtures.avro.make_fixtures)"]
    decoded = codec.decode(fixture_path("cn.hub.settlement.SettlementReversed", 1).read_bytes())
    assert decoded.value["reason_code"] == "hospital_request"


def test_a_field_added_without_a_default_is_caught(tmp_path):
    codec = _evolve(tmp_path, {"name": "reason_code", "type": "string"})
    problems = incompatibilities(codec, FIXTURES)
    assert any("SettlementReversed.v1.bin: newest" in p for p in problems), problems


@pytest.mark.parametrize("bad_name", ["SettlementReversed.avsc", "Other.v1.avsc"])
def test_schema_files_must_be_named_after_their_record_and_version(tmp_path, bad_name):
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    shutil.copy(SchemaRegistry().schema_dir / "settlement" / "SettlementReversed.v1.avsc", schemas / bad_name)
    with pytest.raises(ValueError):
        SchemaRegistry(schemas)


def test_a_statement_written_with_the_old_share_names_reads_under_the_new_ones():
    """ClearingStatement v2 renamed the bilateral shares to the names the amounts carry from the
    engine (receivable_fund_fen -> receivable_hifp_pay_fen ...); v1's bytes read by their aliases."""
    decoded = AvroCodec(SchemaRegistry()).decode(fixture_path("cn.hub.clearing.ClearingStatement", 1).read_bytes())
    line = decoded.value["bilateral"][0]
    assert decoded.writer_version == 1
    assert (line["receivable_hifp_pay_fen"], line["payable_maf_pay_fen"]) == (908_784, 0)
