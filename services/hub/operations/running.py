"""How a service's command runs: its logging, its background loops until SIGTERM/SIGINT, and its
HTTP app served beside them (the services' CLIs share these)."""

from __future__ import annotations

import threading


def configure_logging() -> None:
    from hub.operations.logs import configure_logging as configure

    configure()


def until_signal() -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    import signal

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run_loops(supervisor, stop: threading.Event) -> None:
    """Run a service's background loops (restarted on faults) until SIGTERM/SIGINT."""
    supervisor.start()
    stop.wait()
    supervisor.join(timeout=10)


def serve(app, supervisor, stop: threading.Event, host: str, port: int, factory: str | None = None,
          http_workers: int = 1) -> None:
    """Start the background loops, serve HTTP until SIGTERM/SIGINT, then stop the loops. With several
    HTTP workers uvicorn builds the app in each from `factory`; the loops run once, here."""
    import uvicorn

    # No X-Forwarded-* rewriting: the hub reads no client address, and uvicorn's proxy-headers
    # middleware cost ~2.5 % of an HTTP worker's CPU on every call (py-spy, whole bills).
    options = dict(host=host, port=port, log_level="warning", access_log=False, log_config=None, proxy_headers=False)
    supervisor.start()
    try:
        if http_workers > 1 and factory:
            uvicorn.run(factory, factory=True, workers=http_workers, **options)
        else:
            uvicorn.run(app, **options)
    finally:
        stop.set()
        supervisor.join(timeout=10)
