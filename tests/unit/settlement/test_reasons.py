"""Reasons as data: the service layer names a reason; only the HTTP edge picks a status."""

from __future__ import annotations

import ast
from pathlib import Path

from hub.settlement.domain.refusals import RefusalCode
from hub.settlement.entrypoints.http import HTTP_STATUS
from hub.settlement.service_layer.reasons import Why, reason_of

SERVICE_LAYER = Path(__file__).resolve().parents[3] / "services" / "hub" / "settlement" / "service_layer"


def test_every_reason_has_one_stable_code_and_an_answer_on_the_wire():
    codes = [r.code for r in (*Why, *RefusalCode)]
    assert len(codes) == len(set(codes))
    for reason in (*Why, *RefusalCode):
        assert reason_of(reason.code) is reason
        assert 400 <= HTTP_STATUS[reason] < 600 and reason.message


def test_the_convention_translation_raises_only_codes_the_service_knows():
    convention = (SERVICE_LAYER / "convention.py").read_text()
    raised = {node.args[0].value for node in ast.walk(ast.parse(convention))
              if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ConventionError"
              and node.args and isinstance(node.args[0], ast.Constant)}
    assert raised and all(reason_of(code) for code in raised)


def test_no_http_status_numbers_below_the_edge():
    for path in SERVICE_LAYER.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("Answer", "Reply") and node.args:
                first = node.args[0]
                assert not (isinstance(first, ast.Constant) and isinstance(first.value, int)), \
                    f"{path.name}:{node.lineno} passes an HTTP status"
