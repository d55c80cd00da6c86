"""The OpenAPI schema documents every JSON route."""

from __future__ import annotations

from fastapi import FastAPI

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def api_routes(app: FastAPI) -> list[tuple[str, set[str]]]:
    """(path, methods) of every route under /api, including those of included routers."""
    found = []
    for route in app.routes:
        # FastAPI >= 0.16x keeps included routers as one entry; older versions list their routes flat.
        contexts = route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else [route]
        for context in contexts:
            methods = getattr(getattr(context, "original_route", context), "methods", None)
            if context.path.startswith("/api") and methods:
                found.append((context.path, set(methods) - IGNORED_METHODS))
    return found


def test_every_api_route_is_in_the_schema_with_a_summary_and_description(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    routes = api_routes(app)

    assert len(routes) >= 20
    undocumented = []
    for path, methods in routes:
        assert path in paths, f"{path} missing from the OpenAPI schema"
        for method in methods:
            operation = paths[path].get(method.lower())
            assert operation is not None, f"{method} {path} missing from the OpenAPI schema"
            if not operation.get("summary") or not operation.get("description"):
                undocumented.append(f"{method} {path}")
    assert undocumented == []


def test_the_schema_has_no_path_without_a_route(app: FastAPI) -> None:
    documented = {(path, method.upper()) for path, ops in app.openapi()["paths"].items() for method in ops}
    routed = {(path, method) for path, methods in api_routes(app) for method in methods}
    assert documented == routed


def test_the_issue_routes_are_all_there(app: FastAPI) -> None:
    routed = {(method, path) for path, methods in api_routes(app) for method in methods}
    expected = {
        ("POST", "/api/experiments"),
        ("GET", "/api/experiments"),
        ("GET", "/api/experiments/by-input-artifacts"),
        ("GET", "/api/experiments/{experiment_id}"),
        ("PATCH", "/api/experiments/{experiment_id}"),
        ("DELETE", "/api/experiments/{experiment_id}"),
        ("POST", "/api/experiments/{experiment_id}/archive"),
        ("POST", "/api/experiments/{experiment_id}/unarchive"),
        ("POST", "/api/experiments/{experiment_id}/status"),
        ("POST", "/api/experiments/{experiment_id}/results"),
        ("POST", "/api/experiments/{experiment_id}/runs"),
        ("GET", "/api/experiments/{experiment_id}/runs"),
        ("GET", "/api/runs/compare"),
        ("GET", "/api/runs/{run_id}"),
        ("POST", "/api/runs/{run_id}/status"),
        ("POST", "/api/runs/{run_id}/cancel"),
        ("GET", "/api/runs/{run_id}/metrics"),
        ("POST", "/api/runs/{run_id}/metrics"),
        ("POST", "/api/artifacts"),
        ("GET", "/api/artifacts/{artifact_id}"),
        ("GET", "/api/artifacts/{artifact_id}/lineage"),
        ("GET", "/api/health"),
    }
    assert expected <= routed, sorted(expected - routed)


def test_openapi_json_is_served(client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "TuneLab"
    assert "/api/experiments" in response.json()["paths"]


def test_the_metrics_batch_body_is_documented_though_the_route_reads_raw_bytes(app: FastAPI) -> None:
    body = app.openapi()["paths"]["/api/runs/{run_id}/metrics"]["post"]["requestBody"]

    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    assert schema["required"] == ["points"] and schema["additionalProperties"] is False
    points = schema["properties"]["points"]
    assert points["maxItems"] == 10_000
    item = points["items"]
    assert set(item["properties"]) == {"key", "value", "step", "ts"}
    assert item["required"] == ["key", "value", "step"]
    assert item["properties"]["step"]["maximum"] == 2**63 - 1
    assert "$ref" not in str(schema)  # self-contained: no reference into a $defs the document lacks


def test_experiment_detail_documents_its_runs_as_runs(app: FastAPI) -> None:
    schemas = app.openapi()["components"]["schemas"]
    runs = schemas["ExperimentDetail"]["properties"]["runs"]
    assert runs["type"] == "array" and runs["items"] == {"$ref": "#/components/schemas/Run"}
    assert {"id", "status", "metrics_summary", "final_loss"} <= set(schemas["Run"]["properties"])
