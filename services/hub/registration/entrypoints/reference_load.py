"""`hub reference load DIR`: validate policies and catalogues, publish them to compacted topics.

Keys carry the version (`pool:type:version`, `pool:catalogue-version:item`), so compaction
keeps every version and a new one never overwrites an old one. Publishing the same files
again changes nothing (same keys, same content, same event ids); publishing different content
under a version already on the topic is refused — that needs a new version.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from kafka import KafkaConsumer, TopicPartition

from hub.messaging import AvroCodec, EventProducer, ensure_topics
from hub.messaging.topics import REFERENCE_CATALOGUE, REFERENCE_POLICIES
from hub.reference.catalogue import Catalogue, CatalogueItem, load_catalogues
from hub.reference.policy import Policy, load_policies

PRODUCER = "hub-reference-load"
NAMESPACE = uuid.UUID("6f1c2a52-0d8e-4c1e-9d55-6a1f4c1a7e01")


class ReferenceConflict(ValueError):
    """A version already published with other content."""


@dataclass
class LoadReport:
    policies_published: int = 0
    policies_unchanged: int = 0
    items_published: int = 0
    items_unchanged: int = 0


def policy_key(p: Policy) -> str:
    return f"{p.pool_code}:{p.insurance_type.value}:{p.policy_version}"


def item_record(cat: Catalogue, item: CatalogueItem, now: datetime) -> dict:
    content = "|".join([item.item_name, item.item_kind, item.item_class.value, str(item.self_pay_first_bp),
                        str(item.price_cap_fen), item.over_cap_rule.value, str(item.essential_drug)]
                       + ([item.former_code] if item.former_code else []))  # v1 items keep their event ids
    key = f"{cat.pool_code}:{cat.catalogue_version}:{item.item_code}"
    return {
        "event_id": uuid.uuid5(NAMESPACE, f"{key}|{content}"), "event_time": now, "producer": PRODUCER,
        "schema_version": 2, "pool_code": cat.pool_code, "catalogue_version": cat.catalogue_version,
        "item_code": item.item_code, "item_name": item.item_name,
        "item_kind": item.item_kind if item.item_kind in ("DRUG", "SERVICE", "MATERIAL") else "OTHER",
        "item_class": item.item_class.value, "self_pay_first_share_bp": item.self_pay_first_bp,
        "price_cap_fen": item.price_cap_fen, "over_cap_rule": item.over_cap_rule.value,
        "essential_drug": item.essential_drug, "former_code": item.former_code, "withdrawn": False,
    }


def policy_record(p: Policy, now: datetime) -> dict:
    sha = p.sha256()
    return {
        "event_id": uuid.uuid5(NAMESPACE, f"{policy_key(p)}|{sha}"), "event_time": now, "producer": PRODUCER,
        "schema_version": 1, "pool_code": p.pool_code, "insurance_type": p.insurance_type.value,
        "policy_version": p.policy_version, "effective_from": p.effective_from, "effective_to": p.effective_to,
        "document_json": p.canonical_json(), "document_sha256": sha,
    }


def published(bootstrap: str, codec: AvroCodec, topic: str, fingerprint: Callable[[dict], str]) -> dict[str, str]:
    """What a compacted topic holds now: key -> content fingerprint of its newest record."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not tps:
            return {}
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        seen: dict[str, str] = {}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=1000, max_records=5000).values():
                for record in batch:
                    value = codec.decode(record.value).value
                    seen[record.key.decode()] = fingerprint(value)
        return seen
    finally:
        consumer.close()


def load_reference(directory: Path, bootstrap: str, codec: AvroCodec,
                   progress: Callable[[Iterable, int, str], Iterable] = lambda it, total, desc: it) -> LoadReport:
    """Validate everything first (nothing is published if anything is wrong), then publish."""
    policies = load_policies(directory / "policies")
    catalogues = load_catalogues(directory / "catalogues")
    now = datetime.now(timezone.utc)
    ensure_topics(bootstrap, (REFERENCE_POLICIES, REFERENCE_CATALOGUE))

    on_topic = published(bootstrap, codec, REFERENCE_POLICIES.name, lambda v: v["document_sha256"])
    item_ids = published(bootstrap, codec, REFERENCE_CATALOGUE.name, lambda v: str(v["event_id"]))
    conflicts = [f"policy {policy_key(p)} is published with other content"
                 for p in policies if on_topic.get(policy_key(p), p.sha256()) != p.sha256()]
    items = [(f"{c.pool_code}:{c.catalogue_version}:{i.item_code}", item_record(c, i, now))
             for c in catalogues for i in c.items.values()]
    conflicts += [f"catalogue item {key} is published with other content"
                  for key, rec in items if item_ids.get(key, str(rec["event_id"])) != str(rec["event_id"])]
    if conflicts:
        raise ReferenceConflict("publish a new version instead of changing a published one:\n  "
                                + "\n  ".join(conflicts[:20]) + (f"\n  ... and {len(conflicts) - 20} more" if len(conflicts) > 20 else ""))

    report = LoadReport()
    with EventProducer(bootstrap, codec, client_id=PRODUCER, linger_ms=20) as producer:
        for p in policies:
            if policy_key(p) in on_topic:
                report.policies_unchanged += 1
                continue
            producer.send(REFERENCE_POLICIES.name, policy_key(p), "ReferencePolicy", policy_record(p, now))
            report.policies_published += 1
        for key, record in progress(items, len(items), "catalogue items"):
            if key in item_ids:
                report.items_unchanged += 1
                continue
            producer.send(REFERENCE_CATALOGUE.name, key, "ReferenceCatalogueItem", record)
            report.items_published += 1
        producer.flush()
    return report
