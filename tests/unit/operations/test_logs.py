"""Log lines are JSON, one per line, whatever the message or exception carries."""

from __future__ import annotations

import json
import logging

from hub.operations.logs import JsonFormatter


def test_a_crafted_value_cannot_forge_or_split_a_line():
    crafted = 'H1\n{"level":"INFO","msg":"settled"}\r\x00\x1b[31m'
    record = logging.LogRecord("hub.test", logging.WARNING, __file__, 1, "msgid %s refused", (crafted,), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\x00" not in line
    entry = json.loads(line)
    assert entry["msg"] == f"msgid {crafted} refused" and entry["level"] == "WARNING"


def test_a_traceback_stays_inside_its_line():
    try:
        raise RuntimeError("first line\nsecond line")
    except RuntimeError:
        import sys
        record = logging.LogRecord("hub.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "RuntimeError: first line\nsecond line" in json.loads(line)["exc"]
