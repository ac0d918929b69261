"""Gateway nonces seen recently, in Redis: a signed request is accepted once.

The check runs on the HTTP worker's event loop, so it must not block it: a synchronous Redis
call there held every other request of the worker for a round trip (measured: a third of the
worker's time at 300 bills/s, and the whole of the queueing behind p50 31 ms). `first_use` is
awaited instead, and the nonces of every request that reaches the check in the same turn of the
loop go to Redis in one call: a script that sets each (NX, with its expiry) and answers which
were new. A pipeline of one SET per nonce did the same in one round trip, but redis-py packs and
parses each command in Python: ~9.5 % of an HTTP worker's samples (py-spy, whole bills at 500/s).
(One Redis server, as the hub runs it: a cluster would need the keys of a call in one slot.)
"""

from __future__ import annotations

import asyncio

import redis.asyncio

# KEYS: the nonces' keys; ARGV[i]: KEYS[i]'s expiry in seconds. Answers 1 for a key set now, 0
# for one that was there (SET NX answers nil, which Lua sees as false): a key twice in one call (a
# replay racing its original) is new only the first time.
_FIRST_USE = """
local new = {}
for i, key in ipairs(KEYS) do
  new[i] = redis.call('SET', key, '1', 'NX', 'EX', ARGV[i]) and 1 or 0
end
return new
"""


class RedisNonces:
    def __init__(self, url: str, prefix: str = "gw:nonce:"):
        self.url = url
        self.prefix = prefix
        self._client: redis.asyncio.Redis | None = None  # made on the worker's own loop, when first used
        self._script = None  # _FIRST_USE registered with that client (EVALSHA, loaded again if Redis lost it)
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the client belongs to
        self._pending: list[tuple[str, int, asyncio.Future]] = []

    async def first_use(self, paasid: str, nonce: str, ttl_s: int) -> bool:
        """True the first time (paasid, nonce) is seen within `ttl_s` seconds; False on a replay.
        A lost Redis raises (the caller answers the transport's 503)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            loop.call_soon(lambda: loop.create_task(self._flush()))
        self._pending.append((f"{self.prefix}{paasid}:{nonce}", ttl_s, future))
        return await future

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            loop = asyncio.get_running_loop()
            if self._client is None or self._loop is not loop:  # a client serves the loop it was made on
                self._client, self._loop = redis.asyncio.Redis.from_url(self.url), loop
                self._script = self._client.register_script(_FIRST_USE)
            answers = await self._script(keys=[key for key, _, _ in batch], args=[ttl for _, ttl, _ in batch])
        except Exception as exc:  # every request of the batch learns it
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), answer in zip(batch, answers):
            if not future.done():
                future.set_result(answer == 1)
