"""The hub's services as the portal calls them: each request carries the token of the bureau
the signed-in person belongs to (an operator's: the operator token), so a service checks the
scope again on its own."""

from __future__ import annotations

from typing import Any

import httpx

from hub.money import fen_to_yuan
from hub.portal.domain.people import ALL_POOLS
from hub.portal.service_layer.ports import ServiceRefused


class ServiceUnavailable(Exception):
    """A service did not answer (the page says which)."""


class HubApi:
    def __init__(self, clearing_url: str, settlement_url: str, registration_url: str, operator_token: str,
                 bureau_tokens: dict[str, str], timeout_s: float = 30.0):
        self._clients = {"clearing": httpx.Client(base_url=clearing_url, timeout=timeout_s),
                         "settlement": httpx.Client(base_url=settlement_url, timeout=timeout_s),
                         # an enrolment snapshot of a large pool takes minutes to import
                         "registration": httpx.Client(base_url=registration_url, timeout=max(timeout_s, 900.0))}
        self._operator_token, self._bureau_tokens = operator_token, bureau_tokens

    def _token(self, pool: str) -> str:
        if pool == ALL_POOLS:
            return self._operator_token
        token = self._bureau_tokens.get(pool)
        if token is None:
            raise ServiceRefused(403, "no_bureau_token", f"the portal holds no token for bureau {pool}")
        return token

    def _send(self, service: str, method: str, path: str, as_pool: str, headers_extra: dict[str, str] | None = None,
              **kwargs) -> httpx.Response:
        """The request with the caller's token; a service that does not answer, or answers 5xx, is
        unavailable. Its 4xx answers are the caller's to read."""
        try:
            answer = self._clients[service].request(
                method, path, headers={"Authorization": f"Bearer {self._token(as_pool)}", **(headers_extra or {})},
                **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"the {service} service does not answer ({exc.__class__.__name__})") from None
        if answer.status_code >= 500:
            raise ServiceUnavailable(f"the {service} service answered {answer.status_code}")
        return answer

    def _call(self, service: str, method: str, path: str, as_pool: str, *, missing_ok: bool = False,
              **kwargs) -> httpx.Response | None:
        """As `_send`, a 4xx raised as ServiceRefused (a 404 answered None when `missing_ok`)."""
        answer = self._send(service, method, path, as_pool, **kwargs)
        if answer.status_code == 404 and missing_ok:
            return None
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

    def day_summary(self, day: str, pool: str, as_pool: str) -> dict | None:
        return self._json("clearing", f"/v1/clearing-days/{pool}/{day}", as_pool)

    def day_file(self, day: str, pool: str, suffix: str, as_pool: str) -> bytes | None:
        answer = self._call("clearing", "GET", f"/v1/clearing/{day}/{pool}.{suffix}", as_pool, missing_ok=True)
        return answer.content if answer is not None else None

    def public_keys(self) -> list[str]:
        """The hub's current signing key and the ones a rotation retired."""
        keys = self._call("clearing", "GET", "/v1/clearing/public-keys", ALL_POOLS).json()
        return [keys["current"], *keys["previous"]]

    def confirm_day(self, day: str, pool: str) -> dict:
        return self._call("clearing", "POST", f"/v1/clearing/{day}/{pool}/confirm", pool).json()

    def statement(self, month: str, pool: str, as_pool: str, filters: dict[str, str] | None = None,
                  limit: int | None = None, offset: int = 0) -> dict | None:
        """The month's statement; with `filters` (counterparty, hospital, insutype, state), `limit`
        and `offset`, only the lines asked for (the clearing service filters and pages them)."""
        params = ({k: v for k, v in (filters or {}).items() if v} | ({"limit": limit} if limit else {})
                  | ({"offset": offset} if offset else {}))
        return self._json("clearing", f"/v1/statements/{month}/{pool}", as_pool, params=params)

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

    def deposit(self, pool: str, reference: str, amount_fen: int, recorded_by: str, note: str) -> dict:
        return self._call("clearing", "POST", f"/v1/advances/{pool}/deposits", ALL_POOLS,
                          json={"reference": reference, "amount_yuan": fen_to_yuan(amount_fen),
                                "recorded_by": recorded_by, "note": note}).json()

    def monthly_unconfirmed(self) -> list[dict]:
        return self._json("clearing", "/v1/statements-open", ALL_POOLS) or []

    def status(self) -> dict:
        return self._json("clearing", "/status.json", ALL_POOLS) or {}

    # ---------------------------------------------------------------- settlement (manual claims)

    def claims(self, pool: str, status: str | None = None) -> list[dict]:
        params = {"status": status} if status else {}
        return (self._json("settlement", "/v1/claims", pool, params=params) or {}).get("claims", [])

    def submit_claim(self, pool: str, claim: Any) -> tuple[int, dict]:
        """A bureau's own claim, priced at once: (status, answer) — a refusal is an answer here
        (its refused lines are shown), not an exception."""
        answer = self._send("settlement", "POST", "/v1/claims", pool, json=claim)
        return answer.status_code, answer.json()

    def claim(self, pool: str, claim_no: str) -> dict | None:
        return self._json("settlement", f"/v1/claims/{pool}/{claim_no}", pool)

    def start_what_if(self, pool: str, policy: str, first: str, last: str, requested_by: str) -> dict:
        return self._call("settlement", "POST", "/v1/what-if", pool, json={
            "policy": policy, "from": first, "to": last, "requested_by": requested_by}).json()

    def what_ifs(self, pool: str) -> list[dict]:
        return (self._json("settlement", "/v1/what-if", pool) or {}).get("runs", [])

    def what_if(self, pool: str, run_id: str) -> dict | None:
        return self._json("settlement", f"/v1/what-if/{run_id}", pool)

    def what_if_report(self, pool: str, run_id: str) -> str | None:
        answer = self._call("settlement", "GET", f"/v1/what-if/{run_id}/report.html", pool, missing_ok=True)
        return answer.text if answer is not None else None

    # ---------------------------------------------------------------- registration

    def import_enrolments(self, pool: str, csv: bytes) -> dict:
        return self._call("registration", "POST", "/v1/enrolments/import", pool, content=csv,
                          headers_extra={"content-type": "text/csv; charset=utf-8"}).json()

    def file(self, pool: str, filing: dict) -> dict:
        return self._call("registration", "POST", "/v1/filings", pool, json=filing).json()

    def revoke_filing(self, pool: str, filing_id: str) -> dict:
        return self._call("registration", "POST", f"/v1/filings/{filing_id}/revoke", pool).json()

    def person_status(self, pool: str, psn_no: str, region: str, day: str) -> dict:
        return self._call("registration", "POST", "/v1/status", pool,
                          json={"psn_no": psn_no, "region": region, "date": day}).json()

    def decide_claim(self, pool: str, claim_no: str, approve: bool, note: str) -> dict:
        return self._call("settlement", "POST", f"/v1/claims/{pool}/{claim_no}/decision", pool,
                          json={"decision": "APPROVE" if approve else "REJECT", "note": note}).json()
