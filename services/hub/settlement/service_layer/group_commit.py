"""Group commit for the hospital interface: the requests that arrive while one group is in the
database are settled together in the next one, in one transaction.

No request waits for a group to fill: a group thread takes whatever is queued the moment it
is free (up to `max_group`), so under light load a group is one request and under heavy load
the per-transaction costs — round trips, the commit, the thread hand-off — are shared by many.
Answers go back to the asyncio loop that asked, one wake-up per group.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict
from typing import Any, Callable, Generic, Sequence, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
_STOP = object()


class GroupCommit(Generic[Item, Result]):
    def __init__(self, run_group: Callable[[Sequence[Item]], list[Result]], threads: int = 2, max_group: int = 64,
                 name: str = "settle", observe: Callable[[int, float], None] | None = None, linger_s: float = 0.0):
        self._run_group = run_group
        self._observe = observe  # (group size, seconds it took), for metrics
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.max_group = max_group
        self.linger_s = linger_s  # how long a group may wait for company once its first item is in
        self.groups = 0
        self.items = 0
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-group-{n}", daemon=True)
                         for n in range(threads)]
        self._started = False
        self._lock = threading.Lock()

    async def submit(self, item: Item) -> Result:
        """Queue one item and wait for its result (or its group's exception)."""
        self._start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((item, loop, future))
        return await future

    def _start(self) -> None:
        if not self._started:
            with self._lock:
                if not self._started:
                    for thread in self._threads:
                        thread.start()
                    self._started = True

    def close(self) -> None:
        """Finish what is queued, then stop the threads."""
        if not self._started:
            return
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            stop_after = False
            deadline = time.monotonic() + self.linger_s
            while len(group) < self.max_group:
                try:
                    wait = deadline - time.monotonic()
                    entry = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is _STOP:
                    stop_after = True
                    break
                group.append(entry)
            started = time.perf_counter()
            try:
                results: list[Any] = self._run_group([item for item, _, _ in group])
                # An item whose result is an exception failed on its own; the others stand.
                outcome = [(loop, future, None, result) if isinstance(result, BaseException) else
                           (loop, future, result, None) for (_, loop, future), result in zip(group, results)]
            except Exception as exc:  # every request of the group learns of it; the thread goes on
                log.exception("a group of %d failed", len(group))
                outcome = [(loop, future, None, exc) for _, loop, future in group]
            self.groups += 1
            self.items += len(group)
            if self._observe is not None:
                self._observe(len(group), time.perf_counter() - started)
            by_loop: dict[Any, list] = defaultdict(list)
            for loop, future, result, exc in outcome:
                by_loop[loop].append((future, result, exc))
            for loop, answers in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_resolve, answers)
                except RuntimeError:  # that loop is closed: nobody is waiting any more
                    pass
            if stop_after:
                return


def _resolve(answers: list) -> None:
    for future, result, exc in answers:
        if future.done():  # the caller gave up (client went away)
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
