"""Bodies take JSON's own types, as the schema states them; times are ISO 8601 text, never numbers."""

from __future__ import annotations

import re
from typing import Any

import pytest


@pytest.mark.parametrize(
    "fields",
    [
        {"size": False},  # pydantic's lax mode read it as 0
        {"size": "10"},
        {"size": 10.5},
    ],
)
def test_an_artifact_size_is_a_json_integer(client, api, fields: dict[str, Any]) -> None:
    body = {"type": "dataset_export", "uri": "file:///x", **fields}
    api.error(client.post("/api/artifacts", json=body), 422, "validation_error")


@pytest.mark.parametrize("external", [1, "true", "yes"])
def test_external_is_a_json_boolean(client, api, external: Any) -> None:
    exp = api.experiment()
    response = client.post(f"/api/experiments/{exp['id']}/runs", json={"external": external})
    api.error(response, 422, "validation_error")


@pytest.mark.parametrize("provenance", [{"git_dirty": "yes"}, {"git_dirty": 0}, {"created_at": 1_700_000_000}])
def test_provenance_takes_json_types(client, api, provenance: dict[str, Any]) -> None:
    response = client.post("/api/experiments", json={"name": "x", "provenance": provenance})
    api.error(response, 422, "validation_error")


@pytest.mark.parametrize(
    "bad",
    [
        {"value": "1.5"},
        {"value": True},
        {"step": "3"},
        {"step": True},
        {"step": 1.5},
        {"ts": 5},
        {"ts": "5"},  # text that is a number was read as Unix time, 1970-01-01T00:00:05
        {"ts": "1700000000.25"},
    ],
)
def test_metric_points_take_json_types_and_iso_times(client, api, bad: dict[str, Any]) -> None:
    run = api.run(api.experiment()["id"])
    api.error(api.metrics(run["id"], [{"key": "loss", "value": 0.5, "step": 1, **bad}]), 422, "validation_error")
    assert api.get(f"/api/runs/{run['id']}/metrics")["series"] == {}


def test_integers_are_numbers_and_iso_times_with_offsets_are_times(client, api) -> None:
    run = api.run(api.experiment()["id"])
    points = [{"key": "loss", "value": 1, "step": 2, "ts": "2024-05-01T12:00:00+02:00"}]
    assert api.metrics(run["id"], points).json() == {"ingested": 1}
    assert api.get(f"/api/runs/{run['id']}/metrics")["series"]["loss"] == [
        {"step": 2, "value": 1.0, "ts": "2024-05-01T10:00:00Z"}
    ]


def test_integral_numbers_are_integers(client, api) -> None:
    # JSON Schema counts 3.0 as an integer, so the API takes it where the schema says integer.
    run = api.run(api.experiment()["id"])
    points = [{"key": "loss", "value": 0.5, "step": 1}, {"key": "loss", "value": 0.25, "step": 3.0}]
    assert api.metrics(run["id"], points).json() == {"ingested": 2}
    assert [p["step"] for p in api.get(f"/api/runs/{run['id']}/metrics")["series"]["loss"]] == [1, 3]
    assert api.artifact(size=10.0)["size"] == 10


@pytest.mark.parametrize("when", ["0.5", "1700000000", "-1", "nan"])
def test_a_time_filter_that_is_a_number_is_422(client, api, when: str) -> None:
    response = client.get("/api/experiments", params={"created_before": when})
    error = api.error(response, 422, "validation_error")
    assert error["details"]["errors"][0]["loc"] == ["query", "created_before"]


def test_query_parameters_stay_text_that_is_read_as_numbers_and_booleans(client, api) -> None:
    api.experiment("kept")
    page = api.get("/api/experiments", page="1", page_size="10", include_archived="true")
    assert [item["name"] for item in page["items"]] == ["kept"]
    assert api.get("/api/experiments", created_before="2999-01-01T00:00:00Z")["total"] == 1


@pytest.mark.parametrize(
    ("ts", "stored"),
    [
        ("0001-01-02T00:00:00+23:59", "0001-01-01T00:01:00Z"),  # converts without overflow, a day inside the range
        ("9999-12-30T23:59:59-23:59", "9999-12-31T23:58:59Z"),
        ("0001-01-01T00:00:00Z", None),
        ("9999-12-31T00:00:00Z", None),
        ("0001-01-01T23:00:00-05:00", None),  # dated as written, whatever it is in UTC
    ],
)
def test_times_are_dated_a_day_inside_pythons_range_as_written(client, api, app, ts: str, stored: str | None) -> None:
    run = api.run(api.experiment()["id"])
    response = api.metrics(run["id"], [{"key": "loss", "value": 0.5, "step": 1, "ts": ts}])
    if stored is None:
        assert api.error(response, 422, "validation_error")["details"]["errors"][0]["type"] == "datetime_out_of_range"
    else:
        assert response.status_code == 200, response.text
        assert api.get(f"/api/runs/{run['id']}/metrics")["series"]["loss"][0]["ts"] == stored
    # The schema says the same, so a client (or schemathesis) can tell before sending.
    pattern = app.openapi()["paths"]["/api/runs/{run_id}/metrics"]["post"]["requestBody"]["content"]["application/json"]
    ts_schema = pattern["schema"]["properties"]["points"]["items"]["properties"]["ts"]["anyOf"][0]
    assert (re.match(ts_schema["pattern"], ts) is not None) is (stored is not None)


NAMES = [
    "x", "  x  ", " ", "", "\t\n", "\x1c", "\x1cx\x1c", "\u3000x\u3000", "\ufeffx", "\x85", "a\nb",
    "x" * 200, " " * 5 + "x" * 200 + " " * 5, "x" * 201, "x" + " " * 198 + "x", "x" + " " * 199 + "x",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_the_name_pattern_states_exactly_what_stripping_takes(client, api, app, name: str) -> None:
    schema = app.openapi()["components"]["schemas"]["ExperimentCreate"]["properties"]["name"]
    documented = re.fullmatch(schema["pattern"], name) is not None
    response = client.post("/api/experiments", json={"name": name})
    assert (response.status_code == 201) is documented, response.text


@pytest.mark.parametrize("bad", ["abc\n", "abc\n\n", "-abc", "a" * 129, "a b"])
def test_a_body_id_matches_its_pattern_whole(client, api, bad: str) -> None:
    # Python's "$" also matches before a trailing newline; the schema's (ECMA) and the store's ids do not.
    response = client.post("/api/artifacts", json={"id": bad, "type": "x", "uri": "file:///x"})
    assert api.error(response, 422, "validation_error")["details"]["errors"][0]["loc"] == ["body", "id"]
