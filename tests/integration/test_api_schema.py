"""Property-based tests from the OpenAPI spec (schemathesis): no 5xx, responses match the schema.

Runs against a real `atp api` process with a real Redis behind it. Schemathesis is used as a
library (its pytest plugin does not run on pytest 9 yet): every operation's strategy, drawn by
one hypothesis test.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import RESERVE_TOKEN, wait_http_ok

pytestmark = pytest.mark.integration
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
AUTH = {"Authorization": f"Bearer {RESERVE_TOKEN}"}


def test_no_5xx_and_responses_match_the_schema(settings, processes):
    api = processes.start("api")
    base = f"http://127.0.0.1:{settings.api_port}"
    wait_http_ok(f"{base}/readyz", api)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    # The live stream's 200 never ends, so a generated call would never return; its refusals
    # and its events are tested in test_live.py.
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if op.path != "/v1/stream/availability"
    ]
    assert len(operations) >= 8
    cases = st.one_of(*(op.as_strategy() for op in operations))

    @hsettings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def check(case):
        response = case.call(base_url=base, headers=AUTH)
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        # Business refusals (unknown channel, 409 short) of schema-valid input are fine here;
        # what must hold: no server error, and status, content type and body as documented.
        case.validate_response(response, checks=CHECKS)

    check()
