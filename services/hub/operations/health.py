"""Liveness and readiness endpoints, the same on every service."""

from __future__ import annotations

from typing import Callable

from fastapi.responses import JSONResponse


def add_health_routes(app, ready: Callable[[], str | None]) -> None:
    """/health/live answers while the process serves; /health/ready answers 200 when `ready()`
    returns None, else 503 with the reason it returned."""

    @app.get("/health/live", include_in_schema=False)
    def live():
        return {"status": "ok"}

    @app.get("/health/ready", include_in_schema=False)
    def is_ready():
        reason = ready()
        if reason is None:
            return {"status": "ready"}
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)


def database_ready(engine) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("select 1")
        except Exception as exc:  # readiness reports any database failure as not ready
            return f"database unavailable ({type(exc).__name__})"
        return None

    return check
