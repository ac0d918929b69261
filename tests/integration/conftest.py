from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent.name in ("integration", "e2e"):
            item.add_marker(pytest.mark.integration)


