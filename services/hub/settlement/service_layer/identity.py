"""Who is asking and about whom: hospital credentials, and person references (hub.privacy)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from hub.privacy import mask_person_id, person_ref  # noqa: F401  (re-exported for the service)
from hub.reference.policy import Level


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
