"""Background loops that never die quietly.

Every long-running loop a service runs (outbox relays, consumers, the read model, samplers)
runs under a `Supervisor`: when the loop raises, the error is logged, counted and shown in
readiness, and the loop is built anew and started again after a backoff (0.5 s doubling to
10 s; back to 0.5 s once a run has made progress). A loop reports progress by calling the
`beat` it was built with; a loop that has not beaten for `stale_after_s` is reported as
stalled. Readiness is the truth about every loop: `Supervisor.problems()` says which loop is
failing or stalled and why.

With several HTTP worker processes the loops run once, in the main process; it writes their
state to a small JSON file every second (`HUB_LOOP_STATE_FILE`), which the workers read for
/health/ready and /metrics, so every process answers the same truth.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY

log = logging.getLogger(__name__)

Beat = Callable[..., None]  # beat(**detail): progress made; optional figures (e.g. backlog) to report


@dataclass
class LoopState:
    name: str
    stale_after_s: float
    critical: bool = True  # counts for readiness (a metrics sampler does not)
    state: str = "starting"  # starting, running, failing, stopped
    restarts: int = 0
    failures_in_a_row: int = 0
    last_error: str | None = None
    last_progress: float = field(default_factory=time.time)  # unix seconds
    detail: dict[str, float] = field(default_factory=dict)

    def problem(self, now: float) -> str | None:
        if self.state == "failing":
            return f"{self.name} is failing ({self.failures_in_a_row} in a row, last: {self.last_error}); retrying"
        if self.state == "stopped":
            return f"{self.name} has stopped"
        if now - self.last_progress > self.stale_after_s:
            return f"{self.name} has made no progress for {now - self.last_progress:.0f} s"
        return None


def is_transient(exc: BaseException) -> bool:
    """True for faults of a server or the network (try again later), False for faults of the
    data or the code (the same input fails the same way again)."""
    import sqlalchemy.exc as sa_exc

    import psycopg
    import redis.exceptions as redis_exc
    from kafka.errors import KafkaError

    transient_psycopg = (psycopg.OperationalError, psycopg.InterfaceError)
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc.orig, transient_psycopg) or isinstance(
            exc, (sa_exc.OperationalError, sa_exc.InterfaceError))
    return isinstance(exc, (*transient_psycopg, sa_exc.DisconnectionError, redis_exc.ConnectionError,
                            redis_exc.TimeoutError, redis_exc.BusyLoadingError, KafkaError, ConnectionError,
                            TimeoutError, OSError))


class Supervisor:
    """Runs named loops in daemon threads, restarting each when it raises."""

    def __init__(self, stop: threading.Event, backoff_s: tuple[float, float] = (0.5, 10.0),
                 state_file: Path | None = None):
        self.stop = stop
        self.backoff_s = backoff_s
        self.loops: dict[str, LoopState] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.state_file = state_file

    def add(self, name: str, build: Callable[[Beat], Callable[[], Any]], stale_after_s: float = 60.0,
            critical: bool = True) -> None:
        """`build(beat)` makes a fresh loop and returns its run function; it is called again for
        every restart, so clients and connections are made anew. A loop that is not `critical`
        shows in the metrics but not in readiness."""
        state = LoopState(name, stale_after_s, critical)
        self.loops[name] = state
        self._threads.append(threading.Thread(target=self._keep_running, args=(state, build), name=name,
                                              daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        if self.state_file is not None:
            threading.Thread(target=self._write_state_forever, name="loop-state", daemon=True).start()

    def join(self, timeout: float = 10.0) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _keep_running(self, state: LoopState, build: Callable[[Beat], Callable[[], Any]]) -> None:
        def beat(**detail: float) -> None:
            state.last_progress = time.time()
            if state.state != "running":
                state.state = "running"
                state.failures_in_a_row = 0
            if detail:
                state.detail.update(detail)

        delay = self.backoff_s[0]
        while not self.stop.is_set():
            started = time.time()
            try:
                build(beat)()
                if self.stop.is_set():
                    break
                raise RuntimeError("the loop returned without being stopped")
            except Exception as exc:  # every failure is logged, counted, shown, and retried
                if self.stop.is_set():
                    break
                with self._lock:
                    state.restarts += 1
                    state.failures_in_a_row += 1
                    state.state = "failing"
                    state.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                if state.last_progress > started:
                    delay = self.backoff_s[0]  # it had worked for a while: start the backoff over
                kind = "transient" if is_transient(exc) else "unexpected"
                log.error("loop %s failed (%s, %d in a row); restarting in %.1f s", state.name, kind,
                          state.failures_in_a_row, delay, exc_info=True)
                self.stop.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])
        state.state = "stopped"

    # ------------------------------------------------------------------ reporting

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [asdict(s) for s in self.loops.values()]

    def problems(self) -> list[str]:
        now = time.time()
        return [p for s in self.loops.values() if s.critical and (p := s.problem(now)) is not None]

    def _write_state_forever(self) -> None:
        while not self.stop.wait(1.0):
            try:
                write_state_file(self.state_file, self.snapshot())
            except OSError:
                log.exception("could not write the loop state file %s", self.state_file)


def write_state_file(path: Path, loops: list[dict]) -> None:
    text = json.dumps({"written_at": time.time(), "pid": os.getpid(), "loops": loops})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class LoopStateFile:
    """The workers' view of the main process's loops (see the module's docstring)."""

    def __init__(self, path: Path, stale_after_s: float = 5.0):
        self.path = path
        self.stale_after_s = stale_after_s

    def snapshot(self) -> list[dict]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return doc.get("loops", [])

    def problems(self) -> list[str]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return ["the main process has not reported its background loops yet"]
        now = time.time()
        if now - doc.get("written_at", 0) > self.stale_after_s:
            return [f"the main process (pid {doc.get('pid')}) stopped reporting its background loops"]
        problems = []
        for loop in doc.get("loops", []):
            state = LoopState(**loop)
            if state.critical and (p := state.problem(now)) is not None:
                problems.append(p)
        return problems


class LoopCollector:
    """Prometheus metrics of the loops, read at scrape time from `source` (a Supervisor or a
    LoopStateFile): up, restarts, seconds since progress, and every figure a loop reports."""

    def __init__(self, source):
        self.source = source

    def collect(self):
        now = time.time()
        up = GaugeMetricFamily("hub_loop_up", "1 while the background loop runs and makes progress", labels=["loop"])
        restarts = GaugeMetricFamily("hub_loop_restarts", "Times the loop failed and was restarted", labels=["loop"])
        since = GaugeMetricFamily("hub_loop_seconds_since_progress", "Seconds since the loop last made progress",
                                  labels=["loop"])
        figures: dict[str, GaugeMetricFamily] = {}
        for loop in self.source.snapshot():
            state = LoopState(**loop)
            up.add_metric([state.name], 0 if state.problem(now) else 1)
            restarts.add_metric([state.name], state.restarts)
            since.add_metric([state.name], max(0.0, now - state.last_progress))
            for key, value in state.detail.items():
                family = figures.setdefault(key, GaugeMetricFamily(f"hub_{key}", f"{key} as the loop reported it",
                                                                   labels=["loop"]))
                family.add_metric([state.name], value)
        yield up
        yield restarts
        yield since
        yield from figures.values()


_registered: list[LoopCollector] = []


def expose(source) -> None:
    """Serve `source`'s loops on this process's /metrics (once per process)."""
    if _registered:
        _registered[0].source = source
        return
    collector = LoopCollector(source)
    REGISTRY.register(collector)
    _registered.append(collector)


def die_with_parent() -> None:
    """End this process when its parent dies, even by kill -9 (an HTTP worker must not go on
    serving without the loops, holding the port): Linux's parent-death signal, and a watcher
    thread for where that is not available."""
    import signal

    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                log.error("parent process %d is gone: this worker exits", parent)
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
