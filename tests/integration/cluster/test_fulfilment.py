"""tests/integration/test_fulfilment.py on Redis Cluster (see conftest.py here)."""

from tests.integration.test_fulfilment import *  # noqa: F403
