"""Wires the registration service from settings. Nothing connects at import time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from pydantic import Field, field_validator

from hub import settings as shared_settings

from hub.messaging import AvroCodec, EventProducer, SchemaRegistry
from hub.registration.adapters import database as db
from hub.registration.adapters.repository import PostgresRegistrationRepository
from hub.registration.service_layer.services import RegistrationService

REPO_ROOT = Path(__file__).resolve().parents[3]



class Settings(shared_settings.PersonKeySettings):
    postgres_url: str = Field(default_factory=shared_settings.postgres_url, validation_alias="HUB_POSTGRES_URL")
    kafka_bootstrap: str = Field(default_factory=shared_settings.kafka_bootstrap, validation_alias="HUB_KAFKA_BOOTSTRAP")
    database: str = Field("hub_registration", validation_alias="HUB_REGISTRATION_DATABASE")
    voucher_key: bytes = Field(b"", validation_alias="HUB_VOUCHER_KEY", validate_default=True)
    bureaus_file: Path = Field(REPO_ROOT / "reference" / "bureaus.yaml", validation_alias="HUB_BUREAUS_FILE")

    @field_validator("voucher_key", mode="before")
    @classmethod
    def _secret(cls, value: object) -> bytes:
        return shared_settings.checked_secret("HUB_VOUCHER_KEY", value).encode()


@dataclass(frozen=True)
class Bureau:
    code: str
    name: str
    pool: str
    token_sha256: str


def load_bureaus(path: Path) -> dict[str, Bureau]:
    """Bureaus by the SHA-256 of their API token (a sample token only in the development mode)."""
    import yaml

    rows = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    shared_settings.refuse_sample_tokens(path, rows, ("dev-bureau-{pool}",))
    return {r["token_sha256"]: Bureau(str(r["code"]), r["name"], str(r["pool"]), r["token_sha256"]) for r in rows}


@dataclass
class Registration:
    settings: Settings
    engine: sa.Engine
    codec: AvroCodec
    service: RegistrationService
    bureaus: dict[str, Bureau]

    def producer(self, client_id: str) -> EventProducer:
        return EventProducer(self.settings.kafka_bootstrap, self.codec, client_id=client_id)


def bootstrap(settings: Settings | None = None) -> Registration:
    settings = settings or Settings()  # refuses a missing or sample secret outside the development mode
    bureaus = load_bureaus(settings.bureaus_file)
    engine = sa.create_engine(settings.database_url, pool_size=8, max_overflow=8, pool_pre_ping=True)
    db.create_schema(engine)
    codec = AvroCodec(SchemaRegistry())
    return Registration(settings, engine, codec, RegistrationService(PostgresRegistrationRepository(engine), codec, settings.person_keys, settings.voucher_key),
                        bureaus)


def background(reg: Registration, stop, relay: bool = True, lag_interval_s: float = 15.0):
    """The service's background loops under one Supervisor (not started): the outbox relay and
    the lag sampler."""
    from hub.messaging.outbox import supervise_relay
    from hub.operations.metrics import supervise_lag_sampler
    from hub.operations.supervision import Supervisor

    bootstrap_servers = reg.settings.kafka_bootstrap
    supervisor = Supervisor(stop)

    if relay:
        supervise_relay(supervisor, "registration", reg.engine, db.outbox, db.OUTBOX_RELAY_LOCK,
                        lambda: reg.producer("registration-outbox"), stop, bootstrap_servers)
    supervise_lag_sampler(supervisor, "registration", bootstrap_servers, stop, lag_interval_s)
    return supervisor
