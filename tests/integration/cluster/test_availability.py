"""tests/integration/test_availability.py on Redis Cluster (see conftest.py here)."""

from tests.integration.test_availability import *  # noqa: F403
