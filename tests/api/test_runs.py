"""Runs reported by outside engines: create, end, metrics ingestion and read-back, listing and comparison."""

from __future__ import annotations

import json

import pytest


def point(key: str, value: float, step: int, **extra: object) -> dict[str, object]:
    return {"key": key, "value": value, "step": step, **extra}


# --- create ----------------------------------------------------------------------------------------------------


def test_external_run_is_created_running_and_sets_the_experiment_running(client, api) -> None:
    exp = api.experiment("tracked")

    response = client.post(
        f"/api/experiments/{exp['id']}/runs",
        json={"external": True, "name": "sweep-1", "config": {"lr": 0.001, "training_type": "supervised"}},
    )

    assert response.status_code == 201
    run = response.json()
    assert run["id"].startswith("run-")
    assert run["experiment_id"] == exp["id"]
    assert (run["name"], run["status"], run["external"]) == ("sweep-1", "running", True)
    assert run["config"] == {"lr": 0.001, "training_type": "supervised"}
    assert run["training_type"] == "supervised"
    assert run["started_at"] is not None and run["completed_at"] is None
    assert run["metrics_summary"] == {} and run["final_loss"] is None
    assert api.get(f"/api/runs/{run['id']}") == run
    after = api.get(f"/api/experiments/{exp['id']}")
    assert after["status"] == "running"
    assert after["run_count"] == 1
    assert after["execution"]["started_at"] is not None


def test_runs_get_default_names_and_a_taken_name_is_409(client, api) -> None:
    exp = api.experiment()
    assert api.run(exp["id"])["name"] == "run-1"
    assert api.run(exp["id"])["name"] == "run-2"
    response = client.post(f"/api/experiments/{exp['id']}/runs", json={"external": True, "name": "run-1"})
    api.error(response, 409, "run_name_taken")
    assert api.get(f"/api/experiments/{exp['id']}/runs")["total"] == 2


def test_a_default_name_skips_names_already_taken(client, api) -> None:
    exp = api.experiment()
    api.run(exp["id"], name="run-2")
    api.run(exp["id"], name="run-3")

    names = [api.run(exp["id"])["name"] for _ in range(3)]

    assert names == ["run-4", "run-5", "run-6"]  # run-3 (count + 1) was taken: no 409
    api.run(exp["id"], name="run-1")
    assert api.run(exp["id"])["name"] == "run-7"


def test_a_training_run_without_a_dataset_is_400_and_creates_no_run(client, api) -> None:
    exp = api.experiment("no data")

    error = api.error(client.post(f"/api/experiments/{exp['id']}/runs", json={"name": "r"}), 400, "dataset_required")

    assert error["details"] == {"experiment_id": exp["id"]}
    assert api.get(f"/api/experiments/{exp['id']}/runs")["items"] == []
    after = api.get(f"/api/experiments/{exp['id']}")
    assert (after["run_count"], after["status"], after["execution"]["started_at"]) == (0, "draft", None)
    # The name was not used up either.
    assert api.run(exp["id"], name="r")["name"] == "r"


def test_a_training_run_without_a_base_model_is_409_and_creates_no_run(client, api) -> None:
    exp = api.experiment("with data", dataset_id="ds-1")

    response = client.post(f"/api/experiments/{exp['id']}/runs", json={"name": "r", "config": {"epochs": 1}})

    error = api.error(response, 409, "no_base_model")
    assert "tunelab models add" in error["message"]
    assert api.get(f"/api/experiments/{exp['id']}/runs")["items"] == []
    after = api.get(f"/api/experiments/{exp['id']}")
    assert (after["run_count"], after["status"], after["execution"]["started_at"]) == (0, "draft", None)
    assert api.run(exp["id"], name="r")["name"] == "r"  # an outside engine's run is still accepted


def test_run_on_unknown_experiment_is_404(client, api) -> None:
    api.error(client.post("/api/experiments/exp-nope/runs", json={"external": True}), 404, "experiment_not_found")
    api.error(client.get("/api/experiments/exp-nope/runs"), 404, "experiment_not_found")


def test_run_create_rejects_unknown_fields(client, api) -> None:
    exp = api.experiment()
    response = client.post(f"/api/experiments/{exp['id']}/runs", json={"external": True, "gpu": 2})
    api.error(response, 422, "validation_error")


def test_unknown_run_is_404(client, api) -> None:
    error = api.error(client.get("/api/runs/run-nope"), 404, "run_not_found")
    assert error["details"] == {"run_id": "run-nope"}


# --- ending runs and the experiment's status ---------------------------------------------------------------------


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_ending_a_run_records_status_and_time_and_ending_twice_is_409(client, api, status: str) -> None:
    exp = api.experiment()
    run = api.run(exp["id"])

    ended = api.end_run(run["id"], status, error="boom")

    assert ended["status"] == status
    assert ended["completed_at"] is not None
    assert ended["error"] == ("boom" if status == "failed" else None)
    for again in ("completed", "failed", "cancelled", "running"):
        error = api.error(client.post(f"/api/runs/{run['id']}/status", json={"status": again}), 409,
                          "invalid_status_transition")  # fmt: skip
        assert error["details"] == {"from": status, "to": again}
    assert api.get(f"/api/runs/{run['id']}")["status"] == status


def test_run_status_rejects_pending_unknown_statuses_and_unknown_runs(client, api) -> None:
    run = api.run(api.experiment()["id"])
    api.error(
        client.post(f"/api/runs/{run['id']}/status", json={"status": "pending"}), 409, "invalid_status_transition"
    )
    api.error(
        client.post(f"/api/runs/{run['id']}/status", json={"status": "running"}), 409, "invalid_status_transition"
    )
    api.error(client.post(f"/api/runs/{run['id']}/status", json={"status": "done"}), 422, "validation_error")
    api.error(client.post("/api/runs/run-nope/status", json={"status": "completed"}), 404, "run_not_found")
    assert api.get(f"/api/runs/{run['id']}")["status"] == "running"


def test_cancel_endpoint_cancels_a_running_run(client, api) -> None:
    exp = api.experiment()
    run = api.run(exp["id"])
    response = client.post(f"/api/runs/{run['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    api.error(client.post(f"/api/runs/{run['id']}/cancel"), 409, "invalid_status_transition")
    assert api.get(f"/api/experiments/{exp['id']}")["status"] == "cancelled"


def test_experiment_completes_when_every_run_is_terminal(client, api) -> None:
    exp = api.experiment()
    first, second = api.run(exp["id"]), api.run(exp["id"])

    api.end_run(first["id"], "completed")
    assert api.get(f"/api/experiments/{exp['id']}")["status"] == "running"

    api.end_run(second["id"], "failed", error="diverged")
    done = api.get(f"/api/experiments/{exp['id']}")
    assert done["status"] == "completed"
    assert done["execution"]["error"] is None
    assert done["execution"]["completed_at"] is not None
    assert done["execution"]["duration_ms"] >= 0


def test_experiment_fails_when_all_runs_failed_keeping_the_last_error(client, api) -> None:
    exp = api.experiment()
    older, newer = api.run(exp["id"], name="older"), api.run(exp["id"], name="newer")

    api.end_run(newer["id"], "failed", error="newer: NaN loss")
    assert api.get(f"/api/experiments/{exp['id']}")["status"] == "running"
    api.end_run(older["id"], "failed", error="older: out of memory")

    failed = api.get(f"/api/experiments/{exp['id']}")
    assert failed["status"] == "failed"
    # The last error is that of the run that failed last, not of the newest run.
    assert failed["execution"]["error"] == "older: out of memory"


def test_a_new_run_sets_an_ended_experiment_running_again(client, api) -> None:
    exp = api.experiment()
    api.end_run(api.run(exp["id"])["id"], "completed")
    assert api.get(f"/api/experiments/{exp['id']}")["status"] == "completed"

    api.run(exp["id"])

    again = api.get(f"/api/experiments/{exp['id']}")
    assert again["status"] == "running"
    assert again["execution"]["completed_at"] is None


# --- metrics ---------------------------------------------------------------------------------------------------


def test_metrics_ingest_and_read_back_series_and_summary(client, api) -> None:
    run = api.run(api.experiment()["id"])
    points = [
        point("loss", 0.9, 1),
        point("loss", 0.5, 2),
        point("loss", 0.6, 3),
        point("accuracy", 0.7, 1, ts="2026-01-01T00:00:00Z"),
        point("accuracy", 0.6, 2, ts="2026-01-01T02:00:01+02:00"),
    ]

    response = api.metrics(run["id"], points)

    assert response.status_code == 200 and response.json() == {"ingested": 5}
    got = api.get(f"/api/runs/{run['id']}/metrics")
    assert got["run_id"] == run["id"] and got["adapter_id"] is None
    assert [(p["step"], p["value"]) for p in got["series"]["loss"]] == [(1, 0.9), (2, 0.5), (3, 0.6)]
    assert [p["ts"] for p in got["series"]["accuracy"]] == ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"]
    summary = got["summary"]
    assert summary["loss"] == {"final": 0.6, "best": 0.5, "goal": "min", "last_step": 3, "count": 3}
    assert summary["accuracy"] == {"final": 0.6, "best": 0.7, "goal": "max", "last_step": 2, "count": 2}
    assert set(summary) == {"loss", "accuracy"}  # metric keys only
    assert got["final_loss"] == 0.6
    only_loss = api.get(f"/api/runs/{run['id']}/metrics", key="loss")
    assert list(only_loss["series"]) == ["loss"]


def test_metrics_key_parameters_select_series(client, api) -> None:
    run = api.run(api.experiment()["id"])
    api.metrics(run["id"], [point("loss", 0.5, 1), point("accuracy", 0.7, 1), point("lr", 1e-4, 1)])
    path = f"/api/runs/{run['id']}/metrics"

    both = client.get(path, params=[("key", "loss"), ("key", "accuracy")]).json()
    unknown = api.get(path, key="no-such-key")
    everything = api.get(path)

    assert sorted(both["series"]) == ["accuracy", "loss"]
    assert both["series"]["loss"] == everything["series"]["loss"]
    assert unknown["series"] == {}
    assert sorted(everything["series"]) == ["accuracy", "loss", "lr"]
    # The summary always covers every key, and final_loss stays the run's.
    assert both["summary"] == unknown["summary"] == everything["summary"] and unknown["final_loss"] == 0.5
    api.error(client.get("/api/runs/run-nope/metrics", params={"key": "loss"}), 404, "run_not_found")


def test_a_metric_named_final_loss_keeps_its_summary_beside_the_top_level_final_loss(client, api) -> None:
    run = api.run(api.experiment()["id"])
    api.metrics(run["id"], [point("final_loss", 0.4, 1), point("final_loss", 0.3, 2), point("loss", 0.9, 2)])

    got = api.get(f"/api/runs/{run['id']}/metrics")

    assert got["summary"]["final_loss"] == {"final": 0.3, "best": 0.3, "goal": "min", "last_step": 2, "count": 2}
    assert got["summary"]["loss"]["final"] == 0.9
    assert got["final_loss"] == 0.3  # a metric named final_loss is the run's final loss


def test_metrics_of_a_run_without_points_have_no_final_loss(client, api) -> None:
    run = api.run(api.experiment()["id"])
    got = api.get(f"/api/runs/{run['id']}/metrics")
    assert (got["series"], got["summary"], got["final_loss"]) == ({}, {}, None)


def test_metrics_accumulate_across_batches(client, api) -> None:
    run = api.run(api.experiment()["id"])
    api.metrics(run["id"], [point("loss", 1.0, 1), point("loss", 0.8, 2)])
    api.metrics(run["id"], [point("loss", 0.4, 3), point("loss", 0.7, 4)])

    got = api.get(f"/api/runs/{run['id']}/metrics")

    assert [p["value"] for p in got["series"]["loss"]] == [1.0, 0.8, 0.4, 0.7]
    assert got["summary"]["loss"] == {"final": 0.7, "best": 0.4, "goal": "min", "last_step": 4, "count": 4}
    assert api.get(f"/api/runs/{run['id']}")["final_loss"] == 0.7


def test_a_batch_of_10000_points_is_accepted(client, api) -> None:
    run = api.run(api.experiment()["id"])
    response = api.metrics(run["id"], [point("loss", 1 / (i + 1), i) for i in range(10_000)])
    assert response.json() == {"ingested": 10_000}
    summary = api.get(f"/api/runs/{run['id']}/metrics")["summary"]["loss"]
    assert summary["count"] == 10_000 and summary["last_step"] == 9_999 and summary["best"] == 1 / 10_000


def test_a_batch_over_10000_points_is_rejected_and_nothing_stored(client, api) -> None:
    run = api.run(api.experiment()["id"])
    api.metrics(run["id"], [point("loss", 0.5, 0)])
    before = api.get(f"/api/runs/{run['id']}/metrics")

    error = api.error(api.metrics(run["id"], [point("loss", 0.1, i) for i in range(10_001)]), 422, "batch_too_large")

    assert error["details"] == {"max": 10_000, "received": 10_001}
    assert api.get(f"/api/runs/{run['id']}/metrics") == before


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_are_rejected_and_nothing_of_the_batch_is_stored(client, api, bad: str) -> None:
    exp = api.experiment()
    run = api.run(exp["id"])
    api.metrics(run["id"], [point("loss", 0.5, 0)])
    before = api.get(f"/api/runs/{run['id']}/metrics")
    # json.dumps writes NaN/Infinity as bare tokens, as a careless Python client would send them.
    raw = json.dumps({"points": [point("loss", 0.1, 1), point("loss", float(bad), 2)]})
    assert bad in raw

    response = client.post(f"/api/runs/{run['id']}/metrics", content=raw, headers={"content-type": "application/json"})

    error = api.error(response, 422, "invalid_metric_value")
    assert error["details"] == {"indexes": [1]}
    assert api.get(f"/api/runs/{run['id']}/metrics") == before
    assert api.get(f"/api/experiments/{exp['id']}")["best_metrics"] == {"loss": 0.5}


@pytest.mark.parametrize("points", [[], [point("loss", 0.1, 1)]])
def test_metrics_for_an_unknown_run_are_404(client, api, points: list) -> None:
    api.error(api.metrics("run-nope", points), 404, "run_not_found")
    api.error(client.get("/api/runs/run-nope/metrics"), 404, "run_not_found")


@pytest.mark.parametrize(
    "bad_point",
    [
        {"key": "", "value": 1, "step": 0},
        {"key": "loss", "value": 1, "step": -1},
        {"key": "loss", "step": 0},
        {"key": "loss", "value": 1, "step": 2**63},  # past the BIGINT column: was a 500
        {"key": "loss", "value": 1, "step": 10**30},
        {"key": "loss", "value": 1, "step": 0, "unit": "nats"},
        {"key": "loss", "value": "high", "step": 0},
        {"key": "loss", "value": 1, "step": 0, "ts": "yesterday"},
        {"key": "x" * 201, "value": 1, "step": 0},
    ],
)
def test_malformed_points_are_422_and_nothing_stored(client, api, bad_point: dict) -> None:
    run = api.run(api.experiment()["id"])
    api.error(api.metrics(run["id"], [point("loss", 0.3, 0), bad_point]), 422, "validation_error")
    assert api.get(f"/api/runs/{run['id']}/metrics")["series"] == {}


@pytest.mark.parametrize("body", [b"{not json", b"", b"[]", b'{"points": {}}', b'{"points": [], "extra": 1}'])
def test_a_malformed_batch_body_is_422_with_body_locations(client, api, body: bytes) -> None:
    run = api.run(api.experiment()["id"])
    response = client.post(f"/api/runs/{run['id']}/metrics", content=body, headers={"content-type": "application/json"})
    error = api.error(response, 422, "invalid_json" if body in (b"{not json", b"") else "validation_error")
    assert all(e["loc"][0] == "body" for e in error["details"]["errors"])


def test_a_batch_over_10000_points_is_refused_whatever_its_points(client, api) -> None:
    run = api.run(api.experiment()["id"])
    response = api.metrics(run["id"], [point("loss", 0.1, i) for i in range(12_000)] + [{"key": ""}])
    assert api.error(response, 422, "batch_too_large")["details"] == {"max": 10_000, "received": 12_001}


def test_a_body_far_past_any_batch_is_413_unread(client, api) -> None:
    run = api.run(api.experiment()["id"])
    huge = b'{"points": [' + b" " * (17 * 1024 * 1024) + b"]}"

    response = client.post(f"/api/runs/{run['id']}/metrics", content=huge, headers={"content-type": "application/json"})

    assert api.error(response, 413, "body_too_large")["details"] == {"max_bytes": 16 * 1024 * 1024}
    assert api.get(f"/api/runs/{run['id']}/metrics")["series"] == {}


def test_the_largest_step_is_stored(client, api) -> None:
    run = api.run(api.experiment()["id"])
    assert api.metrics(run["id"], [point("loss", 0.5, 2**63 - 1)]).json() == {"ingested": 1}
    assert api.get(f"/api/runs/{run['id']}/metrics")["series"]["loss"][0]["step"] == 2**63 - 1


def test_experiment_best_metrics_follow_arriving_metrics(client, api) -> None:
    exp = api.experiment()
    first, second = api.run(exp["id"]), api.run(exp["id"])

    api.metrics(first["id"], [point("loss", 0.8, 1), point("accuracy", 0.5, 1)])
    assert api.get(f"/api/experiments/{exp['id']}")["best_metrics"] == {"loss": 0.8, "accuracy": 0.5}

    api.metrics(second["id"], [point("loss", 0.3, 1), point("accuracy", 0.4, 1), point("val_error", 0.2, 1)])
    assert api.get(f"/api/experiments/{exp['id']}")["best_metrics"] == {"loss": 0.3, "accuracy": 0.5, "val_error": 0.2}

    api.metrics(first["id"], [point("accuracy", 0.9, 2)])
    listed = api.get("/api/experiments")["items"][0]
    assert listed["best_metrics"] == {"loss": 0.3, "accuracy": 0.9, "val_error": 0.2}


# --- listing and comparison ------------------------------------------------------------------------------------------


def test_runs_are_listed_newest_first_with_config_and_metrics_summary(client, api) -> None:
    exp = api.experiment()
    names = ["a", "b", "c"]
    runs = [api.run(exp["id"], name=name, config={"seed": i}) for i, name in enumerate(names)]
    api.metrics(runs[0]["id"], [point("loss", 0.25, 5)])
    api.end_run(runs[1]["id"], "completed")

    page = api.get(f"/api/experiments/{exp['id']}/runs")
    assert (page["total"], page["page"], page["page_size"]) == (3, 1, 50)
    listed = page["items"]

    assert [r["name"] for r in listed] == ["c", "b", "a"]
    assert [r["config"] for r in listed] == [{"seed": 2}, {"seed": 1}, {"seed": 0}]
    assert [r["status"] for r in listed] == ["running", "completed", "running"]
    assert listed[2]["metrics_summary"]["loss"]["final"] == 0.25 and listed[2]["final_loss"] == 0.25
    assert all("adapter" in r for r in listed)


def test_compare_picks_best_run_per_metric(client, api) -> None:
    exp = api.experiment()
    a, b, c = (api.run(exp["id"], name=n) for n in "abc")
    api.metrics(a["id"], [point("loss", 0.5, 1), point("accuracy", 0.9, 1), point("val_error", 0.3, 1)])
    api.metrics(b["id"], [point("loss", 0.2, 1), point("accuracy", 0.8, 1), point("val_error", 0.1, 1)])
    api.metrics(c["id"], [point("loss", 0.9, 1), point("bleu", 12.0, 1)])

    got = api.get("/api/runs/compare", ids=f"{a['id']},{b['id']}, {c['id']}")

    assert [r["id"] for r in got["runs"]] == [a["id"], b["id"], c["id"]]
    metrics = got["metrics"]
    assert set(metrics) == {"loss", "accuracy", "val_error", "bleu"}
    assert metrics["loss"] == {
        "values": {a["id"]: 0.5, b["id"]: 0.2, c["id"]: 0.9},
        "best_run_id": b["id"],
        "best_run_ids": [b["id"]],
        "goal": "min",
    }
    assert metrics["accuracy"]["goal"] == "max" and metrics["accuracy"]["best_run_id"] == a["id"]
    assert metrics["val_error"]["goal"] == "min" and metrics["val_error"]["best_run_id"] == b["id"]
    assert metrics["accuracy"]["values"][c["id"]] is None
    assert metrics["bleu"] == {
        "values": {a["id"]: None, b["id"]: None, c["id"]: 12.0},
        "best_run_id": c["id"],
        "best_run_ids": [c["id"]],
        "goal": "max",
    }


def test_compare_compares_final_values(client, api) -> None:
    exp = api.experiment()
    a, b = api.run(exp["id"]), api.run(exp["id"])
    api.metrics(a["id"], [point("loss", 0.1, 1), point("loss", 0.6, 2)])
    api.metrics(b["id"], [point("loss", 0.4, 1)])
    got = api.get("/api/runs/compare", ids=f"{a['id']},{b['id']}")
    assert got["metrics"]["loss"]["values"] == {a["id"]: 0.6, b["id"]: 0.4}
    assert got["metrics"]["loss"]["best_run_id"] == b["id"]


def test_compare_with_unknown_ids_is_404_naming_them(client, api) -> None:
    run = api.run(api.experiment()["id"])
    error = api.error(
        client.get("/api/runs/compare", params={"ids": f"{run['id']},ghost-2,ghost-1"}), 404, "run_not_found"
    )
    assert error["details"] == {"missing": ["ghost-1", "ghost-2"]}


def test_compare_needs_ids(client, api) -> None:
    api.error(client.get("/api/runs/compare"), 422, "validation_error")
    api.error(client.get("/api/runs/compare", params={"ids": " , "}), 422, "invalid_compare")


def test_compare_takes_at_most_20_distinct_ids(client, api) -> None:
    exp = api.experiment()
    ids = [api.run(exp["id"])["id"] for _ in range(21)]

    error = api.error(client.get("/api/runs/compare", params={"ids": ",".join(ids)}), 422, "invalid_compare")

    assert "20" in error["message"]
    # The limit is checked before any lookup: 21 unknown ids are not a 404.
    ghosts = ",".join(f"ghost-{i}" for i in range(21))
    api.error(client.get("/api/runs/compare", params={"ids": ghosts}), 422, "invalid_compare")
    # Twenty, or more ids that repeat down to twenty, are compared.
    assert len(api.get("/api/runs/compare", ids=",".join(ids[:20]))["runs"]) == 20
    assert len(api.get("/api/runs/compare", ids=",".join([*ids[:20], ids[0]]))["runs"]) == 20
