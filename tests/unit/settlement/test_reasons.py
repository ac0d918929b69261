"""Reasons as data: the service layer names a reason; only the HTTP edge picks a status (200 in
the envelope for every refusal, as the platform answers; a status of its own for the transport)."""

from __future__ import annotations

import ast
from datetime import datetime, timezone
from pathlib import Path

from hub.settlement.domain.refusals import RefusalCode
from hub.settlement.entrypoints.http import TRANSPORT_STATUS, status_of
from hub.settlement.service_layer.envelope import refused
from hub.settlement.service_layer.reasons import Why, reason_of

SERVICE_LAYER = Path(__file__).resolve().parents[3] / "services" / "hub" / "settlement" / "service_layer"


def test_every_reason_has_one_stable_code_and_an_answer_on_the_wire():
    codes = [r.code for r in (*Why, *RefusalCode)]
    assert len(codes) == len(set(codes))
    now = datetime.now(timezone.utc)
    for reason in (*Why, *RefusalCode):
        assert reason_of(reason.code) is reason and reason.message
        reply = refused(reason, "", now)
        assert reply.body["infcode"] == "-1" and reply.body["err_msg"].startswith(f"[{reason.code}] ")
        assert status_of(reply) == TRANSPORT_STATUS.get(reason, 200)
    assert set(TRANSPORT_STATUS) == {Why.UNAUTHENTICATED, Why.REQUEST_TOO_LARGE, Why.HUB_UNAVAILABLE, Why.INTERNAL_ERROR}


def test_the_convention_translation_refuses_only_with_reasons_the_service_knows():
    """Every ConventionError and ClaimRefused names its reason as a member of an enum the service
    declares (no free-string codes, no HTTP status below the edge)."""
    from hub.settlement.service_layer.reasons import ClaimWhy, Why

    declared = {"Why": Why, "ClaimWhy": ClaimWhy}
    found = 0
    for path in SERVICE_LAYER.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                    "ConventionError", "ClaimRefused") and node.args:
                first = node.args[0]
                assert not isinstance(first, ast.Constant), f"{path.name}:{node.lineno} refuses with a literal"
                if isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name) and first.value.id in declared:
                    assert hasattr(declared[first.value.id], first.attr), f"{path.name}:{node.lineno}"
                    found += 1
                assert not any(isinstance(a, ast.Constant) and isinstance(a.value, int) for a in node.args), \
                    f"{path.name}:{node.lineno} passes an HTTP status"
    assert found > 40


def test_no_http_status_numbers_below_the_edge():
    for path in SERVICE_LAYER.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("Answer", "Reply") and node.args:
                first = node.args[0]
                assert not (isinstance(first, ast.Constant) and isinstance(first.value, int)), \
                    f"{path.name}:{node.lineno} passes an HTTP status"
