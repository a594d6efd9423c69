"""tests/integration/test_reservation_race.py on Redis Cluster (see conftest.py here)."""

from tests.integration.test_reservation_race import *  # noqa: F403
