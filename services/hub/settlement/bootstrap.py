"""Wires the settle-at-treatment service from settings. Nothing connects at import time."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import redis
import sqlalchemy as sa
from pydantic import Field, field_validator

from hub import settings as shared_settings

from hub.messaging import AvroCodec, EventProducer, SchemaRegistry
from hub.settlement.adapters import database as db
from hub.settlement.adapters.read_model import ReadModel
from hub.settlement.adapters.postgres import PostgresRepository
from hub.settlement.service_layer.claims import Actor, Claims
from hub.settlement.service_layer.convention import Limits
from hub.settlement.service_layer.handlers import SettlementService
from hub.settlement.service_layer.identity import HospitalRegistry

REPO_ROOT = Path(__file__).resolve().parents[3]
log = logging.getLogger(__name__)



class Settings(shared_settings.PersonKeySettings):
    postgres_url: str = Field(default_factory=shared_settings.postgres_url, validation_alias="HUB_POSTGRES_URL")
    redis_url: str = Field(default_factory=shared_settings.redis_url, validation_alias="HUB_REDIS_URL")
    kafka_bootstrap: str = Field(default_factory=shared_settings.kafka_bootstrap, validation_alias="HUB_KAFKA_BOOTSTRAP")
    database: str = Field("hub_settlement", validation_alias="HUB_SETTLEMENT_DATABASE")
    # verifies the e-vouchers the home regions' voucher service (registration) issues
    voucher_key: bytes = Field(b"", validation_alias="HUB_VOUCHER_KEY", validate_default=True)
    hospitals_file: Path = Field(REPO_ROOT / "reference" / "hospitals.yaml", validation_alias="HUB_HOSPITALS_FILE")
    # Who may submit manual claims: home bureaus, and designated agencies (代办) of treatment regions.
    bureaus_file: Path = Field(REPO_ROOT / "reference" / "bureaus.yaml", validation_alias="HUB_BUREAUS_FILE")
    agencies_file: Path = Field(REPO_ROOT / "reference" / "agencies.yaml", validation_alias="HUB_AGENCIES_FILE")
    db_pool_size: int = Field(16, validation_alias="HUB_SETTLEMENT_DB_POOL")
    # Group commit (service_layer/group_commit.py): group threads per HTTP worker, each with its
    # own database connection, and the most requests one transaction takes.
    settle_threads: int = Field(1, validation_alias="HUB_SETTLE_THREADS")
    settle_max_group: int = Field(64, validation_alias="HUB_SETTLE_MAX_GROUP")
    settle_linger_ms: float = Field(0.0, validation_alias="HUB_SETTLE_LINGER_MS")
    # What a hospital may send (HUB_LIMIT_MAX_PRICE_FEN, ...): see convention.Limits.
    limits: Limits = Field(default_factory=Limits.from_env)
    # A rehearsal's business clock: settlements and claims are stamped this many days off the real
    # clock (the simulated day settles its hospitals' previous days with -1). Always 0 in service;
    # a non-zero value is logged as a warning at start and shown by /health/ready.
    clock_shift_days: int = Field(0, validation_alias="HUB_SETTLEMENT_CLOCK_SHIFT_DAYS")

    @field_validator("voucher_key", mode="before")
    @classmethod
    def _secret(cls, value: object) -> bytes:
        return shared_settings.checked_secret("HUB_VOUCHER_KEY", value).encode()

    def clock(self) -> Callable[[], datetime]:
        shift = timedelta(days=self.clock_shift_days)
        return lambda: datetime.now(timezone.utc) + shift


@dataclass
class Settlement:
    settings: Settings
    engine: sa.Engine
    read_model: ReadModel
    codec: AvroCodec
    hospitals: HospitalRegistry
    service: SettlementService
    claims: Claims
    claimants: dict[str, Actor]  # token sha256 -> the bureau or agency it belongs to

    def producer(self, client_id: str) -> EventProducer:
        return EventProducer(self.settings.kafka_bootstrap, self.codec, client_id=client_id)


def bootstrap(settings: Settings | None = None, create_schema: bool = True, gateway_secrets: bool = True) -> Settlement:
    """The service wired; `gateway_secrets=False` for tools that answer no hospital (the replay)."""
    settings = settings or Settings()  # refuses a missing or sample secret outside the development mode
    hospitals = load_hospitals(settings.hospitals_file, gateway_secrets)
    claimants = load_claimants(settings.bureaus_file, settings.agencies_file)
    engine = db.create_engine(settings.database_url, settings.db_pool_size)
    if create_schema:
        db.create_schema(engine)
    read_model = ReadModel(redis.Redis.from_url(settings.redis_url))
    codec = AvroCodec(SchemaRegistry())
    repository = PostgresRepository(engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
    if settings.clock_shift_days:
        log.warning("HUB_SETTLEMENT_CLOCK_SHIFT_DAYS=%d: settlements are stamped %d days off the real clock "
                    "(a rehearsal; never in service)", settings.clock_shift_days, settings.clock_shift_days)
    service = SettlementService(repository, read_model, codec, settings.person_keys, clock=settings.clock(),
                                limits=settings.limits, voucher_key=settings.voucher_key)
    claims = Claims(repository, read_model, service.reference, codec, settings.person_keys, hospitals, settings.limits,
                    clock=settings.clock())
    return Settlement(settings, engine, read_model, codec, hospitals, service, claims, claimants)


def load_hospitals(path: Path, gateway_secrets: bool = True) -> HospitalRegistry:
    """The designated hospitals (a sample token or gateway secret only in the development mode)."""
    import yaml

    rows = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    shared_settings.refuse_sample_tokens(path, rows, ("dev-{code}",))
    return HospitalRegistry.from_rows(rows, gateway_secrets)


def load_claimants(bureaus_file: Path, agencies_file: Path) -> dict[str, Actor]:
    """Home bureaus and agencies by the SHA-256 of their API token (a missing agencies file: none)."""
    import yaml

    out: dict[str, Actor] = {}
    for kind, path, sample in (("bureau", bureaus_file, "dev-bureau-{pool}"), ("agency", agencies_file, "dev-agency-{code}")):
        if path.exists():
            rows = yaml.safe_load(path.read_text(encoding="utf-8")) or []
            shared_settings.refuse_sample_tokens(path, rows, (sample,))
            for r in rows:
                out[r["token_sha256"]] = Actor(kind, str(r["code"]), str(r["pool"]))
    return out


def background(hub: Settlement, stop, relay: bool = True, read_model: bool = True,
               state_file: Path | None = None, lag_interval_s: float = 15.0):
    """The service's background loops under one Supervisor (not started): the read model, the
    outbox relay and the lag sampler. Each builds its Kafka clients anew on every restart, and
    makes sure its topics exist first."""
    from hub.messaging import ensure_topics
    from hub.messaging.outbox import supervise_relay
    from hub.operations.metrics import supervise_lag_sampler
    from hub.operations.supervision import Supervisor
    from hub.settlement.entrypoints.read_model_consumer import ReadModelConsumer

    bootstrap_servers = hub.settings.kafka_bootstrap
    supervisor = Supervisor(stop, state_file=state_file)

    def read_model_loop(beat):
        ensure_topics(bootstrap_servers)
        dead_letters = hub.producer("settlement-read-model-dlq")
        consumer = ReadModelConsumer(bootstrap_servers, hub.read_model, hub.codec, dead_letters, stop, beat=beat)

        def run() -> None:
            try:
                consumer.run()
            finally:
                dead_letters.close(timeout_s=1)
        return run

    if read_model:
        supervisor.add("settlement-read-model", read_model_loop, stale_after_s=60)
    if relay:
        supervise_relay(supervisor, "settlement", hub.engine, db.outbox, db.OUTBOX_RELAY_LOCK,
                        lambda: hub.producer("settlement-outbox"), stop, bootstrap_servers)
    supervise_lag_sampler(supervisor, "settlement", bootstrap_servers, stop, lag_interval_s)
    return supervisor
