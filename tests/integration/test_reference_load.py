"""`hub reference load` against a real broker: publish, republish, refuse a changed version."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from hub.messaging import AvroCodec, ensure_topics
from hub.messaging.topics import REFERENCE_POLICIES
from hub.reference.policy import PolicyFileError
from hub.registration.entrypoints.reference_load import ReferenceConflict, load_reference, published

REPO = Path(__file__).resolve().parents[2]


def test_the_sample_reference_data_publishes_and_republishing_changes_nothing(servers):
    codec = AvroCodec()
    ensure_topics(servers.kafka_bootstrap)
    load_reference(REPO / "reference", servers.kafka_bootstrap, codec)  # whatever was there before
    again = load_reference(REPO / "reference", servers.kafka_bootstrap, codec)
    assert (again.policies_published, again.items_published) == (0, 0)
    assert again.policies_unchanged == len(list((REPO / "reference" / "policies").glob("*.yaml")))
    assert again.items_unchanged == 7 * 2920
    on_topic = published(servers.kafka_bootstrap, codec, REFERENCE_POLICIES.name, lambda v: v["policy_version"])
    assert {"371525:RESIDENT:371525-RESIDENT-2018.3", "510900:RESIDENT:510900-RESIDENT-2019.2",
            "510900:RESIDENT:510900-RESIDENT-2020.2"} <= set(on_topic)


def test_a_changed_published_version_is_refused_and_a_bad_file_publishes_nothing(servers, tmp_path):
    # A pool of its own (the topics are shared with the other tests): a uuid-derived code.
    codec = AvroCodec()
    pool = f"98{uuid.uuid4().int % 10**4:04d}"
    ref = tmp_path / "reference"
    (ref / "policies").mkdir(parents=True)
    (ref / "catalogues").mkdir()
    doc = yaml.safe_load((REPO / "reference" / "policies" / "999903-RESIDENT-2023.2.yaml").read_text(encoding="utf-8"))

    def write(version: str, cap: int) -> Path:
        path = ref / "policies" / f"{pool}-RESIDENT-{version}.yaml"
        body = dict(doc, pool_code=pool, policy_version=f"{pool}-RESIDENT-{version}",
                    inpatient=dict(doc["inpatient"], annual_cap=cap))
        path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
        return path

    first = write("1", 130000)
    load_reference(ref, servers.kafka_bootstrap, codec)
    write("1", 140000)
    with pytest.raises(ReferenceConflict, match=f"{pool}:RESIDENT:{pool}-RESIDENT-1"):
        load_reference(ref, servers.kafka_bootstrap, codec)
    # As a new version it is welcome, and the old one stays.
    write("1", 130000)
    write("2", 140000)
    assert load_reference(ref, servers.kafka_bootstrap, codec).policies_published == 1
    (ref / "policies" / "broken.yaml").write_text("pool_code: 1\n", encoding="utf-8")
    write("3", 150000)
    with pytest.raises(PolicyFileError):
        load_reference(ref, servers.kafka_bootstrap, codec)
    on_topic = published(servers.kafka_bootstrap, codec, REFERENCE_POLICIES.name, lambda v: v["policy_version"])
    assert f"{pool}:RESIDENT:{pool}-RESIDENT-3" not in on_topic
    assert {f"{pool}:RESIDENT:{pool}-RESIDENT-1", f"{pool}:RESIDENT:{pool}-RESIDENT-2"} <= set(on_topic)
    assert first.exists()
