"""Liveness and readiness endpoints, the same on every service."""

from __future__ import annotations

from typing import Callable

from fastapi.responses import JSONResponse


def add_health_routes(app, ready: Callable[[], str | None], loops=None, notes: tuple[str, ...] = ()) -> None:
    """/health/live answers while the process serves; /health/ready answers 200 when `ready()`
    returns None and every background loop of `loops` (a Supervisor or a LoopStateFile) runs
    and makes progress, else 503 with every reason. `loops` also feeds /metrics. `notes` are
    facts an operator should see on either answer (a rehearsal's shifted clock)."""
    if loops is not None:
        from hub.operations.supervision import expose

        expose(loops)

    @app.get("/health/live", include_in_schema=False)
    def live():
        return {"status": "ok"}

    @app.get("/health/ready", include_in_schema=False)
    def is_ready():
        reasons = [r for r in [ready()] if r is not None] + (loops.problems() if loops is not None else [])
        extra = {"notes": list(notes)} if notes else {}
        if not reasons:
            return {"status": "ready", **extra}
        return JSONResponse({"status": "not ready", "reason": "; ".join(reasons), "reasons": reasons, **extra},
                            status_code=503)


def database_ready(engine) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("select 1")
        except Exception as exc:  # readiness reports any database failure as not ready
            return f"database unavailable ({type(exc).__name__})"
        return None

    return check
