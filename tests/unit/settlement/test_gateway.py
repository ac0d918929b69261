"""The platform gateway's signed headers: who is calling, refused when stale, replayed or forged."""

from __future__ import annotations

import asyncio
import hashlib
from decimal import Decimal

import pytest

from hub.reference.policy import Level
from hub.settlement.entrypoints.gateway import Gateway, parse_body, signature
from hub.settlement.service_layer.identity import Hospital, HospitalRegistry, resolve_secret, token_sha256

NOW = 1_790_000_000
GZ = Hospital("H44010000001", "广州 test hospital", "440100", Level("3"), token_sha256("bearer-token"))


class Nonces:
    def __init__(self):
        self.seen: set[tuple[str, str]] = set()

    async def first_use(self, paasid: str, nonce: str, ttl_s: int) -> bool:
        if (paasid, nonce) in self.seen:
            return False
        self.seen.add((paasid, nonce))
        return True


@pytest.fixture
def gateway() -> Gateway:
    registry = HospitalRegistry([GZ], {"paas-gz": (GZ, "paas-secret")})
    return Gateway(registry, Nonces(), max_skew_s=300, clock=lambda: NOW)


def authenticate(gateway: Gateway, headers):
    return asyncio.run(gateway.authenticate(headers))


def signed(timestamp: int = NOW, nonce: str = "18c3a-1f2e", token: str = "paas-secret", paasid: str = "paas-gz"):
    return [(b"x-tif-paasid", paasid.encode()), (b"x-tif-timestamp", str(timestamp).encode()),
            (b"x-tif-nonce", nonce.encode()), (b"x-tif-signature", signature(str(timestamp), token, nonce).encode())]


def test_the_signature_is_sha256_of_timestamp_token_nonce_timestamp():
    assert signature("1700000000", "tok", "n1") == hashlib.sha256(b"1700000000tokn11700000000").hexdigest()


def test_a_signed_request_is_the_hospital_once(gateway):
    assert authenticate(gateway, signed()) is GZ
    assert "used before" in authenticate(gateway, signed())  # the same nonce again: a replay
    assert authenticate(gateway, signed(nonce="another")) is GZ


@pytest.mark.parametrize("headers,why", [
    (signed(timestamp=NOW - 301), "x-tif-timestamp"),
    (signed(timestamp=NOW + 301), "x-tif-timestamp"),
    (signed(token="a guess"), "does not match"),
    (signed(paasid="nobody"), "not a hospital"),
    (signed()[:3], "sign the request"),  # no signature: nothing to check
    (signed()[1:], "go together"),
    ([], "sign the request"),
    ([(b"authorization", b"Bearer wrong")], "Bearer token"),
])
def test_what_the_gateway_refuses(gateway, headers, why):
    refused = authenticate(gateway, headers)
    assert isinstance(refused, str) and why in refused


def test_a_bearer_token_still_works(gateway):
    assert authenticate(gateway, [(b"authorization", b"Bearer bearer-token")]) is GZ


def test_secrets_come_from_references_not_from_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("PAAS_GZ", "from-env")
    (tmp_path / "secret").write_text("from-file\n")
    assert resolve_secret("env:PAAS_GZ", "H1") == "from-env"
    assert resolve_secret(f"file:{tmp_path / 'secret'}", "H1") == "from-file"
    assert resolve_secret("sample:", "H1") == "dev-H1"
    with pytest.raises(ValueError):
        resolve_secret("plain-secret-in-the-file", "H1")
    with pytest.raises(ValueError):
        resolve_secret("env:NOT_SET_ANYWHERE", "H1")


def test_json_numbers_are_read_as_decimals_from_their_text():
    body = parse_body(b'{"a": 0.1, "b": [1, 2.50], "c": "0.1", "d": 3}')
    assert body == {"a": Decimal("0.1"), "b": [1, Decimal("2.50")], "c": "0.1", "d": 3}
    assert parse_body(b'{"a": 1}') == {"a": 1}  # no fraction anywhere: the fast parser's answer
    with pytest.raises(ValueError):
        parse_body(b"{not json")


def test_a_lost_nonce_store_is_the_transports_503_not_a_crash():
    import asyncio

    import redis

    from hub.settlement.entrypoints.http import ConventionApp

    class Lost:
        async def first_use(self, *_):
            raise redis.exceptions.ConnectionError("Redis is gone")

    gateway = Gateway(HospitalRegistry([GZ], {"paas-gz": (GZ, "paas-secret")}), Lost(), clock=lambda: NOW)
    app = ConventionApp(hub=None, fallback=None, group_commit=None, gateway=gateway)
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/fsi/api/rsfComIntfaceService/commInterface", "method": "POST", "headers": signed()}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 503
    assert b'"err_code":"hub_unavailable"' in sent[1]["body"]


def test_a_hostile_nesting_is_refused_as_not_json_without_exhausting_the_stack():
    for depth in (65, 500, 1_000):
        with pytest.raises(ValueError, match="nested deeper"):
            parse_body(b"[" * depth + b"1.5" + b"]" * depth)
    assert parse_body(b"[" * 20 + b"1.5" + b"]" * 20)  # deep, but not hostile
