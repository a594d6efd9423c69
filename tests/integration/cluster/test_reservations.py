"""tests/integration/test_reservations.py on Redis Cluster (see conftest.py here)."""

from tests.integration.test_reservations import *  # noqa: F403
