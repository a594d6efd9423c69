"""The availability, reservation and fulfilment tests again, on a three-master Redis Cluster.

Each module here imports the tests (and their fixtures) of its namesake one level up; this
conftest points `redis_url`, and so `settings`, the API and the workers, at the cluster.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def redis_url(redis_cluster_url: str) -> str:
    return redis_cluster_url
