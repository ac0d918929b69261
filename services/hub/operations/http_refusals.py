"""Shared kernel: how a bureau-facing API answers a refusal — {"error": {"code", "message"}} with
an HTTP status — whether the edge itself refuses (EdgeRefused: no token, a malformed body) or a
use case does (the service's refusal exception, its status from the service's one table)."""

from __future__ import annotations

from typing import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class EdgeRefused(Exception):
    """A request the HTTP edge refuses before any use case runs."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def answer_refusals(app: FastAPI, refused: type[Exception], status_of: Callable[[Exception], int]) -> None:
    """EdgeRefused answered with its own status; the service's `refused` with `status_of` it (the
    exception carries `code` and `message`)."""
    @app.exception_handler(EdgeRefused)
    async def edge(_request: Request, exc: EdgeRefused):
        return error(exc.status, exc.code, exc.message)

    @app.exception_handler(refused)
    async def use_case(_request: Request, exc: Exception):
        return error(status_of(exc), exc.code, exc.message)  # type: ignore[attr-defined]
