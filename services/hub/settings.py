"""Shared kernel: the few settings helpers every service's bootstrap uses, and where the
servers are by default: the loopback ports the local launcher (`hub services up`) uses, each
overridable by HUB_LOCAL_*_PORT, unless HUB_KAFKA_BOOTSTRAP / HUB_REDIS_URL / HUB_POSTGRES_URL say."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import sqlalchemy as sa
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.privacy import PersonKey


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


# ---------------------------------------------------------------- secrets and the development mode

# Every secret the hub reads from its environment, and the sample value this repository publishes
# for it. The samples are used only in the explicit development mode (HUB_ENV=development, which the
# local launcher, the simulated day, the benches and the tests set); in any other mode a service
# refuses to start when a secret is unset or is its sample.
DEVELOPMENT_SECRETS = {
    "HUB_PERSON_KEY": "local-development-person-key",
    "HUB_VOUCHER_KEY": "local-development-voucher-key",
    "HUB_OPERATOR_TOKEN": "dev-operator",
    "HUB_CLEARING_SIGNING_KEY": "sample:",
}


class UnsafeSecret(RuntimeError):
    """A service may not start: a secret is missing, or is a sample anyone can read in this
    repository, outside the development mode. The message names the secret."""


def development_mode() -> bool:
    return os.environ.get("HUB_ENV", "").strip().lower() == "development"


def _not_in_development(what: str) -> str:
    return (f"{what}. Outside the development mode (HUB_ENV=development, for local runs only) every secret "
            "must be the deployment's own, from its secret store (README, 'Secrets'; the hub-secrets of deploy/k8s/services.yaml)")


def secret(name: str) -> str:
    """A secret from the environment; its published sample only in the development mode."""
    sample = DEVELOPMENT_SECRETS[name]
    value = os.environ.get(name, "")
    if development_mode():
        return value or sample
    if not value.strip():
        raise UnsafeSecret(_not_in_development(f"{name} is not set"))
    if value.strip() == sample:
        raise UnsafeSecret(_not_in_development(f"{name} is the sample value published in this repository"))
    return value


def refuse_sample_tokens(path: Path, rows: list[dict], samples: tuple[str, ...]) -> None:
    """Outside the development mode, refuse a credentials file (hospitals, bureaus, agencies) whose
    token is one of the published samples: `samples` are templates over the row ('dev-{code}')."""
    if development_mode():
        return
    for row in rows:
        published = {hashlib.sha256(t.format(**{k: str(v) for k, v in row.items()}).encode()).hexdigest()
                     for t in samples}
        if str(row.get("token_sha256", "")) in published:
            raise UnsafeSecret(_not_in_development(
                f"the token of {row.get('code')} in {path} is a sample one (SHA-256 of a published development token)"))
        if str(row.get("paas_token_ref", "")).startswith("sample:"):
            raise UnsafeSecret(_not_in_development(
                f"the gateway secret of {row.get('code')} in {path} is the sample one (paas_token_ref: sample:)"))


# Below Linux's ephemeral range (32768-60999 by default): a port in it can be taken, as the source
# port of any outgoing connection, while a killed server is down, and then it cannot listen again
# (seen in CI: a cluster node on 39196 refused with "Address already in use").
LOCAL_PORTS = {"kafka": 29092, "kafka_controller": 29093, "redis": 26379, "postgres": 25432}


def local_port(server: str) -> int:
    """The loopback port of a local server: HUB_LOCAL_<SERVER>_PORT, or the launcher's default."""
    return int(env(f"HUB_LOCAL_{server.upper()}_PORT", str(LOCAL_PORTS[server])))


def kafka_bootstrap() -> str:
    return env("HUB_KAFKA_BOOTSTRAP", f"127.0.0.1:{local_port('kafka')}")


def redis_url() -> str:
    return env("HUB_REDIS_URL", f"redis://127.0.0.1:{local_port('redis')}/0")


def postgres_url() -> str:
    """The PostgreSQL server (superuser URL); each service has its own database on it."""
    return env("HUB_POSTGRES_URL", f"postgresql+psycopg://hub@127.0.0.1:{local_port('postgres')}/postgres")


def database_url(postgres_url: str, database: str) -> str:
    """The server URL pointed at one service's own database."""
    return sa.make_url(postgres_url).set(database=database).render_as_string(hide_password=False)


# ---------------------------------------------------------------- a service's settings


class ServiceSettings(BaseSettings):
    """A service's settings: read once, when its bootstrap makes them at start, from its environment
    (each field names its variable as its alias; one without, HUB_<FIELD>) — never at import time,
    never again later. Keyword arguments (tests, tools, the simulated day) take precedence over the
    environment. A secret field goes through `checked_secret`: its sample only in the development
    mode."""

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, extra="forbid",
                                      arbitrary_types_allowed=True, env_prefix="HUB_")

    @property
    def database_url(self) -> str:
        return database_url(self.postgres_url, self.database)  # type: ignore[attr-defined]


class PersonKeySettings(ServiceSettings):
    """A service that refers to persons (registration, settlement): the person key and its
    rotation (hub.privacy.PersonKey). To rotate: the new key as HUB_PERSON_KEY, the old one
    first in HUB_PERSON_RETIRED_KEYS (records it sealed still open) and, the first time, as
    HUB_PERSON_REF_KEY (every person keeps their ref); the same in every such service."""

    person_key: bytes = Field(b"", validation_alias="HUB_PERSON_KEY", validate_default=True)
    person_retired_keys: str = Field("", validation_alias="HUB_PERSON_RETIRED_KEYS")
    person_ref_key: str = Field("", validation_alias="HUB_PERSON_REF_KEY")

    @field_validator("person_key", mode="before")
    @classmethod
    def _person_key(cls, value: object) -> bytes:
        return checked_secret("HUB_PERSON_KEY", value).encode()

    @field_validator("person_ref_key", mode="before")
    @classmethod
    def _ref_key(cls, value: object) -> str:
        text = value.decode() if isinstance(value, bytes) else str(value)
        if text and not development_mode() and text.strip() == DEVELOPMENT_SECRETS["HUB_PERSON_KEY"]:
            raise UnsafeSecret(_not_in_development("HUB_PERSON_REF_KEY is the sample person key published in "
                                                   "this repository"))
        return text

    @property
    def person_keys(self) -> PersonKey:
        return PersonKey.of(self.person_key, self.person_retired_keys, self.person_ref_key)


def checked_secret(name: str, value: object) -> str:
    """A secret's value (as the environment or a caller gave it) under the rule of `secret`: the
    published sample only in the development mode, and never empty outside it."""
    text = value.decode() if isinstance(value, bytes) else str(value)
    if development_mode():
        return text or DEVELOPMENT_SECRETS[name]
    if not text.strip():
        raise UnsafeSecret(_not_in_development(f"{name} is not set"))
    if text.strip() == DEVELOPMENT_SECRETS[name]:
        raise UnsafeSecret(_not_in_development(f"{name} is the sample value published in this repository"))
    return text
