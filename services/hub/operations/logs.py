"""Log lines are JSON, one per line, in every process of every service.

Each record becomes one JSON object (time, level, logger, message, and the exception with its
traceback as one escaped string), so a multi-line traceback or a crafted value with newlines
or control characters in it (a msgid, a code) can never forge or split a line. The hub never
logs a person id: it knows people by their HMAC reference and shows only masked ids.
"""

from __future__ import annotations

import logging
import os
import time

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # orjson escapes every control character; str() keeps any odd argument printable.
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str | None = None) -> None:
    """JSON lines on stderr for this process (root, uvicorn's and every library's loggers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("HUB_LOG_LEVEL", "INFO"))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO is a line per connection
