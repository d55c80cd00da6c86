"""Experiments over the JSON API: create, list, detail, update, archive, and the tracker's status and results."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tunelab

CHECKOUT = Path(tunelab.__file__).resolve().parent


def parse_ts(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=CHECKOUT, capture_output=True, text=True, check=True).stdout.strip()


# --- create -------------------------------------------------------------------------------------------------


def test_create_returns_201_draft_and_captures_provenance_of_the_checkout(client) -> None:
    before = datetime.now(UTC)
    response = client.post("/api/experiments", json={"name": "baseline"})
    after = datetime.now(UTC)

    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"exp-[0-9a-f]{16}", body["id"])
    assert body["name"] == "baseline"
    assert body["status"] == "draft"
    assert body["archived"] is False
    assert body["run_count"] == 0
    assert body["best_metrics"] == {}
    assert body["inputs"] == {} and body["outputs"] == {} and body["config"] == {}
    assert body["execution"] == {"started_at": None, "completed_at": None, "duration_ms": None, "error": None}
    prov = body["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"])
    assert prov["git_commit"] == git("rev-parse", "HEAD")
    assert prov["git_dirty"] is bool(git("status", "--porcelain", "--untracked-files=no"))
    assert prov["engine_version"] == tunelab.__version__
    created = parse_ts(prov["created_at"])
    assert before - timedelta(seconds=1) <= created <= after + timedelta(seconds=1)
    assert body["created_at"] == prov["created_at"]


def test_create_keeps_the_callers_provenance(client) -> None:
    given = {
        "git_commit": "abc123",
        "git_dirty": False,
        "engine_version": "9.9.9",
        "created_at": "2025-01-15T10:00:00+02:00",
    }
    body = client.post("/api/experiments", json={"name": "from-engine", "provenance": given}).json()

    assert body["provenance"] == {**given, "created_at": "2025-01-15T08:00:00Z"}
    assert body["created_at"] == "2025-01-15T08:00:00Z"


def test_create_fills_only_the_provenance_fields_not_given(client) -> None:
    body = client.post("/api/experiments", json={"name": "partial", "provenance": {"git_dirty": True}}).json()

    assert body["provenance"]["git_dirty"] is True
    assert body["provenance"]["git_commit"] == git("rev-parse", "HEAD")
    assert body["provenance"]["engine_version"] == tunelab.__version__


def test_create_stores_every_field_and_reads_back_the_same(client, api) -> None:
    dataset = api.artifact("dataset_export")
    base = api.artifact("base_model")
    body = {
        "id": "exp-123",
        "name": "  lora r16  ",
        "description": "first try",
        "dataset_id": "ds-1",
        "config": {"learning_rate": 1e-4, "lora": {"r": 16}},
        "inputs": {"datasets": [dataset["id"]], "base_models": [base["id"]]},
    }
    created = client.post("/api/experiments", json=body)

    assert created.status_code == 201
    exp = created.json()
    assert exp["id"] == "exp-123"
    assert exp["name"] == "lora r16"
    assert exp["description"] == "first try"
    assert exp["dataset_id"] == "ds-1"
    assert exp["config"] == {"learning_rate": 1e-4, "lora": {"r": 16}}
    assert exp["inputs"] == {"datasets": [dataset["id"]], "base_models": [base["id"]]}
    fetched = api.get("/api/experiments/exp-123")
    assert fetched["runs"] == []
    assert {k: v for k, v in fetched.items() if k != "runs"} == exp


def test_name_is_unique_among_all_experiments(client, api) -> None:
    first = api.experiment("same")
    api.error(client.post("/api/experiments", json={"name": "same"}), 409, "experiment_name_taken")
    error = api.error(client.post("/api/experiments", json={"name": " same "}), 409, "experiment_name_taken")
    assert error["details"] == {"name": "same", "experiment_id": first["id"]}

    client.post(f"/api/experiments/{first['id']}/archive")
    api.error(client.post("/api/experiments", json={"name": "same"}), 409, "experiment_name_taken")
    assert api.get("/api/experiments", include_archived=True)["total"] == 1


def test_caller_chosen_id_that_exists_is_a_conflict(client, api) -> None:
    api.experiment("one", id="exp-x")
    api.error(client.post("/api/experiments", json={"name": "two", "id": "exp-x"}), 409, "experiment_exists")


@pytest.mark.parametrize("length", [1, 200])
def test_name_of_1_to_200_characters_is_accepted(client, length: int) -> None:
    response = client.post("/api/experiments", json={"name": "n" * length})
    assert response.status_code == 201
    assert response.json()["name"] == "n" * length


@pytest.mark.parametrize("name", ["", "   ", "n" * 201])
def test_empty_blank_or_too_long_name_is_422(client, api, name: str) -> None:
    error = api.error(client.post("/api/experiments", json={"name": name}), 422, "validation_error")
    assert error["details"]["errors"][0]["loc"] == ["body", "name"]
    assert api.get("/api/experiments")["total"] == 0


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("  x  ", "x"), ("\tlofi piano\n", "lofi piano"), (" " + "n" * 200 + "  ", "n" * 200), ("a  b", "a  b")],
)
def test_names_are_stripped_before_the_length_check_on_create_and_rename(client, api, sent: str, stored: str) -> None:
    created = client.post("/api/experiments", json={"name": sent})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == stored

    other = api.experiment("other")
    renamed = client.patch(f"/api/experiments/{other['id']}", json={"name": f"\t{sent} "})
    assert renamed.status_code == 409, renamed.text  # the stripped name is the one checked for uniqueness
    renamed = client.patch(f"/api/experiments/{created.json()['id']}", json={"name": f"\t{sent} "})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == stored


@pytest.mark.parametrize("name", ["", " ", " \t\n ", " " + "n" * 201 + " "])
def test_names_blank_or_too_long_once_stripped_are_422_on_create_and_rename(client, api, name: str) -> None:
    api.error(client.post("/api/experiments", json={"name": name}), 422, "validation_error")
    exp = api.experiment("kept")
    api.error(client.patch(f"/api/experiments/{exp['id']}", json={"name": name}), 422, "validation_error")
    assert [item["name"] for item in api.get("/api/experiments")["items"]] == ["kept"]


def test_missing_name_and_unknown_fields_are_422(client, api) -> None:
    api.error(client.post("/api/experiments", json={}), 422, "validation_error")
    api.error(client.post("/api/experiments", json={"name": "x", "colour": "red"}), 422, "validation_error")


def test_unknown_input_artifacts_are_422_naming_them_and_nothing_is_created(client, api) -> None:
    known = api.artifact()
    body = {"name": "needs inputs", "inputs": {"datasets": [known["id"], "ghost-1"], "base_models": ["ghost-2"]}}
    error = api.error(client.post("/api/experiments", json=body), 422, "unknown_artifacts")

    assert error["details"] == {"missing": ["ghost-1", "ghost-2"]}
    assert "ghost-1" in error["message"] and "ghost-2" in error["message"]
    assert api.get("/api/experiments")["total"] == 0
    assert client.post("/api/experiments", json={"name": "needs inputs"}).status_code == 201


# --- list ---------------------------------------------------------------------------------------------------


def _at(day: int) -> dict[str, str]:
    return {"created_at": f"2026-03-{day:02d}T12:00:00Z"}


def test_list_carries_run_count_best_metrics_status_and_dates_newest_first(client, api) -> None:
    older = api.experiment("older", provenance=_at(1))
    newer = api.experiment("newer", provenance=_at(2))
    run = api.run(newer["id"])
    api.run(newer["id"])
    api.metrics(run["id"], [{"key": "loss", "value": 0.7, "step": 1}, {"key": "loss", "value": 0.4, "step": 2}])

    page = api.get("/api/experiments")

    assert page["total"] == 2 and page["page"] == 1 and page["page_size"] == 50
    assert [item["id"] for item in page["items"]] == [newer["id"], older["id"]]
    first = page["items"][0]
    assert first["name"] == "newer"
    assert first["status"] == "running"
    assert first["run_count"] == 2
    assert first["best_metrics"] == {"loss": 0.4}
    assert first["created_at"] == "2026-03-02T12:00:00Z"
    assert parse_ts(first["updated_at"]) > parse_ts(first["created_at"])
    assert {"dataset_id", "archived"} <= set(first)
    assert page["items"][1]["run_count"] == 0


def test_list_paginates(client, api) -> None:
    ids = [api.experiment(f"e{day}", provenance=_at(day))["id"] for day in range(1, 6)]
    newest_first = ids[::-1]

    pages = [api.get("/api/experiments", page=p, page_size=2) for p in (1, 2, 3, 4)]

    assert [[i["id"] for i in page["items"]] for page in pages] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:5],
        [],
    ]
    assert {(page["total"], page["page_size"]) for page in pages} == {(5, 2)}
    assert [page["page"] for page in pages] == [1, 2, 3, 4]
    api.error(client.get("/api/experiments", params={"page": 0}), 422, "validation_error")
    api.error(client.get("/api/experiments", params={"page_size": 501}), 422, "validation_error")


def _names(page: dict) -> list[str]:
    return sorted(item["name"] for item in page["items"])


def test_list_filters_by_status_and_accepts_pending_as_draft(client, api) -> None:
    api.experiment("idle")
    busy = api.experiment("busy")
    client.post(f"/api/experiments/{busy['id']}/status", json={"status": "running"})

    assert _names(api.get("/api/experiments", status="running")) == ["busy"]
    assert _names(api.get("/api/experiments", status="draft")) == ["idle"]
    assert _names(api.get("/api/experiments", status="pending")) == ["idle"]
    assert api.get("/api/experiments", status="completed")["total"] == 0
    api.error(client.get("/api/experiments", params={"status": "bogus"}), 422, "invalid_status")


def test_list_filters_by_git_commit(client, api) -> None:
    api.experiment("a", provenance={"git_commit": "aaa"})
    api.experiment("b", provenance={"git_commit": "bbb"})
    api.experiment("here")

    assert _names(api.get("/api/experiments", git_commit="aaa")) == ["a"]
    assert _names(api.get("/api/experiments", git_commit=git("rev-parse", "HEAD"))) == ["here"]
    assert api.get("/api/experiments", git_commit="ccc")["total"] == 0


def test_list_filters_by_created_range(client, api) -> None:
    for day in (1, 5, 10):
        api.experiment(f"day{day}", provenance=_at(day))

    after = api.get("/api/experiments", created_after="2026-03-05T12:00:00Z")
    before = api.get("/api/experiments", created_before="2026-03-05T11:59:59Z")
    between = api.get("/api/experiments", created_after="2026-03-02T00:00:00Z", created_before="2026-03-09T00:00:00Z")
    # An offset is honoured: 14:00+02:00 is 12:00Z, so day 5 is included.
    offset = api.get("/api/experiments", created_after="2026-03-05T14:00:00+02:00")

    assert _names(after) == ["day10", "day5"]
    assert _names(before) == ["day1"]
    assert _names(between) == ["day5"]
    assert _names(offset) == ["day10", "day5"]
    api.error(client.get("/api/experiments", params={"created_after": "yesterday"}), 422, "validation_error")


def test_list_filters_by_input_artifact_type(client, api) -> None:
    alert = api.artifact("alerts")
    ohlcv = api.artifact("ohlcv")
    api.experiment("both", inputs={"alerts": [alert["id"]], "ohlcv": [ohlcv["id"]]})
    api.experiment("prices", inputs={"ohlcv": [ohlcv["id"]]})
    api.experiment("none")

    assert _names(api.get("/api/experiments", artifact_type="alerts")) == ["both"]
    assert _names(api.get("/api/experiments", artifact_type="ohlcv")) == ["both", "prices"]
    assert api.get("/api/experiments", artifact_type="strategies")["total"] == 0


def test_artifact_type_filter_matches_the_registered_type_not_the_inputs_key(client, api) -> None:
    dataset = api.artifact("dataset")
    api.experiment("keyed as data", inputs={"data": [dataset["id"]]})
    api.experiment("keyed as dataset", inputs={"dataset": [api.artifact("audio")["id"]]})

    assert _names(api.get("/api/experiments", artifact_type="dataset")) == ["keyed as data"]
    assert _names(api.get("/api/experiments", artifact_type="audio")) == ["keyed as dataset"]
    assert api.get("/api/experiments", artifact_type="data")["total"] == 0


def test_list_free_text_search_on_name(client, api) -> None:
    for name in ("Piano LoRA", "drums lora", "piano 50%", "strings"):
        api.experiment(name)

    assert _names(api.get("/api/experiments", q="lora")) == ["Piano LoRA", "drums lora"]
    assert _names(api.get("/api/experiments", q="PIANO")) == ["Piano LoRA", "piano 50%"]
    assert _names(api.get("/api/experiments", q="50%")) == ["piano 50%"]
    # `%` and `_` are literal characters, not wildcards.
    assert api.get("/api/experiments", q="%")["total"] == 1
    assert api.get("/api/experiments", q="_")["total"] == 0


def test_list_sorts_by_name_creation_update_or_status(client, api) -> None:
    made = {name: api.experiment(name, provenance=_at(day)) for day, name in enumerate(["b", "C", "a"], start=1)}
    client.post(f"/api/experiments/{made['b']['id']}/status", json={"status": "running"})  # b updated last

    def order(sort: str) -> list[str]:
        return [item["name"] for item in api.get("/api/experiments", sort=sort)["items"]]

    assert order("-created_at") == ["a", "C", "b"] == [i["name"] for i in api.get("/api/experiments")["items"]]
    assert order("created_at") == ["b", "C", "a"]
    assert order("name") == ["a", "b", "C"]  # letter case aside
    assert order("-name") == ["C", "b", "a"]
    assert order("-updated_at")[0] == "b" and order("updated_at")[-1] == "b"
    assert order("status") == ["a", "C", "b"]  # draft before running; newest first within a status
    api.error(client.get("/api/experiments", params={"sort": "size"}), 422, "validation_error")


def test_list_filters_by_exact_name(client, api) -> None:
    piano = api.experiment("piano")
    api.experiment("piano 2")
    client.post(f"/api/experiments/{piano['id']}/archive")

    assert api.get("/api/experiments", name="piano")["total"] == 0  # archived: hidden by default
    found = api.get("/api/experiments", name="piano", include_archived="true")["items"]
    assert [e["id"] for e in found] == [piano["id"]]
    assert api.get("/api/experiments", name="Piano", include_archived="true")["total"] == 0


def test_archived_are_hidden_unless_include_archived(client, api) -> None:
    kept = api.experiment("kept")
    gone = api.experiment("gone")
    client.post(f"/api/experiments/{gone['id']}/archive")

    default = api.get("/api/experiments")
    everything = api.get("/api/experiments", include_archived="true")

    assert [i["id"] for i in default["items"]] == [kept["id"]] and default["total"] == 1
    assert everything["total"] == 2
    flags = {i["id"]: (i["archived"], i["status"]) for i in everything["items"]}
    assert flags == {kept["id"]: (False, "draft"), gone["id"]: (True, "archived")}
    assert _names(api.get("/api/experiments", status="archived")) == ["gone"]


# --- detail, update ------------------------------------------------------------------------------------------


def test_detail_has_runs_newest_first_and_aggregated_metrics(client, api) -> None:
    exp = api.experiment("detailed")
    first = api.run(exp["id"], name="first", config={"lr": 1})
    second = api.run(exp["id"], name="second", config={"lr": 2})
    api.metrics(first["id"], [{"key": "loss", "value": 0.9, "step": 1}, {"key": "accuracy", "value": 0.6, "step": 1}])
    api.metrics(second["id"], [{"key": "loss", "value": 0.5, "step": 1}, {"key": "accuracy", "value": 0.4, "step": 1}])

    detail = api.get(f"/api/experiments/{exp['id']}")

    assert [run["name"] for run in detail["runs"]] == ["second", "first"]
    assert detail["runs"][0]["config"] == {"lr": 2}
    assert detail["runs"][1]["metrics_summary"]["loss"]["final"] == 0.9
    assert detail["run_count"] == 2
    assert detail["best_metrics"] == {"loss": 0.5, "accuracy": 0.6}


def test_detail_of_unknown_experiment_is_404(client, api) -> None:
    error = api.error(client.get("/api/experiments/exp-nope"), 404, "experiment_not_found")
    assert error["details"] == {"experiment_id": "exp-nope"}


def test_patch_updates_name_description_dataset_and_config(client, api) -> None:
    exp = api.experiment("before", description="old", config={"a": 1})
    changes = {"name": "after", "description": "new", "dataset_id": "ds-9", "config": {"b": 2}}

    response = client.patch(f"/api/experiments/{exp['id']}", json=changes)

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in changes} == changes
    assert parse_ts(body["updated_at"]) > parse_ts(exp["updated_at"])
    assert body["created_at"] == exp["created_at"]
    assert api.get(f"/api/experiments/{exp['id']}")["name"] == "after"
    assert api.get("/api/experiments", q="before")["total"] == 0


def test_patch_changes_only_the_fields_sent(client, api) -> None:
    exp = api.experiment("partial", description="keep me", dataset_id="ds-1", config={"a": 1})
    body = client.patch(f"/api/experiments/{exp['id']}", json={"description": None}).json()
    assert (body["name"], body["description"], body["dataset_id"], body["config"]) == (
        "partial",
        None,
        "ds-1",
        {"a": 1},
    )


def test_patch_rename_to_a_taken_name_is_409_and_to_its_own_name_is_fine(client, api) -> None:
    api.experiment("taken")
    exp = api.experiment("mine")

    api.error(client.patch(f"/api/experiments/{exp['id']}", json={"name": "taken"}), 409, "experiment_name_taken")
    assert client.patch(f"/api/experiments/{exp['id']}", json={"name": "mine"}).status_code == 200
    assert api.get(f"/api/experiments/{exp['id']}")["name"] == "mine"


@pytest.mark.parametrize(
    "body", [{"name": ""}, {"name": "  "}, {"name": None}, {"name": "x" * 201}, {"config": None}, {"status": "x"}]
)
def test_patch_rejects_invalid_fields_and_changes_nothing(client, api, body: dict) -> None:
    exp = api.experiment("stable", config={"a": 1})
    api.error(client.patch(f"/api/experiments/{exp['id']}", json=body), 422, "validation_error")
    after = api.get(f"/api/experiments/{exp['id']}")
    assert (after["name"], after["config"], after["status"]) == ("stable", {"a": 1}, "draft")


def test_patch_unknown_experiment_is_404(client, api) -> None:
    api.error(client.patch("/api/experiments/exp-nope", json={"name": "x"}), 404, "experiment_not_found")


# --- archive / unarchive ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["DELETE", "POST archive"])
def test_delete_and_archive_return_200_with_status_archived(client, api, how: str) -> None:
    exp = api.experiment("to archive")
    if how == "DELETE":
        response = client.delete(f"/api/experiments/{exp['id']}")
    else:
        response = client.post(f"/api/experiments/{exp['id']}/archive")

    assert response.status_code == 200
    assert response.json()["status"] == "archived" and response.json()["archived"] is True
    # Nothing is hard-deleted: the experiment is still there.
    assert api.get(f"/api/experiments/{exp['id']}")["status"] == "archived"
    # Archiving again is harmless.
    assert client.post(f"/api/experiments/{exp['id']}/archive").json()["status"] == "archived"


def test_unarchive_sets_draft(client, api) -> None:
    exp = api.experiment("comeback")
    client.post(f"/api/experiments/{exp['id']}/status", json={"status": "running"})
    client.delete(f"/api/experiments/{exp['id']}")

    response = client.post(f"/api/experiments/{exp['id']}/unarchive")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["archived"]) == ("draft", False)
    assert [i["id"] for i in api.get("/api/experiments")["items"]] == [exp["id"]]


def test_unarchiving_an_experiment_that_is_not_archived_changes_nothing(client, api) -> None:
    exp = api.experiment("active")
    client.post(f"/api/experiments/{exp['id']}/status", json={"status": "running"})
    before = api.get(f"/api/experiments/{exp['id']}")

    response = client.post(f"/api/experiments/{exp['id']}/unarchive")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["updated_at"]) == ("running", before["updated_at"])
    # And unarchiving twice is as harmless as archiving twice.
    client.post(f"/api/experiments/{exp['id']}/archive")
    first, second = (client.post(f"/api/experiments/{exp['id']}/unarchive").json() for _ in range(2))
    assert first["status"] == second["status"] == "draft" and first["updated_at"] == second["updated_at"]


@pytest.mark.parametrize("path", ["archive", "unarchive"])
def test_archive_endpoints_on_unknown_experiment_are_404(client, api, path: str) -> None:
    api.error(client.post(f"/api/experiments/nope/{path}"), 404, "experiment_not_found")
    api.error(client.delete("/api/experiments/nope"), 404, "experiment_not_found")


def test_archived_experiments_start_no_runs(client, api) -> None:
    exp = api.experiment("frozen")
    client.post(f"/api/experiments/{exp['id']}/archive")

    response = client.post(f"/api/experiments/{exp['id']}/runs", json={"external": True})

    api.error(response, 409, "experiment_archived")
    assert api.get(f"/api/experiments/{exp['id']}/runs")["items"] == []
    assert api.get(f"/api/experiments/{exp['id']}")["status"] == "archived"


# --- tracker: update_status -----------------------------------------------------------------------------------


def _status(client, experiment_id: str, status: str, error: str | None = None):
    return client.post(f"/api/experiments/{experiment_id}/status", json={"status": status, "error": error})


def test_status_draft_running_completed_records_execution(client, api) -> None:
    exp = api.experiment("lifecycle")

    running = _status(client, exp["id"], "running")
    assert running.status_code == 200
    started = running.json()["execution"]
    assert running.json()["status"] == "running"
    assert started["started_at"] is not None and started["completed_at"] is None and started["duration_ms"] is None

    done = _status(client, exp["id"], "completed").json()
    execution = done["execution"]
    assert done["status"] == "completed"
    assert execution["started_at"] == started["started_at"]
    begin, end = parse_ts(execution["started_at"]), parse_ts(execution["completed_at"])
    assert end >= begin
    assert execution["duration_ms"] == int((end - begin).total_seconds() * 1000)
    assert execution["error"] is None
    assert api.get(f"/api/experiments/{exp['id']}")["execution"] == execution


def test_status_failed_keeps_the_error_and_running_again_clears_it(client, api) -> None:
    exp = api.experiment("flaky")
    _status(client, exp["id"], "running")

    failed = _status(client, exp["id"], "failed", "CUDA out of memory").json()
    assert failed["status"] == "failed"
    assert failed["execution"]["error"] == "CUDA out of memory"
    assert failed["execution"]["completed_at"] is not None

    again = _status(client, exp["id"], "running").json()
    assert again["status"] == "running"
    assert again["execution"]["error"] is None and again["execution"]["completed_at"] is None


def test_status_draft_to_completed_is_an_invalid_transition(client, api) -> None:
    exp = api.experiment("too fast")
    error = api.error(_status(client, exp["id"], "completed"), 409, "invalid_status_transition")
    assert error["details"]["from"] == "draft" and error["details"]["to"] == "completed"
    assert "running" in error["details"]["allowed"]
    assert api.get(f"/api/experiments/{exp['id']}")["status"] == "draft"


@pytest.mark.parametrize(
    ("path", "target"),
    [(["running", "completed"], "completed"), (["running"], "running"), (["running", "cancelled"], "cancelled")],
)
def test_status_repeating_or_ending_twice_is_409(client, api, path: list[str], target: str) -> None:
    exp = api.experiment()
    for status in path:
        assert _status(client, exp["id"], status).status_code == 200
    api.error(_status(client, exp["id"], target), 409, "invalid_status_transition")


def test_status_pending_is_read_as_draft(client, api) -> None:
    exp = api.experiment("p")
    error = api.error(_status(client, exp["id"], "pending"), 409, "invalid_status_transition")
    assert error["details"]["to"] == "draft"


def test_status_of_an_archived_experiment_cannot_change(client, api) -> None:
    exp = api.experiment("archived one")
    client.post(f"/api/experiments/{exp['id']}/archive")
    api.error(_status(client, exp["id"], "running"), 409, "invalid_status_transition")


def test_unknown_status_is_422_invalid_status(client, api) -> None:
    exp = api.experiment("s")
    error = api.error(_status(client, exp["id"], "paused"), 422, "invalid_status")
    assert "pending" in error["details"]["allowed"] and "running" in error["details"]["allowed"]
    api.error(client.post(f"/api/experiments/{exp['id']}/status", json={}), 422, "validation_error")
    api.error(_status(client, "exp-nope", "running"), 404, "experiment_not_found")


# --- tracker: store_results ---------------------------------------------------------------------------------


def test_results_are_merged_into_outputs(client, api) -> None:
    exp = api.experiment("with outputs")
    trades, metrics, newer = api.artifact("trades"), api.artifact("metrics"), api.artifact("trades")

    first = client.post(f"/api/experiments/{exp['id']}/results", json={"outputs": {"trades": trades["id"]}})
    second = client.post(f"/api/experiments/{exp['id']}/results", json={"outputs": {"metrics": metrics["id"]}})
    third = client.post(f"/api/experiments/{exp['id']}/results", json={"outputs": {"trades": newer["id"]}})

    assert first.status_code == 200 and first.json()["outputs"] == {"trades": trades["id"]}
    assert second.json()["outputs"] == {"trades": trades["id"], "metrics": metrics["id"]}
    assert third.json()["outputs"] == {"trades": newer["id"], "metrics": metrics["id"]}
    assert api.get(f"/api/experiments/{exp['id']}")["outputs"] == third.json()["outputs"]


def test_results_with_unknown_artifact_ids_are_422_and_change_nothing(client, api) -> None:
    exp = api.experiment("strict outputs")
    kept = api.artifact("metrics")
    client.post(f"/api/experiments/{exp['id']}/results", json={"outputs": {"metrics": kept["id"]}})

    outputs = {"metrics": "ghost-m", "curves": "ghost-c", "trades": api.artifact("trades")["id"]}
    error = api.error(client.post(f"/api/experiments/{exp['id']}/results", json={"outputs": outputs}), 422,
                      "unknown_artifacts")  # fmt: skip

    assert sorted(error["details"]["missing"]) == ["ghost-c", "ghost-m"]
    assert api.get(f"/api/experiments/{exp['id']}")["outputs"] == {"metrics": kept["id"]}


def test_results_need_an_outputs_object_and_a_known_experiment(client, api) -> None:
    exp = api.experiment("r")
    api.error(client.post(f"/api/experiments/{exp['id']}/results", json={}), 422, "validation_error")
    api.error(client.post(f"/api/experiments/{exp['id']}/results", json={"outputs": ["a"]}), 422, "validation_error")
    artifact = api.artifact()
    response = client.post("/api/experiments/exp-nope/results", json={"outputs": {"x": artifact["id"]}})
    api.error(response, 404, "experiment_not_found")


# --- tracker: find_by_input_artifacts --------------------------------------------------------------------------


def test_by_input_artifacts_finds_experiments_using_any_of_them(client, api) -> None:
    a, b, c = api.artifact("alerts"), api.artifact("ohlcv"), api.artifact("alerts")
    uses_a = api.experiment("uses a", inputs={"alerts": [a["id"]]}, provenance=_at(1))
    uses_ab = api.experiment("uses a and b", inputs={"alerts": [a["id"]], "ohlcv": [b["id"]]}, provenance=_at(2))
    uses_c = api.experiment("uses c", inputs={"alerts": [c["id"]]})
    produces_b = api.experiment("produces b")
    client.post(f"/api/experiments/{produces_b['id']}/results", json={"outputs": {"ohlcv": b["id"]}})

    def find(*ids: str) -> list[str]:
        response = client.get("/api/experiments/by-input-artifacts", params={"artifact_id": list(ids)})
        assert response.status_code == 200
        page = response.json()
        assert page["total"] == len(page["items"]) and (page["page"], page["page_size"]) == (1, 50)
        return [e["id"] for e in page["items"]]

    assert find(a["id"]) == [uses_ab["id"], uses_a["id"]]
    assert find(b["id"]) == [uses_ab["id"]]  # an output is not an input
    assert find(b["id"], c["id"]) == [uses_c["id"], uses_ab["id"]]
    assert find("ghost") == []
    second = api.get("/api/experiments/by-input-artifacts", artifact_id=a["id"], page=2, page_size=1)
    assert ([e["id"] for e in second["items"]], second["total"]) == ([uses_a["id"]], 2)
    api.error(client.get("/api/experiments/by-input-artifacts"), 422, "validation_error")


def test_an_experiment_id_that_names_a_route_is_refused(client, api) -> None:
    # GET /api/experiments/by-input-artifacts is the search: an experiment of that id could never be read.
    error = api.error(
        client.post("/api/experiments", json={"name": "x", "id": "by-input-artifacts"}), 422, "validation_error"
    )
    assert error["details"]["errors"][0]["loc"] == ["body", "id"]
    assert api.experiment("y", id="by-input-artifacts-2")["id"] == "by-input-artifacts-2"
    # Nor is the search's path taken for one: PATCH and DELETE there are 405s, not updates of such an experiment.
    response = client.patch("/api/experiments/by-input-artifacts", json={"name": "z"})
    api.error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"
