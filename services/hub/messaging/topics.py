"""The hub's topic table: every topic, what it is keyed by, and how it is kept.

`ensure_topics` is the one place topics are made: every service calls it before it produces
or consumes, and it also mends a topic that exists with the wrong shape (a broker that
auto-created it: too few partitions, or deleted where it should be compacted). Brokers run
with auto-creation off, so no topic ever gets a broker's defaults.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    records: tuple[str, ...]
    partitions: int = 6
    compacted: bool = False
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def dead_letter(self) -> str:
        return dead_letter_topic(self.name)

    @property
    def all_configs(self) -> dict[str, str]:
        return {"cleanup.policy": "compact" if self.compacted else "delete", **self.configs}

    def new_topic(self, replication_factor: int = -1) -> NewTopic:
        """-1: the cluster's default.replication.factor (1 on the local broker, 3 in deploy/k8s)."""
        return NewTopic(self.name, self.partitions, replication_factor, topic_configs=self.all_configs)


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


REGISTRATION_EVENTS = Topic(
    "registration.events", key="person_ref", records=("cn.hub.registration.RegistrationChanged",), compacted=True
)
SETTLEMENT_EVENTS = Topic(
    "settlement.events",
    key="home_pool",
    records=("cn.hub.settlement.SettlementCompleted", "cn.hub.settlement.SettlementReversed"),
    configs={"retention.ms": str(30 * 24 * 3600 * 1000)},  # 30 days: a month of replay for clearing
)
CLEARING_STATEMENTS = Topic(
    "clearing.statements", key="pool_code",
    records=("cn.hub.clearing.ClearingStatement", "cn.hub.clearing.MonthlyStatementChanged",
             "cn.hub.clearing.AdvanceDeposited", "cn.hub.clearing.ClearingStatementConfirmed"), partitions=3,
    # clearing's own log (`hub clearing rebuild` reads it whole): a few events per pool and day, kept
    # over a year, as the books are
    configs={"retention.ms": str(400 * 24 * 3600 * 1000)},
)
REFERENCE_POLICIES = Topic(
    "reference.policies",
    key="pool_code:insurance_type:policy_version",
    records=("cn.hub.reference.ReferencePolicy",),
    partitions=1,
    compacted=True,
)
REFERENCE_CATALOGUE = Topic(
    "reference.catalogue",
    key="pool_code:catalogue_version:item_code",
    records=("cn.hub.reference.ReferenceCatalogueItem",),
    partitions=3,
    compacted=True,
)

PORTAL_AUDIT = Topic(
    "portal.audit", key="pool", records=("cn.hub.portal.PortalActionRecorded",), partitions=1,
    configs={"retention.ms": str(400 * 24 * 3600 * 1000)},  # over a year: an audit trail outlives the books' year
)

ALL_TOPICS = (REGISTRATION_EVENTS, SETTLEMENT_EVENTS, CLEARING_STATEMENTS, REFERENCE_POLICIES, REFERENCE_CATALOGUE,
              PORTAL_AUDIT)


def dead_letter_of(topic: Topic) -> Topic:
    return Topic(topic.dead_letter, key="source key", records=("cn.hub.messaging.DeadLetter",), partitions=1)


def ensure_topics(bootstrap: str, topics: tuple[Topic, ...] = ALL_TOPICS, with_dead_letters: bool = True) -> None:
    """Create the topics (and their dead-letter topics) that do not exist, and mend the ones
    that exist with too few partitions or another cleanup policy. Idempotent; raises on a
    broker fault (callers run under a Supervisor, or retry)."""
    wanted = list(topics) + ([dead_letter_of(t) for t in topics] if with_dead_letters else [])
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="hub-admin")
    try:
        existing = set(admin.list_topics())
        missing = [t.new_topic() for t in wanted if t.name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them between the listing and the request
        present = [t for t in wanted if t.name in existing]
        if present:
            _mend(admin, present)
    finally:
        admin.close()


def _mend(admin: KafkaAdminClient, topics: list[Topic]) -> None:
    described = {d["name"]: len(d["partitions"]) for d in admin.describe_topics([t.name for t in topics])}
    grow = {t.name: NewPartitions(t.partitions) for t in topics if described.get(t.name, t.partitions) < t.partitions}
    if grow:
        log.warning("topics with too few partitions, adding: %s", ", ".join(f"{n}->{p.total_count}" for n, p in grow.items()))
        admin.create_partitions(grow)
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t.name, configs=list(t.all_configs))
                                      for t in topics], config_filter="all").get("topic", {})
    for t in topics:
        have = {k: v.get("value") for k, v in configs.get(t.name, {}).items()}
        wrong = {k: v for k, v in t.all_configs.items() if have.get(k) != v}
        if wrong:
            log.warning("topic %s had %s; setting %s", t.name, {k: have.get(k) for k in wrong}, wrong)
            # Incremental: only these keys change; what an operator set beside them (min ISR) stays.
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t.name, configs=wrong)], incremental=True)
