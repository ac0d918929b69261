"""Signing in and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from hub.portal.domain.people import Refused
from hub.portal.service_layer import accounts
from hub.portal.entrypoints.web import COOKIE, STATUS, Checked, Wired, page

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request):
    return page(request, "login.html", None)


@router.post("/login")
def login(request: Request, portal: Wired, username: Annotated[str, Form(max_length=64)] = "",
          password: Annotated[str, Form(max_length=256)] = ""):
    opened = accounts.sign_in(portal.repository, portal.hasher, portal.settings.lockout, username, password,
                              portal.clock())
    if isinstance(opened, Refused):
        return page(request, "login.html", None, STATUS[opened.reason], refused=opened, username=username)
    answer = RedirectResponse("/", status_code=303)
    answer.set_cookie(COOKIE, opened.token, max_age=accounts.SESSION_HOURS * 3600, httponly=True,
                      samesite="strict", secure=portal.settings.secure_cookies, path="/")
    return answer


@router.post("/logout")
def logout(request: Request, who: Checked, portal: Wired):
    accounts.sign_out(portal.repository, who, request.cookies.get(COOKIE, ""), portal.clock())
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/")
    return answer
