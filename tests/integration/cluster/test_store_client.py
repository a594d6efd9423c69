"""tests/integration/test_store_client.py on Redis Cluster (see conftest.py here)."""

from tests.integration.test_store_client import *  # noqa: F403
