"""Wires the bureau portal from settings. Nothing connects at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import sqlalchemy as sa
from pydantic import Field, field_validator

from hub import settings as shared_settings
from hub.messaging import AvroCodec, SchemaRegistry
from hub.portal.adapters import database as db
from hub.portal.adapters.hub_api import HubApi
from hub.portal.adapters.passwords import Argon2Hasher
from hub.portal.adapters.repository import PostgresPortalRepository
from hub.portal.domain.people import LockoutRule
from hub.portal.service_layer.ports import PasswordHasher, PortalRepository

REPO_ROOT = Path(__file__).resolve().parents[3]
_env = shared_settings.env


def bureau_tokens(pools: Iterable[str]) -> dict[str, str]:
    """Each bureau's API token, by pool, the portal calls the services with: HUB_PORTAL_BUREAU_TOKENS
    as `pool=token,pool=token`; in the development mode the sample `dev-bureau-<pool>` of every
    bureau (`pools`, from the bureaus file) is the default."""
    given = os.environ.get("HUB_PORTAL_BUREAU_TOKENS", "").strip()
    tokens = {}
    for pair in filter(None, (p.strip() for p in given.split(","))):
        pool, sep, token = pair.partition("=")
        if not sep or not token.strip():
            raise shared_settings.UnsafeSecret("HUB_PORTAL_BUREAU_TOKENS is pool=token pairs separated by commas")
        tokens[pool.strip()] = token.strip()
    if shared_settings.development_mode():
        return {pool: f"dev-bureau-{pool}" for pool in pools} | tokens
    if not tokens:
        raise shared_settings.UnsafeSecret(
            "HUB_PORTAL_BUREAU_TOKENS is not set. Outside the development mode (HUB_ENV=development) the portal "
            "calls the services with each bureau's own token")
    if any(t.startswith("dev-bureau-") for t in tokens.values()):
        raise shared_settings.UnsafeSecret("HUB_PORTAL_BUREAU_TOKENS holds a sample token published in this repository")
    return tokens


class Settings(shared_settings.ServiceSettings):
    postgres_url: str = Field(default_factory=shared_settings.postgres_url, validation_alias="HUB_POSTGRES_URL")
    kafka_bootstrap: str = Field(default_factory=shared_settings.kafka_bootstrap, validation_alias="HUB_KAFKA_BOOTSTRAP")
    database: str = Field("hub_portal", validation_alias="HUB_PORTAL_DATABASE")
    clearing_url: str = Field("http://127.0.0.1:8430", validation_alias="HUB_PORTAL_CLEARING_URL")
    settlement_url: str = Field("http://127.0.0.1:8410", validation_alias="HUB_PORTAL_SETTLEMENT_URL")
    registration_url: str = Field("http://127.0.0.1:8420", validation_alias="HUB_PORTAL_REGISTRATION_URL")
    operator_token: str = Field("", validation_alias="HUB_OPERATOR_TOKEN", validate_default=True)
    bureaus_file: Path = Field(REPO_ROOT / "reference" / "bureaus.yaml", validation_alias="HUB_BUREAUS_FILE")
    # Apache ECharts, installed from the npm registry by deploy/local/setup.sh
    assets_dir: Path = Field(REPO_ROOT / "deploy" / "portal-assets" / "node_modules" / "echarts" / "dist",
                             validation_alias="HUB_PORTAL_ASSETS")
    # Cookies go only over HTTPS outside the development mode (the portal sits behind TLS there).
    secure_cookies: bool = Field(default_factory=lambda: not shared_settings.development_mode())
    lockout: LockoutRule = Field(default_factory=lambda: LockoutRule(int(_env("HUB_PORTAL_MAX_FAILURES", "5"))))

    @field_validator("operator_token", mode="before")
    @classmethod
    def _operator_token(cls, value: object) -> str:
        return shared_settings.checked_secret("HUB_OPERATOR_TOKEN", value)


@dataclass
class Portal:
    settings: Settings
    repository: PortalRepository
    hasher: PasswordHasher
    api: HubApi
    bureaus: dict[str, tuple[str, str]]  # pool -> (bureau code, name)
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    engine: sa.Engine | None = None
    codec: AvroCodec | None = None


def load_bureaus(path: Path) -> dict[str, tuple[str, str]]:
    import yaml

    return {str(r["pool"]): (str(r["code"]), str(r["name"])) for r in yaml.safe_load(path.read_text(encoding="utf-8")) or []}


def ensure_database(settings: Settings) -> None:
    """The portal's database on the server, made when missing (as the local launcher makes the others')."""
    admin = sa.create_engine(settings.postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.execute(sa.text("select 1 from pg_database where datname = :d"), {"d": settings.database}).first() is None:
                conn.execute(sa.text(f'create database "{settings.database}"'))
    finally:
        admin.dispose()


def bootstrap(settings: Settings | None = None) -> Portal:
    settings = settings or Settings()  # refuses a missing or sample secret outside the development mode
    bureaus = load_bureaus(settings.bureaus_file)
    tokens = bureau_tokens(bureaus)
    ensure_database(settings)
    engine = sa.create_engine(settings.database_url, pool_size=4, max_overflow=4, pool_pre_ping=True)
    db.create_schema(engine)
    codec = AvroCodec(SchemaRegistry())
    api = HubApi(settings.clearing_url, settings.settlement_url, settings.registration_url, settings.operator_token,
                 tokens)
    return Portal(settings, PostgresPortalRepository(engine, codec), Argon2Hasher(), api, bureaus,
                  engine=engine, codec=codec)


def background(portal: Portal, stop, relay: bool = True):
    """The portal's one loop under a Supervisor (not started): the audit events' outbox relay."""
    from hub.messaging import EventProducer
    from hub.messaging.outbox import supervise_relay
    from hub.operations.supervision import Supervisor

    supervisor = Supervisor(stop)
    if relay:
        supervise_relay(supervisor, "portal", portal.engine, db.outbox, db.OUTBOX_RELAY_LOCK,
                        lambda: EventProducer(portal.settings.kafka_bootstrap, portal.codec, client_id="portal-outbox"),
                        stop, portal.settings.kafka_bootstrap)
    return supervisor
