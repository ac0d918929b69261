"""No public secret in a deployment (issue 28, item 5): outside the explicit development mode
(HUB_ENV=development) each service refuses to start — exit status 2, a message naming the
secret — when a secret it reads is unset or is the sample this repository publishes, or when a
credentials file holds a sample token; with the deployment's own secrets it starts."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from hub.settings import DEVELOPMENT_SECRETS

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "reference"

# The secrets each service reads, and the credentials files it loads.
READS = {
    "settlement": (("HUB_PERSON_KEY", "HUB_VOUCHER_KEY"), ("HUB_HOSPITALS_FILE", "HUB_BUREAUS_FILE", "HUB_AGENCIES_FILE")),
    "registration": (("HUB_PERSON_KEY", "HUB_VOUCHER_KEY"), ("HUB_BUREAUS_FILE",)),
    "clearing": (("HUB_OPERATOR_TOKEN", "HUB_CLEARING_SIGNING_KEY"), ("HUB_BUREAUS_FILE",)),
    "portal": (("HUB_OPERATOR_TOKEN", "HUB_PORTAL_BUREAU_TOKENS"), ()),
}
SAMPLE_VALUE = DEVELOPMENT_SECRETS | {"HUB_PORTAL_BUREAU_TOKENS": "360400=dev-bureau-360400"}
DATABASE = {"settlement": "HUB_SETTLEMENT_DATABASE", "registration": "HUB_REGISTRATION_DATABASE",
            "clearing": "HUB_CLEARING_DATABASE", "portal": "HUB_PORTAL_DATABASE"}
SAMPLE_FILE = {"HUB_HOSPITALS_FILE": "hospitals.yaml", "HUB_BUREAUS_FILE": "bureaus.yaml",
               "HUB_AGENCIES_FILE": "agencies.yaml"}


def own_credentials(directory: Path) -> dict[str, str]:
    """A deployment's own secrets: random keys and tokens, the credentials files copied from the
    samples with each token replaced (its SHA-256 kept) and each gateway secret referenced by env:."""
    env = {"HUB_PERSON_KEY": secrets.token_urlsafe(32), "HUB_VOUCHER_KEY": secrets.token_urlsafe(32),
           "HUB_OPERATOR_TOKEN": secrets.token_urlsafe(24), "HUB_CLEARING_SIGNING_KEY": "env:HUB_TEST_SM2_KEY",
           "HUB_TEST_SM2_KEY": "7" + secrets.token_hex(32)[1:],  # below the curve order
           "HUB_PORTAL_BUREAU_TOKENS": f"360400={secrets.token_urlsafe(24)},440100={secrets.token_urlsafe(24)}"}
    for variable, name in SAMPLE_FILE.items():
        rows = yaml.safe_load((SAMPLES / name).read_text(encoding="utf-8"))
        for row in rows:
            row["token_sha256"] = hashlib.sha256(secrets.token_urlsafe(24).encode()).hexdigest()
            if "paas_token_ref" in row:
                row["paas_token_ref"] = f"env:HUB_TEST_PAAS_{row['code']}"
                env[f"HUB_TEST_PAAS_{row['code']}"] = secrets.token_urlsafe(24)
        (directory / name).write_text(yaml.safe_dump(rows, allow_unicode=True), encoding="utf-8")
        env[variable] = str(directory / name)
    return env


def start(service: str, env: dict[str, str], port: int) -> subprocess.Popen:
    plain = {k: v for k, v in os.environ.items() if k != "HUB_ENV"}  # not the development mode
    return subprocess.Popen([sys.executable, "-m", "hub.cli", service, "serve", "--port", str(port)],
                            env={**plain, **env}, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def refused(service: str, env: dict[str, str]) -> tuple[int, str]:
    process = start(service, env, free_port())
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        return -1, err
    return process.returncode, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CASES = [(service, secret, how) for service, (names, _) in READS.items() for secret in names
         for how in ("missing", "sample")]


@pytest.mark.parametrize(("service", "secret", "how"), CASES, ids=[f"{s}-{n}-{h}" for s, n, h in CASES])
def test_a_service_refuses_a_missing_or_sample_secret_and_names_it(tmp_path, service, secret, how):
    env = own_credentials(tmp_path)
    env.pop(secret)
    if how == "sample":
        env[secret] = SAMPLE_VALUE[secret]
    code, err = refused(service, env)
    assert code == 2, err[-2000:]
    assert "refusing to start" in err and secret in err, err[-2000:]
    assert "Traceback" not in err


FILES = [(service, variable) for service, (_, files) in READS.items() for variable in files]


@pytest.mark.parametrize(("service", "variable"), FILES, ids=[f"{s}-{v}" for s, v in FILES])
def test_a_service_refuses_a_credentials_file_with_sample_tokens(tmp_path, service, variable):
    env = own_credentials(tmp_path)
    env[variable] = str(SAMPLES / SAMPLE_FILE[variable])  # the repository's sample file
    code, err = refused(service, env)
    assert code == 2, err[-2000:]
    assert "is a sample one" in err and SAMPLE_FILE[variable] in err, err[-2000:]


def test_the_development_mode_is_explicit(tmp_path):
    """The same missing secret is accepted with HUB_ENV=development, and only then."""
    from hub import settings

    saved = os.environ.pop("HUB_ENV", None)
    try:
        os.environ.pop("HUB_PERSON_KEY", None)
        with pytest.raises(settings.UnsafeSecret, match="HUB_PERSON_KEY is not set"):
            settings.secret("HUB_PERSON_KEY")
        os.environ["HUB_ENV"] = "production"
        with pytest.raises(settings.UnsafeSecret, match="HUB_PERSON_KEY"):
            settings.secret("HUB_PERSON_KEY")
        os.environ["HUB_ENV"] = "development"
        assert settings.secret("HUB_PERSON_KEY") == DEVELOPMENT_SECRETS["HUB_PERSON_KEY"]
    finally:
        os.environ.pop("HUB_ENV", None)
        if saved is not None:
            os.environ["HUB_ENV"] = saved


@pytest.mark.parametrize("service", sorted(READS))
def test_with_its_own_secrets_a_service_starts(tmp_path, servers, topic_factory, service):
    admin = sa.create_engine(servers.postgres_url, isolation_level="AUTOCOMMIT")
    database = f"test_secrets_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{database}"'))
    env = own_credentials(tmp_path) | {
        "HUB_KAFKA_BOOTSTRAP": servers.kafka_bootstrap, "HUB_POSTGRES_URL": servers.postgres_url,
        "HUB_REDIS_URL": servers.redis_url, DATABASE[service]: database, "HUB_SETTLEMENT_TOPIC": topic_factory(),
        "HUB_CLEARING_GROUP": f"secrets-{secrets.token_hex(4)}", "HUB_CLEARING_OUT": str(tmp_path / "clearing")}
    port = free_port()
    process = start(service, env, port)
    try:
        deadline, answer = time.monotonic() + 90, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert answer is not None and answer.status_code == 200, process.poll()
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database "{database}" with (force)'))
        admin.dispose()
    assert "refusing" not in err
