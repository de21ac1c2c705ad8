"""Property-based run of the whole API from its OpenAPI document: no input may make the server fail (5xx).

Every operation is fuzzed with an admin key (so requests get past authentication into the handlers), against
a small store so the analyses answer quickly; every answer must be a documented, non-5xx response.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 15


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    from keymoments.serve.app import create_app
    from keymoments.serve.auth import create_key
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame
    from keymoments.testing import make_events

    store = Store(tmp_path_factory.mktemp("fuzz") / "fuzz.duckdb")
    events = make_events(80, seed=3)
    ingest_events_frame(store, events)
    customers = sorted(set(events["customer_id"]))
    import pandas as pd

    ingest_outcomes_frame(store, pd.DataFrame({"customer_id": customers, "retained": [i % 2 == 0 for i in range(len(customers))]}))
    _, key = create_key(store, "admin")
    app = create_app(store)
    app.state.fuzz_key = key
    yield app
    store.close()


def test_no_server_errors(fuzz_app):
    """Drive every operation with schemathesis' generated cases (its pytest plugin does not load on pytest 9)."""
    from hypothesis import given

    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    key = fuzz_app.state.fuzz_key
    ran = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/api/v1/keys/{key_id}" and op.method.upper() == "DELETE":
            continue  # revoking the fuzzer's own key would turn every later case into a 401

        @given(case=op.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):  # noqa: ANN001, ANN202
            response = case.call(headers={"X-API-Key": key})
            case.validate_response(response, checks=[not_a_server_error])

        check()
        ran.append(f"{op.method.upper()} {op.path}")
    assert "POST /api/v1/events" in ran and "GET /api/v1/analyses/journey" in ran
