"""The hub's services as the portal calls them: each request carries the token of the bureau
the signed-in person belongs to (an operator's: the operator token), so a service checks the
scope again on its own."""

from __future__ import annotations

from typing import Any

import httpx

from hub.portal.domain.people import ALL_POOLS
from hub.portal.service_layer.ports import ServiceRefused


class ServiceUnavailable(Exception):
    """A service did not answer (the page says which)."""


class HubApi:
    def __init__(self, clearing_url: str, settlement_url: str, operator_token: str, bureau_tokens: dict[str, str],
                 timeout_s: float = 30.0):
        self._clients = {"clearing": httpx.Client(base_url=clearing_url, timeout=timeout_s),
                         "settlement": httpx.Client(base_url=settlement_url, timeout=timeout_s)}
        self._operator_token, self._bureau_tokens = operator_token, bureau_tokens

    def _token(self, pool: str) -> str:
        if pool == ALL_POOLS:
            return self._operator_token
        token = self._bureau_tokens.get(pool)
        if token is None:
            raise ServiceRefused(403, "no_bureau_token", f"the portal holds no token for bureau {pool}")
        return token

    def _call(self, service: str, method: str, path: str, as_pool: str, *, missing_ok: bool = False,
              **kwargs) -> httpx.Response | None:
        try:
            answer = self._clients[service].request(
                method, path, headers={"Authorization": f"Bearer {self._token(as_pool)}"}, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"the {service} service does not answer ({exc.__class__.__name__})") from None
        if answer.status_code == 404 and missing_ok:
            return None
        if answer.status_code >= 500:
            raise ServiceUnavailable(f"the {service} service answered {answer.status_code}")
        if answer.status_code >= 400:
            try:
                error = answer.json()["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = str(answer.status_code), answer.text[:200]
            raise ServiceRefused(answer.status_code, code, message)
        return answer

    def _json(self, service: str, path: str, as_pool: str, **kwargs) -> Any:
        answer = self._call(service, "GET", path, as_pool, missing_ok=True, **kwargs)
        return answer.json() if answer is not None else None

    # ---------------------------------------------------------------- clearing

    def days(self, pool: str, as_pool: str) -> list[dict]:
        return self._json("clearing", f"/v1/clearing-days/{pool}", as_pool) or []

    def day_file(self, day: str, pool: str, suffix: str, as_pool: str) -> bytes | None:
        answer = self._call("clearing", "GET", f"/v1/clearing/{day}/{pool}.{suffix}", as_pool, missing_ok=True)
        return answer.content if answer is not None else None

    def public_key(self) -> str:
        return self._call("clearing", "GET", "/v1/clearing/public-key", ALL_POOLS).text.strip()

    def confirm_day(self, day: str, pool: str) -> dict:
        return self._call("clearing", "POST", f"/v1/clearing/{day}/{pool}/confirm", pool).json()

    def statement(self, month: str, pool: str, as_pool: str) -> dict | None:
        return self._json("clearing", f"/v1/statements/{month}/{pool}", as_pool)

    def act_on_lines(self, month: str, pool: str, action: str, event_ids: list[str], reason: str,
                     all_pending: bool = False) -> dict:
        return self._call("clearing", "POST", f"/v1/statements/{month}/{pool}/lines", pool,
                          json={"action": action, "event_ids": event_ids, "reason": reason,
                                "all_pending": all_pending}).json()

    def close_month(self, month: str, pool: str) -> dict:
        return self._call("clearing", "POST", f"/v1/statements/{month}/{pool}/close", pool).json()

    def hospital_month(self, month: str, pool: str, as_pool: str) -> dict | None:
        return self._json("clearing", f"/v1/hospital-months/{month}/{pool}", as_pool)

    def advance(self, pool: str, as_pool: str) -> dict | None:
        return self._json("clearing", f"/v1/advances/{pool}", as_pool)

    def fund_risk(self, pool: str, as_pool: str) -> dict | None:
        return self._json("clearing", f"/v1/fund-risk/{pool}", as_pool)

    def anomalies(self, pool: str, as_pool: str) -> dict | None:
        return self._json("clearing", f"/v1/anomalies/{pool}", as_pool)

    def status(self) -> dict:
        return self._json("clearing", "/status.json", ALL_POOLS) or {}

    # ---------------------------------------------------------------- settlement (manual claims)

    def claims(self, pool: str) -> list[dict]:
        return (self._json("settlement", "/v1/claims", pool) or {}).get("claims", [])

    def claim(self, pool: str, claim_no: str) -> dict | None:
        return self._json("settlement", f"/v1/claims/{pool}/{claim_no}", pool)

    def decide_claim(self, pool: str, claim_no: str, approve: bool, note: str) -> dict:
        return self._call("settlement", "POST", f"/v1/claims/{pool}/{claim_no}/decision", pool,
                          json={"decision": "APPROVE" if approve else "REJECT", "note": note}).json()
