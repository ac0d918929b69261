"""The gateway's nonce store against the real Redis: awaited, batched per turn of the loop."""

from __future__ import annotations

import asyncio
import uuid

from hub.settlement.adapters.nonces import RedisNonces


def test_concurrent_first_uses_are_each_accepted_once_and_a_replay_is_refused(servers):
    nonces = RedisNonces(servers.redis_url, prefix=f"test:{uuid.uuid4().hex}:")

    async def check():
        first = await asyncio.gather(*(nonces.first_use("p", f"n{i % 50}", 60) for i in range(100)))
        again = await nonces.first_use("p", "n1", 60)
        return first, again

    first, again = asyncio.run(check())
    assert sum(first) == 50 and again is False  # each of the 50 nonces accepted once, whatever the order


def test_a_nonce_expires_after_its_window_and_a_restarted_redis_script_cache_is_survived(servers):
    import redis

    prefix = f"test:{uuid.uuid4().hex}:"
    nonces = RedisNonces(servers.redis_url, prefix=prefix)
    plain = redis.Redis.from_url(servers.redis_url)

    async def check():
        first = await nonces.first_use("p", "a", 60)
        plain.script_flush()  # as after a Redis restart: the script is no longer cached there
        second = await asyncio.gather(nonces.first_use("p", "b", 60), nonces.first_use("p", "a", 60))
        return first, second

    first, second = asyncio.run(check())
    assert first is True and second == [True, False]
    assert 55 <= plain.ttl(f"{prefix}p:a") <= 60  # kept for the window, then forgotten
