from tests.integration.conftest import servers  # noqa: F401  (the same real servers, found once)
