"""The bureau portal's app: FastAPI with Jinja2, server-side; charts by Apache ECharts in the
browser (SVG renderer). Routers per resource (routes_*.py), the shared dependencies in web.py.
Every page and download is scoped to the signed-in person's bureau; an operator chooses any
pool. Every form carries the session's CSRF token; a form without it changes nothing. Refusals
map to their HTTP status in one table (web.STATUS)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from hub.operations.health import add_health_routes, database_ready
from hub.portal.adapters.hub_api import ServiceUnavailable
from hub.portal.bootstrap import Portal
from hub.portal.service_layer import accounts
from hub.portal.service_layer.ports import ServiceRefused
from hub.portal.entrypoints import routes_auth, routes_bureau, routes_clearing, routes_operator
from hub.portal.entrypoints.web import COOKIE, HERE, STATUS, PortalRefusal, SignInFirst, page

STATIC = ("portal.css", "portal.js")


def create_app(portal: Portal, loops=None) -> FastAPI:
    app = FastAPI(title="bureau portal", docs_url=None, redoc_url=None)
    app.state.portal = portal

    def signed_in(request: Request) -> accounts.Session | None:
        return accounts.session_of(portal.repository, request.cookies.get(COOKIE), portal.clock())

    @app.exception_handler(SignInFirst)
    async def sign_in_first(request: Request, exc: SignInFirst):
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(PortalRefusal)
    async def refusal(request: Request, exc: PortalRefusal):
        return page(request, "refused.html", signed_in(request), STATUS[exc.refused.reason], refused=exc.refused)

    @app.exception_handler(ServiceRefused)
    async def service_refused(request: Request, exc: ServiceRefused):
        return page(request, "refused.html", signed_in(request), max(exc.status, 400), refused=exc.refused())

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, exc: ServiceUnavailable):
        return page(request, "unavailable.html", signed_in(request), 503, message=str(exc))

    @app.get("/static/echarts.min.js", include_in_schema=False)
    def echarts():
        return FileResponse(portal.settings.assets_dir / "echarts.min.js", media_type="text/javascript")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        return FileResponse(HERE / "static" / name) if name in STATIC else Response(status_code=404)

    for module in (routes_auth, routes_clearing, routes_bureau, routes_operator):
        app.include_router(module.router)
    # /health/live, /health/ready (its database and the audit relay's loop)
    add_health_routes(app, database_ready(portal.engine) if portal.engine is not None else (lambda: None), loops)
    return app
