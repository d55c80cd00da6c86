"""The OpenAPI schema documents every JSON route."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from tunelab.domain.common import ID_REGEX
from tunelab.domain.experiments import ExperimentSort, ExperimentStatus
from tunelab.domain.metrics import MetricHistory, RunMetrics
from tunelab.domain.runs import RunStatus

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
                # As the schema writes it: {experiment_id:experiment_id} names its convertor (api/routing.py).
                found.append((re.sub(r"\{(\w+):\w+\}", r"{\1}", context.path), set(methods) - IGNORED_METHODS))
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


# --- Which statuses each operation documents ------------------------------------------------------------------------

WRITE_METHODS = {"post", "put", "patch", "delete"}


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in document["paths"].items():
        for method, operation in ops.items():
            yield method, path, operation


def test_every_operation_documents_the_errors_it_can_meet(app: FastAPI) -> None:
    missing = []
    for method, path, operation in operations(app.openapi()):
        documented = {int(status) for status in operation["responses"] if status[0] in "45"}
        # The Host check and request validation meet every route.
        expected = {400, 422}
        if any(parameter["in"] == "path" for parameter in operation.get("parameters", [])):
            expected.add(404)
        if method in WRITE_METHODS:
            expected |= {403, 413}  # the Origin check and the body limit
        if expected - documented:
            missing.append(f"{method.upper()} {path}: {sorted(expected - documented)}")
    assert missing == []


def test_reads_document_no_write_refusals(app: FastAPI) -> None:
    # A GET is never refused for its Origin or its body: listing 403 or 413 there would promise what cannot happen.
    wrong = [
        f"GET {path}" for method, path, operation in operations(app.openapi())
        if method == "get" and {"403", "413"} & set(operation["responses"])
    ]  # fmt: skip
    assert wrong == []


def test_every_error_answer_is_documented_as_the_envelope(app: FastAPI) -> None:
    document = app.openapi()
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, f"{method} {path} {status}"
            if status == "405":
                assert "Allow" in response["headers"], f"{method} {path}: a 405 names the methods it takes"
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    body = document["components"]["schemas"]["ErrorBody"]
    assert envelope["required"] == ["error"]
    assert sorted(body["required"]) == ["code", "details", "message"]


def test_raw_json_routes_declare_their_models(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for path, model in (("/api/runs/{run_id}/metrics", "RunMetrics"), ("/api/runs/metrics", "MetricHistory")):
        schema = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}


# --- What values the schema states ----------------------------------------------------------------------------------


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return resolve(document, document["components"]["schemas"][ref.rsplit("/", 1)[1]]) if ref else schema


def test_statuses_goals_and_sorts_are_enums(app: FastAPI) -> None:
    document = app.openapi()
    schemas = document["components"]["schemas"]
    assert resolve(document, schemas["Experiment"]["properties"]["status"])["enum"] == [
        s.value for s in ExperimentStatus
    ]
    assert resolve(document, schemas["Run"]["properties"]["status"])["enum"] == [s.value for s in RunStatus]
    assert resolve(document, schemas["RunStatusUpdate"]["properties"]["status"])["enum"] == [s.value for s in RunStatus]
    assert schemas["MetricGoal"]["enum"] == ["min", "max", "none"]
    assert schemas["ExperimentSort"]["enum"] == [s.value for s in ExperimentSort]
    # update_status takes every status but archived (it has its own endpoints), and the tracker's pending.
    status_update = schemas["StatusUpdate"]["properties"]["status"]["enum"]
    assert status_update == ["pending", "draft", "running", "completed", "failed", "cancelled"]
    filters = {p["name"]: p for p in document["paths"]["/api/experiments"]["get"]["parameters"]}
    assert set(filters["status"]["schema"]["enum"]) == {"pending", *ExperimentStatus}


def test_ids_carry_their_pattern_in_paths_and_bodies(app: FastAPI) -> None:
    document = app.openapi()
    for method, path, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["schema"]["pattern"] == ID_REGEX, f"{method} {path} {parameter['name']}"
    schemas = document["components"]["schemas"]

    def pattern(schema: dict[str, Any]) -> str:
        return next(branch for branch in schema.get("anyOf", [schema]) if branch.get("type") == "string")["pattern"]

    assert pattern(schemas["ExperimentCreate"]["properties"]["id"]) == ID_REGEX
    assert pattern(schemas["ExperimentCreate"]["properties"]["dataset_id"]) == ID_REGEX
    assert schemas["ExperimentCreate"]["properties"]["inputs"]["additionalProperties"]["items"]["pattern"] == ID_REGEX
    assert schemas["ResultsUpdate"]["properties"]["outputs"]["additionalProperties"]["pattern"] == ID_REGEX
    assert pattern(schemas["ArtifactCreate"]["properties"]["id"]) == ID_REGEX


@pytest.mark.parametrize(("path", "most"), [("/api/runs/compare", 20), ("/api/runs/metrics", 100)])
def test_id_lists_state_their_form_and_count(app: FastAPI, path: str, most: int) -> None:
    parameters = {p["name"]: p for p in app.openapi()["paths"][path]["get"]["parameters"]}
    form = re.compile(parameters["ids"]["schema"]["pattern"])
    assert form.fullmatch(",".join(f"run-{i}" for i in range(most)))
    assert not form.fullmatch(",".join(f"run-{i}" for i in range(most + 1)))
    assert not form.fullmatch("") and not form.fullmatch("run-1,") and not form.fullmatch("-run")


def test_integer_bounds_are_exact(app: FastAPI) -> None:
    # FastAPI's models hold bounds as floats; 9.223372036854776e18 would be one past the largest BIGINT.
    document = app.openapi()
    size = document["components"]["schemas"]["ArtifactCreate"]["properties"]["size"]["anyOf"][0]
    assert size["maximum"] == 2**63 - 1 and isinstance(size["maximum"], int)
    parameters = {p["name"]: p for p in document["paths"]["/api/runs/{run_id}/metrics"]["get"]["parameters"]}
    assert parameters["after_step"]["schema"]["anyOf"][0]["maximum"] == 2**63 - 1
    assert all(not (isinstance(value, float) and value.is_integer()) for value in _bounds(document)), (
        "an integer bound left as a float"
    )


def _bounds(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                yield value
            else:
                yield from _bounds(value)
    elif isinstance(node, list):
        for item in node:
            yield from _bounds(item)


# --- Nothing the schema allows as null is refused as null -----------------------------------------------------------


def nullable_paths(
    document: dict[str, Any], schema: dict[str, Any], at: tuple[str | int, ...] = ()
) -> Iterator[tuple[str | int, ...]]:
    """Where in a body of this schema a null is allowed: object properties, through arrays' items."""
    schema = resolve(document, schema)
    for name, prop in schema.get("properties", {}).items():
        branches = [resolve(document, b) for b in prop.get("anyOf", [prop])]
        if any(branch.get("type") == "null" for branch in branches):
            yield (*at, name)
        for branch in branches:
            if branch.get("type") == "object":
                yield from nullable_paths(document, branch, (*at, name))
            if branch.get("type") == "array":
                yield from nullable_paths(document, branch["items"], (*at, name, 0))


def body_with_null(at: tuple[str | int, ...]) -> Any:
    """The smallest body that holds a null at `at` (other required fields left out: they fail on their own)."""
    if not at:
        return None
    head, rest = at[0], at[1:]
    return [body_with_null(rest)] if isinstance(head, int) else {head: body_with_null(rest)}


def test_nothing_declared_nullable_is_refused_as_null(client, app: FastAPI) -> None:
    document = app.openapi()
    refused = []
    checked = 0
    for method, path, operation in operations(document):
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            continue
        for at in nullable_paths(document, body["schema"]):
            checked += 1
            url = path.format(**{p["name"]: "x-1" for p in operation.get("parameters", []) if p["in"] == "path"})
            response = client.request(method, url, json=body_with_null(at))
            if response.status_code == 422:
                locations = {tuple(e["loc"]) for e in response.json()["error"]["details"].get("errors", [])}
                if ("body", *at) in locations:
                    refused.append(f"{method.upper()} {path} {'.'.join(map(str, at))}")
    assert checked >= 10  # the walk found the nullable fields (description, dataset_id, error, ts, …)
    assert refused == []


# --- Answers built as raw JSON bytes conform to the models they declare ---------------------------------------------


def test_raw_json_answers_conform_to_their_documented_schemas(client, api, app: FastAPI) -> None:
    document = app.openapi()

    def check(response: httpx.Response, model: type[BaseModel]) -> None:
        assert response.status_code == 200, response.text
        body = response.json()
        schema = {"$ref": f"#/components/schemas/{model.__name__}", "components": document["components"]}
        errors = [f"{'/'.join(map(str, error.instance_path))}: {error.message}"
                  for error in jsonschema_rs.validator_for(schema).iter_errors(body)]  # fmt: skip
        assert errors == []
        assert set(body) == set(model.model_fields), "keys the model does not document"

    exp = api.experiment(metric_goals={"reward": "max"})
    run, other, empty = api.run(exp["id"]), api.run(exp["id"]), api.run(exp["id"])
    api.metrics(run["id"], [point("loss", 1 / (i + 1), i, ts="2024-05-01T12:00:00+02:00") for i in range(30)])
    api.metrics(run["id"], [point("reward", float(i), i) for i in range(5)])
    api.metrics(other["id"], [point("loss", 0.5, 1)])

    for params in ({}, {"limit": 7}, {"max_points": 4}, {"key": "loss", "after_step": 10}, {"key": "nothing"}):
        check(client.get(f"/api/runs/{run['id']}/metrics", params=params), RunMetrics)
    check(client.get(f"/api/runs/{empty['id']}/metrics"), RunMetrics)
    ids = f"{run['id']},{other['id']},{empty['id']}"
    for params in ({"key": "loss"}, {"key": "loss", "max_points": 4}, {"key": "nothing"}):
        check(client.get("/api/runs/metrics", params={"ids": ids, **params}), MetricHistory)


def point(key: str, value: float, step: int, **fields: Any) -> dict[str, Any]:
    return {"key": key, "value": value, "step": step, **fields}


def test_creates_link_to_what_their_id_opens(app: FastAPI) -> None:
    document = app.openapi()
    followed = set()
    for method, path, operation in operations(document):
        created = {**operation["responses"].get("201", {}), **operation["responses"].get("202", {})}
        for link in created.get("links", {}).values():
            target_path, target_method = link["operationRef"].removeprefix("#/paths/").rsplit("/", 1)
            target_path = target_path.replace("~1", "/").replace("~0", "~")
            target = document["paths"][target_path][target_method]
            names = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
            assert set(link["parameters"]) == names, f"{method} {path} -> {target_method} {target_path}"
            followed.add(f"{target_method.upper()} {target_path}")
    # Every operation on one experiment, run or artifact is reached from the create that makes it.
    with_ids = {
        f"{m.upper()} {p}"
        for m, p, o in operations(document)
        if any(x["in"] == "path" for x in o.get("parameters", []))
    }
    assert with_ids == followed
