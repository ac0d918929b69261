"""The settle service's read model in Redis: registrations, policies and catalogues from Kafka.

Redis holds only what the topics can rebuild. The consumer keeps its Kafka positions in the
same Redis (this class is its PositionStore), so a flushed Redis is noticed — the epoch key is
gone — and rebuilt from the start of the compacted topics; until it has caught up, `ready()` is
false and the API answers "try again" instead of a wrong refusal.

Registrations are stored as the Avro bytes of the newest RegistrationChanged (compact, and
already a schema'd encoding); catalogue items as one short delimited string each.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import redis

from hub.reference.catalogue import Catalogue, CatalogueItem, ItemClass, OverCapRule
from hub.reference.policy import Policy, parse_policy

READY = "rm:ready"
_MARK_READY = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[2], '1') return 1 end return 0"
EPOCH = "rm:epoch"
OFFSETS = "rm:offsets"
POLICIES = "rm:policies"
CATALOGUES = "rm:catalogues"
REFSTAMP = "rm:refstamp"


def reg_key(person_ref: str) -> str:
    return f"rm:reg:{person_ref}"


def cred_key(credential_ref: str) -> str:
    return f"rm:cred:{credential_ref}"


def cat_key(pool: str, version: str) -> str:
    return f"rm:cat:{pool}:{version}"


def pack_item(value: dict[str, Any]) -> str:
    cap = "" if value["price_cap_fen"] is None else str(value["price_cap_fen"])
    return "\x1f".join([value["item_class"], str(value["self_pay_first_share_bp"]), cap, value["over_cap_rule"],
                        "1" if value.get("essential_drug") else "0", value["item_kind"], value.get("former_code") or "",
                        value["item_name"]])


def unpack_item(code: str, packed: str) -> CatalogueItem:
    fields = packed.split("\x1f", 7)
    if len(fields) == 7:  # packed before former codes (a read model of an older build)
        fields.insert(6, "")
    cls, bp, cap, rule, essential, kind, former, name = fields
    return CatalogueItem(code, name, kind, ItemClass(cls), int(bp), int(cap) if cap else None,
                         OverCapRule(rule), essential == "1", former)


class ReadModel:
    def __init__(self, client: redis.Redis):
        self.redis = client

    # ---------------------------------------------------------------- reads (API side)

    def ready(self) -> bool:
        return self.redis.get(READY) == b"1"

    def registration_bytes(self, person_ref: str) -> bytes | None:
        return self.redis.get(reg_key(person_ref))

    def registrations_bytes(self, person_refs: list[str]) -> dict[str, bytes]:
        """Several registrations in one round trip; people the read model does not know are left out."""
        if not person_refs:
            return {}
        return {ref: raw for ref, raw in zip(person_refs, self.redis.mget([reg_key(r) for r in person_refs]))
                if raw is not None}

    def person_of_credential(self, credential_ref: str) -> str | None:
        """The person_ref a credential (hub.privacy.credential_ref) belongs to, if any."""
        raw = self.redis.get(cred_key(credential_ref))
        return raw.decode() if raw else None

    def reference_stamp(self) -> int:
        return int(self.redis.get(REFSTAMP) or 0)

    def policies(self) -> list[Policy]:
        return [parse_policy(json.loads(doc), f"redis {key.decode()}") for key, doc in self.redis.hgetall(POLICIES).items()]

    def catalogues(self) -> list[Catalogue]:
        out = []
        for member in sorted(m.decode() for m in self.redis.smembers(CATALOGUES)):
            pool, version = member.split(":", 1)
            items = {code.decode(): unpack_item(code.decode(), packed.decode())
                     for code, packed in self.redis.hgetall(cat_key(pool, version)).items()}
            out.append(Catalogue(pool, version, items))
        return out

    # ---------------------------------------------------------------- writes (consumer side)

    def epoch(self) -> str | None:
        raw = self.redis.get(EPOCH)
        return raw.decode() if raw else None

    def start_epoch(self, epoch: str) -> None:
        """Begin a rebuild: not ready, no positions (every partition is read from its start)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(READY, OFFSETS)
        pipe.set(EPOCH, epoch)
        pipe.execute()

    # The consumer's PositionStore (messaging.consumer): its positions live beside the data.

    def load(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.redis.hgetall(OFFSETS).items()}

    def save(self, positions: dict[str, int]) -> None:
        self.redis.hset(OFFSETS, mapping={k: str(v) for k, v in positions.items()})

    def apply(self, records: Iterable[tuple[str, dict[str, Any], bytes]]) -> None:
        """Write a batch of decoded records atomically. Applying a batch again (after a crash
        before its positions were saved) leaves the same state: each key holds the newest value."""
        pipe = self.redis.pipeline(transaction=True)
        reference_changed = False
        for record_name, value, raw in records:
            if record_name.endswith("RegistrationChanged"):
                # Keyed by person on a partition of its own: later is newer.
                pipe.set(reg_key(value["person_ref"]), raw)
                for credential in value.get("credential_refs") or ():
                    # A credential dropped from a registration keeps pointing here until a rebuild;
                    # the person it names is checked against the registration (`credential_refs`).
                    pipe.set(cred_key(credential), value["person_ref"])
            elif record_name.endswith("ReferencePolicy"):
                key = f"{value['pool_code']}:{value['insurance_type']}:{value['policy_version']}"
                pipe.hset(POLICIES, key, value["document_json"])
                reference_changed = True
            elif record_name.endswith("ReferenceCatalogueItem"):
                key = cat_key(value["pool_code"], value["catalogue_version"])
                if value.get("withdrawn"):
                    pipe.hdel(key, value["item_code"])
                else:
                    pipe.hset(key, value["item_code"], pack_item(value))
                pipe.sadd(CATALOGUES, f"{value['pool_code']}:{value['catalogue_version']}")
                reference_changed = True
        if reference_changed:
            pipe.incr(REFSTAMP)
        pipe.execute()

    def mark_ready(self, epoch: str) -> bool:
        """Ready, if the read model is still the one of `epoch`: a Redis flushed after the consumer
        last checked its epoch must not be marked ready empty (seen in CI: a flush, then a request
        answered person_not_enrolled). One script, so nothing comes between the check and the set."""
        return bool(self.redis.eval(_MARK_READY, 2, EPOCH, READY, epoch))
