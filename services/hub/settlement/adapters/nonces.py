"""Gateway nonces seen recently, in Redis: a signed request is accepted once."""

from __future__ import annotations

import redis


class RedisNonces:
    def __init__(self, client: redis.Redis, prefix: str = "gw:nonce:"):
        self.redis = client
        self.prefix = prefix

    def first_use(self, paasid: str, nonce: str, ttl_s: int) -> bool:
        """True the first time (paasid, nonce) is seen within `ttl_s` seconds; False on a replay."""
        return bool(self.redis.set(f"{self.prefix}{paasid}:{nonce}", b"1", nx=True, ex=ttl_s))
