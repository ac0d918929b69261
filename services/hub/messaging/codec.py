"""Avro single-object encoding with writer schemas looked up by fingerprint from `schemas/`.

A message is `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
parsing canonical form, then the Avro binary body (Avro 1.8+ specification, "Single-object
encoding"). fastavro has no such framing; the header is written and checked here.

Every version of every schema stays in `schemas/` as `<Name>.v<N>.avsc`, so a reader can
resolve the writer schema of any message ever produced and read it with the newest version
of the same record (Avro schema resolution fills new fields from their defaults).
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

from hub.messaging.errors import SchemaNotFound, UndecodableMessage, UnencodableRecord

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
_FILE_NAME = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[0-9]+)\.avsc$")


def default_schema_dir() -> Path:
    return Path(os.environ.get("HUB_SCHEMA_DIR", Path(__file__).resolve().parents[3] / "schemas"))


@dataclass(frozen=True)
class SchemaVersion:
    full_name: str
    version: int
    parsed: Any
    fingerprint: bytes
    path: Path
    raw: Any  # the schema as its file holds it (JSON), before parsing


class SchemaRegistry:
    """Every schema version under a directory, by full name and by fingerprint. Read-only."""

    def __init__(self, schema_dir: Path | None = None):
        self.schema_dir = schema_dir or default_schema_dir()
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        self._versions: dict[str, dict[int, SchemaVersion]] = {}
        for path in sorted(self.schema_dir.rglob("*.avsc")):
            self.add(path)
        if not self._versions:
            raise SchemaNotFound(f"no schemas found under {self.schema_dir}")

    def add(self, path: Path) -> SchemaVersion:
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path}: schema files are named <Record>.v<N>.avsc")
        raw = json.loads(path.read_text(encoding="utf-8"))
        # Named types are parsed per file: each file is a self-contained contract.
        parsed = parse_schema(raw, named_schemas={})
        full_name = parsed["name"]
        if full_name.rsplit(".", 1)[-1] != match["name"]:
            raise ValueError(f"{path}: file name does not match record name {full_name}")
        version = int(match["version"])
        canonical = to_parsing_canonical_form(raw)
        fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        entry = SchemaVersion(full_name, version, parsed, fp, path, raw)
        if fp in self._by_fingerprint and self._by_fingerprint[fp].full_name != full_name:
            raise ValueError(f"{path}: fingerprint collides with {self._by_fingerprint[fp].path}")
        self._by_fingerprint[fp] = entry
        self._versions.setdefault(full_name, {})[version] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, full_name: str) -> list[SchemaVersion]:
        return [v for _, v in sorted(self._resolve_name(full_name).items())]

    def latest(self, name: str) -> SchemaVersion:
        versions = self._resolve_name(name)
        return versions[max(versions)]

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(fp)

    def _resolve_name(self, name: str) -> dict[int, SchemaVersion]:
        if name in self._versions:
            return self._versions[name]
        # A short name is accepted where it is unambiguous ("SettlementCompleted").
        matches = [full for full in self._versions if full.rsplit(".", 1)[-1] == name]
        if len(matches) == 1:
            return self._versions[matches[0]]
        raise SchemaNotFound(f"no schema named {name!r} in {self.schema_dir}")


@dataclass(frozen=True)
class Decoded:
    record_name: str
    writer_version: int
    value: dict[str, Any]


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(s) for s in schema]
    return schema


class AvroCodec:
    """Encodes records with the newest schema version; decodes any known version.

    With `logical_types=False` it decodes values as the wire carries them: a uuid as its string,
    a timestamp-millis as int milliseconds, a date as int days since 1970-01-01. Building the
    Python objects is about a third of fastavro's time per record, so a consumer that reads
    many events and needs few of those objects (clearing) decodes this way; encoding is the same.
    """

    def __init__(self, registry: SchemaRegistry | None = None, logical_types: bool = True):
        self.registry = registry or SchemaRegistry()
        self.logical_types = logical_types
        self._readers: dict[bytes, tuple[Any, Any]] = {}  # writer fingerprint -> (writer, reader or None)

    def encode(self, record_name: str, record: dict[str, Any], version: int | None = None,
               check: bool = True) -> bytes:
        """The record as single-object bytes. `check` validates it first for a readable error;
        hot paths that build records in code may skip it: the writer still refuses wrong types."""
        schema = (
            self.registry.latest(record_name)
            if version is None
            else next(v for v in self.registry.versions(record_name) if v.version == version)
        )
        if check:
            try:
                validate(record, schema.parsed, raise_errors=True)
            except ValidationError as exc:
                raise UnencodableRecord(f"{schema.full_name} v{schema.version}: {exc}") from exc
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(schema.fingerprint)
        try:
            schemaless_writer(buf, schema.parsed, record)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise UnencodableRecord(f"{schema.full_name} v{schema.version}: {type(exc).__name__}: {exc}") from exc
        return buf.getvalue()

    def decode(self, data: bytes | None, expect: str | None = None) -> Decoded:
        """Decode one message; raise UndecodableMessage with a stable code when it cannot be read."""
        if data is None:
            raise UndecodableMessage("empty_value", "message has no value (tombstone or null)")
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise UndecodableMessage(
                "not_single_object_avro",
                f"message does not start with the Avro single-object marker C3 01 ({len(data)} bytes)",
            )
        writer = self.registry.by_fingerprint(data[2:HEADER_LEN])
        if writer is None:
            raise UndecodableMessage(
                "unknown_schema_fingerprint",
                f"writer schema fingerprint {data[2:HEADER_LEN].hex()} is not in {self.registry.schema_dir}",
            )
        if expect is not None and self.registry.latest(expect).full_name != writer.full_name:
            raise UndecodableMessage(
                "unexpected_record_type", f"expected {expect}, got {writer.full_name}"
            )
        schemas = self._readers.get(writer.fingerprint) or self._reader_of(writer)
        body = io.BytesIO(data[HEADER_LEN:])
        try:
            value = schemaless_reader(body, *schemas)
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError... on bad bodies
            raise UndecodableMessage(
                "corrupt_avro_body", f"{writer.full_name} v{writer.version}: {type(exc).__name__}: {exc}"
            ) from exc
        if body.tell() != len(data) - HEADER_LEN:
            raise UndecodableMessage(
                "trailing_bytes",
                f"{writer.full_name} v{writer.version}: {len(data) - HEADER_LEN - body.tell()} bytes after the record",
            )
        return Decoded(writer.full_name, writer.version, value)

    def _reader_of(self, writer: SchemaVersion) -> tuple[Any, Any]:
        """(writer schema, reader schema) to read `writer`'s messages with: the newest version of
        the record, or None when that is the writer's own (fastavro then skips resolving them)."""
        latest = self.registry.latest(writer.full_name)
        if self.logical_types:
            pair = (writer.parsed, None if latest is writer else latest.parsed)
        else:
            def plain(version: SchemaVersion) -> Any:
                return parse_schema(_without_logical_types(version.raw), named_schemas={})
            pair = (plain(writer), None if latest is writer else plain(latest))
        self._readers[writer.fingerprint] = pair
        return pair
