"""One JSON error shape everywhere: {"ok": false, "error": "...", "errors": [...], "status": N}."""

from __future__ import annotations

import pytest

from keymoments.exceptions import (
    BudgetError,
    ConfigError,
    IngestError,
    InvalidEventError,
    InvalidParameterError,
    NotEnoughDataError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
)
from keymoments.serve.errors import status_for


def assert_error_shape(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"ok", "error", "errors", "status"}
    assert body["ok"] is False
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["errors"], list)
    return body


def test_401_shape(api):
    assert_error_shape(api.client.get("/api/v1/analyses"), 401)


def test_403_shape(api):
    assert_error_shape(api.get("/api/v1/analyses/journey", role="agent"), 403)


def test_404_unknown_route_shape(api):
    body = assert_error_shape(api.get("/api/v1/nothing-here"), 404)
    assert "/openapi.json" in body["error"]


def test_404_domain_not_found_shape(api):
    body = assert_error_shape(api.get("/api/v1/analyses/moments", params={"outcome": "retension", "n_boot": 50}), 404)
    assert "retained" in body["error"]  # the did-you-mean hint survives


def test_405_shape(api):
    assert_error_shape(api.client.put("/health"), 405)


def test_422_parameter_validation_shape(api):
    body = assert_error_shape(api.get("/api/v1/analyses/moments"), 422)  # outcome is required
    assert body["errors"][0]["loc"] == ["query", "outcome"]
    assert "outcome" in body["error"]


def test_422_domain_parameter_shape(api):
    body = assert_error_shape(api.get("/api/v1/analyses/journey", params={"segment": "no-equals-sign"}), 422)
    assert "name=value" in body["error"]


def test_422_bad_body_shape(api):
    assert_error_shape(api.post("/api/v1/events", content=b"{not json", headers={"content-type": "application/json"}), 422)
    assert_error_shape(api.post("/api/v1/events", json={"events": "nope"}), 422)
    assert_error_shape(api.post("/api/v1/events", json=[]), 422)


def test_500_shape_hides_the_traceback(api):
    def boom(_request=None):  # noqa: ANN001, ANN202
        raise RuntimeError("secret internals")

    api.app.add_api_route("/_test/boom", boom)
    body = assert_error_shape(api.client.get("/_test/boom"), 500)
    assert "secret internals" not in body["error"]
    assert "RuntimeError" in body["error"]


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (InvalidParameterError("x"), 422),
        (ConfigError("x"), 422),
        (IngestError("x"), 422),
        (InvalidEventError("x"), 422),
        (NotEnoughDataError("x"), 422),
        (NotFoundError("x"), 404),
        (PermissionDeniedError("x"), 403),
        (BudgetError("x"), 409),
        (StoreError("x"), 503),
    ],
)
def test_status_map(exc, status):
    assert status_for(exc) == status
