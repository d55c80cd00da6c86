"""The error envelope {"error": {"code", "message", "details"}} for every kind of failure, and HTML for browsers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from .conftest import Api

HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.mark.parametrize("path", ["/api/nope", "/api/experiments/x/nope", "/api", "/nope"])
def test_unknown_route_is_a_json_404(client, api, path: str) -> None:
    error = api.error(client.get(path), 404, "not_found")
    assert error["details"] == {}
    assert client.get(path).headers["content-type"].startswith("application/json")


def test_unknown_api_route_stays_json_for_a_browser(client, api) -> None:
    response = client.get("/api/nope", headers=HTML)
    api.error(response, 404, "not_found")


def test_browser_gets_an_html_error_page_off_the_api(client) -> None:
    response = client.get("/no/such/page", headers=HTML)

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "not_found" in response.text
    assert '"error"' not in response.text


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/experiments", "GET, POST"),
        ("DELETE", "/api/runs/compare", "GET"),
        ("PATCH", "/api/health", "GET"),
        ("GET", "/api/runs/r/cancel", "POST"),
        # One FastAPI route per method: the Allow header names those of every route at the path.
        ("OPTIONS", "/api/experiments/exp-1", "GET, PATCH, DELETE"),
        ("PUT", "/api/runs/r/metrics", "GET, POST"),
        ("DELETE", "/api/experiments/exp-1/runs", "GET, POST"),
        ("POST", "/experiments", "GET"),
        ("DELETE", "/api/experiments/by-input-artifacts", "GET"),
    ],
)
def test_wrong_method_is_405_naming_the_methods_the_path_takes(client, api, method: str, path: str, allow: str) -> None:
    response = client.request(method, path)
    api.error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow


def test_a_get_is_never_refused_for_its_body(client, api) -> None:
    # No GET route reads a body, so none is limited (and no GET operation documents 413).
    big = b"x" * (2 * 1024 * 1024)
    response = client.request("GET", "/api/experiments", content=big, headers={"content-type": "text/plain"})
    assert response.status_code == 200, response.text
    refused = client.request("DELETE", "/api/experiments/exp-1", content=big, headers={"content-type": "text/plain"})
    assert api.error(refused, 413, "body_too_large")["details"] == {"max_bytes": 1024 * 1024}


def test_domain_404_carries_its_own_code(client, api) -> None:
    api.error(client.get("/api/experiments/exp-nope"), 404, "experiment_not_found")
    api.error(client.get("/api/runs/run-nope"), 404, "run_not_found")
    api.error(client.get("/api/artifacts/art-nope"), 404, "artifact_not_found")


def test_conflict_is_409(client, api) -> None:
    api.experiment("dup")
    error = api.error(client.post("/api/experiments", json={"name": "dup"}), 409, "experiment_name_taken")
    assert error["details"]["name"] == "dup"


def test_validation_failure_is_422_listing_each_problem(client, api) -> None:
    response = client.post("/api/experiments", json={"name": "", "config": "not an object", "extra": 1})

    error = api.error(response, 422, "validation_error")

    locs = sorted(tuple(e["loc"]) for e in error["details"]["errors"])
    assert locs == [("body", "config"), ("body", "extra"), ("body", "name")]
    assert all(set(e) == {"loc", "msg", "type"} for e in error["details"]["errors"])
    assert error["message"].startswith(("name", "config", "extra"))


def test_malformed_json_body_is_422(client, api) -> None:
    response = client.post("/api/experiments", content=b"{not json", headers={"content-type": "application/json"})
    api.error(response, 422, "invalid_json")


def test_bad_query_parameter_is_422(client, api) -> None:
    error = api.error(client.get("/api/experiments", params={"page": "two"}), 422, "validation_error")
    assert error["details"]["errors"][0]["loc"] == ["query", "page"]


def test_domain_422_carries_its_own_code(client, api) -> None:
    body = {"name": "x", "inputs": {"datasets": ["ghost"]}}
    error = api.error(client.post("/api/experiments", json=body), 422, "unknown_artifacts")
    assert error["details"] == {"missing": ["ghost"]}


def test_bad_request_is_400(client, api) -> None:
    exp = api.experiment()
    error = api.error(client.post(f"/api/experiments/{exp['id']}/runs", json={}), 400, "dataset_required")
    assert "dataset" in error["message"]


def test_a_browser_on_a_page_route_still_gets_json_errors_from_the_api(client, api) -> None:
    response = client.post("/api/experiments", json={"name": ""}, headers=HTML)
    api.error(response, 422, "validation_error")


def test_an_unexpected_exception_is_a_500_envelope_without_the_traceback(app, caplog) -> None:
    def explode() -> None:
        raise RuntimeError("secret detail: /home/dev/.tunelab/password.txt")

    app.add_api_route("/api/explode", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/explode")
        page = client.get("/api/explode", headers=HTML)

    for answer in (response, page):  # /api answers JSON, a browser too
        Api.error(answer, 500, "internal_error")
        assert "secret detail" not in answer.text and "Traceback" not in answer.text
        assert "RuntimeError" not in answer.text and "explode" not in answer.text
    assert response.json()["error"]["details"] == {}
    # Off the API, a browser gets the HTML error page, just as bare.
    app.add_api_route("/explode", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        html = client.get("/explode", headers=HTML)
    assert html.status_code == 500 and html.headers["content-type"].startswith("text/html")
    assert "internal_error" in html.text and "secret detail" not in html.text and "Traceback" not in html.text
    # The details go to the server log instead.
    assert "secret detail" in caplog.text and "GET /api/explode" in caplog.text
