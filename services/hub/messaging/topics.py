"""The hub's topic table: every topic, what it is keyed by, and how it is kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


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

    def new_topic(self, replication_factor: int = 1) -> NewTopic:
        configs = {"cleanup.policy": "compact" if self.compacted else "delete", **self.configs}
        return NewTopic(self.name, self.partitions, replication_factor, topic_configs=configs)


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


REGISTRATION_EVENTS = Topic(
    "registration.events", key="person_ref", records=("cn.hub.registration.RegistrationChanged",), compacted=True
)
SETTLEMENT_EVENTS = Topic(
    "settlement.events",
    key="home_pool",
    records=("cn.hub.settlement.SettlementCompleted", "cn.hub.settlement.SettlementReversed"),
)
CLEARING_STATEMENTS = Topic(
    "clearing.statements", key="pool_code", records=("cn.hub.clearing.ClearingStatement",), partitions=3
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

ALL_TOPICS = (REGISTRATION_EVENTS, SETTLEMENT_EVENTS, CLEARING_STATEMENTS, REFERENCE_POLICIES, REFERENCE_CATALOGUE)


def ensure_topics(bootstrap: str, topics: tuple[Topic, ...] = ALL_TOPICS, with_dead_letters: bool = True) -> None:
    """Create the topics (and their dead-letter topics) that do not exist yet."""
    wanted: list[NewTopic] = []
    for topic in topics:
        wanted.append(topic.new_topic())
        if with_dead_letters:
            wanted.append(NewTopic(topic.dead_letter, 1, 1, topic_configs={"cleanup.policy": "delete"}))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="hub-admin")
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them between the listing and the request
    finally:
        admin.close()
