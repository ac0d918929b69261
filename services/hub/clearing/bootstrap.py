"""Wires the interregion-clearing service from settings. Nothing connects at import time."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from pydantic import Field, field_validator

from hub import settings as shared_settings

from hub.clearing.adapters import database as db
from hub.clearing.adapters.postgres import PostgresClearingRepository
from hub.signing import SignatureError, public_keys, signer_from_reference
from hub.clearing.domain.advance import AdvanceRule
from hub.clearing.domain.anomalies import AnomalyRule
from hub.clearing.domain.fund_risk import RiskRule
from hub.reference.budget import load_budgets
from hub.clearing.service_layer.services import ClearingService
from hub.messaging import AvroCodec, EventProducer, SchemaRegistry

REPO_ROOT = Path(__file__).resolve().parents[3]
log = logging.getLogger(__name__)


_env = shared_settings.env


def _advance_rule() -> AdvanceRule:
    return AdvanceRule(int(_env("HUB_ADVANCE_MONTHS", "2")), int(_env("HUB_ADVANCE_WINDOW_DAYS", "90")),
                       int(_env("HUB_ADVANCE_WARN_PCT", "50")))


def _risk_rule() -> RiskRule:
    return RiskRule(int(_env("HUB_FUND_RISK_WARN_PCT", "100")), int(_env("HUB_FUND_RISK_ALARM_PCT", "120")))


def _anomaly_rule() -> AnomalyRule:
    return AnomalyRule(
        readmission_days=int(_env("HUB_ANOMALY_READMISSION_DAYS", "15")),
        thresholds_fen=tuple(int(t) * 100 for t in _env("HUB_ANOMALY_THRESHOLDS_YUAN", "10000,20000,50000").split(",")),
        under_pct=int(_env("HUB_ANOMALY_UNDER_PCT", "2")), under_count=int(_env("HUB_ANOMALY_UNDER_COUNT", "3")),
        jump_pct=int(_env("HUB_ANOMALY_JUMP_PCT", "50")), jump_min_bills=int(_env("HUB_ANOMALY_JUMP_MIN_BILLS", "3")),
        baseline_days=int(_env("HUB_ANOMALY_BASELINE_DAYS", "30")), many_bills=int(_env("HUB_ANOMALY_MANY_BILLS", "100")))


class Settings(shared_settings.ServiceSettings):
    postgres_url: str = Field(default_factory=shared_settings.postgres_url, validation_alias="HUB_POSTGRES_URL")
    kafka_bootstrap: str = Field(default_factory=shared_settings.kafka_bootstrap, validation_alias="HUB_KAFKA_BOOTSTRAP")
    database: str = Field("hub_clearing", validation_alias="HUB_CLEARING_DATABASE")
    out_dir: Path = Field(REPO_ROOT / "out" / "clearing", validation_alias="HUB_CLEARING_OUT")
    grace_s: int = Field(1800, validation_alias="HUB_CLEARING_GRACE_S")
    group_id: str = Field("interregion-clearing", validation_alias="HUB_CLEARING_GROUP")
    topic: str = Field("settlement.events", validation_alias="HUB_SETTLEMENT_TOPIC")
    # Where closed days' statements, deposits, confirmations and monthly changes are published (the
    # log `hub clearing rebuild` reads back).
    statements_topic: str = Field("clearing.statements", validation_alias="HUB_CLEARING_STATEMENTS_TOPIC")
    bureaus_file: Path = Field(REPO_ROOT / "reference" / "bureaus.yaml", validation_alias="HUB_BUREAUS_FILE")
    reference_dir: Path = Field(REPO_ROOT / "reference", validation_alias="HUB_REFERENCE_DIR")
    # The operators' token, kept as its SHA-256 (the service compares digests).
    operator_token_sha256: str = Field("", validation_alias="HUB_OPERATOR_TOKEN", validate_default=True)
    # The SM2 key the files are signed with: env:NAME, file:PATH, or sample: (the development key,
    # refused outside the development mode).
    signing_key_ref: str = Field("", validation_alias="HUB_CLEARING_SIGNING_KEY", validate_default=True)
    # Key rotation: the public keys of signing keys retired (comma-separated hex). Files are signed
    # with the current key; bureaus trust these too, so files signed before the rotation still verify
    # (GET /v1/clearing/public-keys lists them all).
    previous_public_keys: str = Field("", validation_alias="HUB_CLEARING_PREVIOUS_PUBLIC_KEYS")
    # The advance-fund rule (hub.clearing.domain.advance): months of average daily payable to hold,
    # over how many days, and the share under which a bureau is warned (HUB_ADVANCE_*).
    advance_rule: AdvanceRule = Field(default_factory=_advance_rule)
    # The fund-risk watch: at or over this percentage of the pro-rata budget a fund warns, alarms.
    risk_rule: RiskRule = Field(default_factory=_risk_rule)
    # The anomaly flags' thresholds (hub.clearing.domain.anomalies; HUB_ANOMALY_*).
    anomaly_rule: AnomalyRule = Field(default_factory=_anomaly_rule)

    @field_validator("operator_token_sha256", mode="before")
    @classmethod
    def _operator_token(cls, value: object) -> str:
        return hashlib.sha256(shared_settings.checked_secret("HUB_OPERATOR_TOKEN", value).encode()).hexdigest()

    @field_validator("signing_key_ref", mode="before")
    @classmethod
    def _signing_key(cls, value: object) -> str:
        return shared_settings.checked_secret("HUB_CLEARING_SIGNING_KEY", value)


@dataclass
class Clearing:
    settings: Settings
    engine: sa.Engine
    codec: AvroCodec
    service: ClearingService
    bureaus: dict[str, tuple[str, str]]  # token sha256 -> (bureau code, pool)
    retired_public_keys: tuple[str, ...] = ()  # signing keys a rotation retired: they still verify

    def producer(self, client_id: str) -> EventProducer:
        return EventProducer(self.settings.kafka_bootstrap, self.codec, client_id=client_id)


def pool_names(reference_dir: Path) -> dict[str, str]:
    """Pool code -> name, from the policy files, for people reading the clearing files."""
    import yaml

    names = {}
    for p in sorted((reference_dir / "policies").glob("*.yaml")):
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        names[str(doc["pool_code"])] = str(doc["pool_name"]).split(" (")[0]
    return names


def bootstrap(settings: Settings | None = None) -> Clearing:
    import yaml

    settings = settings or Settings()  # refuses a missing or sample secret outside the development mode
    rows = yaml.safe_load(settings.bureaus_file.read_text(encoding="utf-8")) or []
    shared_settings.refuse_sample_tokens(settings.bureaus_file, rows, ("dev-bureau-{pool}",))
    bureaus = {r["token_sha256"]: (str(r["code"]), str(r["pool"])) for r in rows}
    signer = signer_from_reference(settings.signing_key_ref)
    try:
        retired = public_keys(settings.previous_public_keys)
    except SignatureError as exc:
        raise shared_settings.UnsafeSecret(f"HUB_CLEARING_PREVIOUS_PUBLIC_KEYS: {exc}") from None
    if signer.sample and not shared_settings.development_mode():
        raise shared_settings.UnsafeSecret(
            "HUB_CLEARING_SIGNING_KEY names the sample SM2 key published in this repository; outside the development "
            "mode (HUB_ENV=development) the files are signed with the deployment's own key (env:NAME or file:PATH)")
    engine = sa.create_engine(settings.database_url, pool_size=4, max_overflow=4, pool_pre_ping=True)
    db.create_schema(engine)
    codec = AvroCodec(SchemaRegistry())
    if signer.sample:
        log.warning("clearing files are signed with the sample SM2 key (HUB_CLEARING_SIGNING_KEY=sample:): "
                    "anyone can forge it; a deployment references its own key (env:NAME or file:PATH)")
    service = ClearingService(PostgresClearingRepository(engine), codec, settings.out_dir,
                              timedelta(seconds=settings.grace_s), signer, pool_names(settings.reference_dir),
                              advance_rule=settings.advance_rule,
                              budgets=load_budgets(settings.reference_dir / "budgets"), risk_rule=settings.risk_rule,
                              anomaly_rule=settings.anomaly_rule, statements_topic=settings.statements_topic)
    return Clearing(settings, engine, codec, service, bureaus, retired)

