"""Who is asking and about whom: hospital credentials, and person references (hub.privacy)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from hub.privacy import mask_person_id, person_ref  # noqa: F401  (re-exported for the service)
from hub.reference.policy import HospitalKind, Level


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Hospital:
    code: str
    name: str
    pool: str
    level: Level
    token_sha256: str
    kind: HospitalKind = HospitalKind.GENERAL  # 中医院 where a rule names it (九江's outpatient pooling)


def resolve_secret(ref: str, code: str) -> str:
    """A secret from its reference, never from the hospitals file itself: `env:NAME` (an
    environment variable, e.g. injected from a KMS or a Kubernetes secret), `file:/path` (a
    mounted secret file), or `sample:` — the sample hospitals' documented development token
    `dev-<code>`, which `hub settlement serve` warns about."""
    scheme, _, rest = ref.partition(":")
    if scheme == "env":
        import os

        value = os.environ.get(rest)
        if not value:
            raise ValueError(f"hospital {code}: the environment variable {rest} holding its gateway secret is not set")
        return value
    if scheme == "file":
        return Path(rest).read_text(encoding="utf-8").strip()
    if scheme == "sample":
        return f"dev-{code}"
    raise ValueError(f"hospital {code}: secret reference {ref!r} is not env:NAME, file:PATH or sample:")


class HospitalRegistry:
    """Designated out-of-region hospitals: the hash of each one's Bearer token, and its gateway
    identity (`paasid`, and the paas token the signature is made with, resolved from its
    reference when the registry is built)."""

    def __init__(self, hospitals: list[Hospital], paas_tokens: dict[str, tuple[Hospital, str]] | None = None):
        self.by_code = {h.code: h for h in hospitals}
        self.by_token = {h.token_sha256: h for h in hospitals}
        self._paas = paas_tokens or {}  # paasid -> (hospital, paas token)
        self.sample_secrets = False

    def authenticate(self, token: str) -> Hospital | None:
        return self.by_token.get(token_sha256(token))

    def paas(self, paasid: str) -> tuple[Hospital, str] | None:
        """The hospital a gateway paasid belongs to, and the token its signatures are made with."""
        return self._paas.get(paasid)

    @classmethod
    def from_rows(cls, rows: list[dict], gateway_secrets: bool = True) -> "HospitalRegistry":
        """The hospitals file's rows; `gateway_secrets=False` for tools that need the hospitals but
        serve no request (a policy replay): their secrets are then not looked for."""
        hospitals, paas = [], {}
        for r in rows:
            hospital = Hospital(str(r["code"]), r["name"], str(r["pool"]), Level(str(r["level"])), r["token_sha256"],
                                HospitalKind(r.get("kind", "GENERAL")))
            hospitals.append(hospital)
            if r.get("paas_token_ref") and gateway_secrets:
                paas[str(r.get("paasid") or hospital.code)] = (hospital, resolve_secret(r["paas_token_ref"], hospital.code))
        registry = cls(hospitals, paas)
        registry.sample_secrets = any(str(r.get("paas_token_ref", "")).startswith("sample:") for r in rows)
        return registry
