"""Who is asking and about whom: hospital credentials and keyed person references.

The hub never stores or logs a national person id: it keys everything by an HMAC of the id
under the hub's secret (`HUB_PERSON_KEY`), and keeps a masked form for people to read.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from hub.reference.policy import Level


def person_ref(person_key: bytes, psn_no: str) -> str:
    return "p_" + hmac.new(person_key, psn_no.strip().encode(), hashlib.sha256).hexdigest()[:32]


def mask_person_id(psn_no: str) -> str:
    """First 4 and last 4 characters; everything between as '*'."""
    if len(psn_no) <= 8:
        return "*" * len(psn_no)
    return psn_no[:4] + "*" * (len(psn_no) - 8) + psn_no[-4:]


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Hospital:
    code: str
    name: str
    pool: str
    level: Level
    token_sha256: str


class HospitalRegistry:
    """Designated out-of-region hospitals and the hash of each one's API token."""

    def __init__(self, hospitals: list[Hospital]):
        self.by_code = {h.code: h for h in hospitals}
        self.by_token = {h.token_sha256: h for h in hospitals}

    def authenticate(self, token: str) -> Hospital | None:
        return self.by_token.get(token_sha256(token))

    @classmethod
    def from_yaml(cls, path: Path) -> "HospitalRegistry":
        import yaml

        rows = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        return cls([Hospital(str(r["code"]), r["name"], str(r["pool"]), Level(str(r["level"])), r["token_sha256"])
                    for r in rows])
