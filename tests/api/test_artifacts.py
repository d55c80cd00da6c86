"""Artifacts: immutable records with a URI, and the lineage of which experiments used or produced them."""

from __future__ import annotations

import re

import pytest


def test_create_returns_201_and_get_reads_back_the_same(client, api) -> None:
    body = {
        "type": "dataset_export",
        "uri": "file:///data/exports/ds-1/data.jsonl",
        "sha256": api.sha256("lines"),
        "size": 1234,
        "metadata": {"rows": 10, "format": "jsonl"},
    }

    response = client.post("/api/artifacts", json=body)

    assert response.status_code == 201
    artifact = response.json()
    assert re.fullmatch(r"art-[0-9a-f]{16}", artifact["id"])
    assert {k: artifact[k] for k in body} == body
    assert artifact["created_at"].endswith("Z")
    assert api.get(f"/api/artifacts/{artifact['id']}") == artifact


def test_optional_fields_default_to_empty(client, api) -> None:
    artifact = api.artifact("audio", uri="s3://bucket/a.wav")
    assert (artifact["sha256"], artifact["size"], artifact["metadata"]) == (None, None, {})


def test_artifacts_are_immutable_a_taken_id_is_409(client, api) -> None:
    original = api.artifact("base_model", id="musicgen-small", uri="hf://facebook/musicgen-small")

    response = client.post("/api/artifacts", json={"id": "musicgen-small", "type": "adapter", "uri": "file:///other"})

    error = api.error(response, 409, "artifact_exists")
    assert "musicgen-small" in error["message"]
    assert api.get("/api/artifacts/musicgen-small") == original
    for method in ("PUT", "PATCH", "DELETE"):
        api.error(client.request(method, "/api/artifacts/musicgen-small", json={}), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "change",
    [
        {"sha256": "abc"},
        {"sha256": "g" * 64},
        {"sha256": "a" * 63},
        {"sha256": "a" * 65},
        {"size": -1},
        {"type": ""},
        {"type": "Has Spaces"},
        {"uri": ""},
        {"id": "-starts-with-dash"},
        {"colour": "red"},
    ],
)
def test_invalid_artifacts_are_422_and_not_stored(client, api, change: dict) -> None:
    body = {"id": "candidate", "type": "audio", "uri": "file:///a.wav", "sha256": "a" * 64, **change}
    error = api.error(client.post("/api/artifacts", json=body), 422, "validation_error")
    assert error["details"]["errors"][0]["loc"][0] == "body"
    api.error(client.get("/api/artifacts/candidate"), 404, "artifact_not_found")


def test_missing_type_or_uri_is_422(client, api) -> None:
    api.error(client.post("/api/artifacts", json={"uri": "file:///x"}), 422, "validation_error")
    api.error(client.post("/api/artifacts", json={"type": "audio"}), 422, "validation_error")


def test_unknown_artifact_is_404(client, api) -> None:
    api.error(client.get("/api/artifacts/art-nope"), 404, "artifact_not_found")
    api.error(client.get("/api/artifacts/art-nope/lineage"), 404, "artifact_not_found")


def test_lineage_names_experiments_that_used_and_produced_an_artifact(client, api) -> None:
    data = api.artifact("dataset_export")
    model = api.artifact("adapter")
    trainer = api.experiment("trainer", inputs={"datasets": [data["id"]]})
    evaluator = api.experiment("evaluator", inputs={"adapters": [model["id"]], "datasets": [data["id"]]})
    client.post(f"/api/experiments/{trainer['id']}/results", json={"outputs": {"adapter": model["id"]}})

    data_lineage = api.get(f"/api/artifacts/{data['id']}/lineage")
    model_lineage = api.get(f"/api/artifacts/{model['id']}/lineage")

    assert data_lineage["artifact"] == data
    assert data_lineage["produced_by"] == []
    assert sorted(e["experiment_id"] for e in data_lineage["used_by"]) == sorted([trainer["id"], evaluator["id"]])
    assert model_lineage["produced_by"] == [{"experiment_id": trainer["id"]}]
    assert model_lineage["used_by"] == [{"experiment_id": evaluator["id"]}]


def test_lineage_follows_a_replaced_output(client, api) -> None:
    exp = api.experiment("retrained")
    first, second = api.artifact("adapter"), api.artifact("adapter")
    client.post(f"/api/experiments/{exp['id']}/results", json={"outputs": {"adapter": first["id"]}})
    client.post(f"/api/experiments/{exp['id']}/results", json={"outputs": {"adapter": second["id"]}})

    assert api.get(f"/api/artifacts/{first['id']}/lineage")["produced_by"] == []
    assert api.get(f"/api/artifacts/{second['id']}/lineage")["produced_by"] == [{"experiment_id": exp["id"]}]
