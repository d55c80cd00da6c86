"""Metrics users can trust: one point per (run, key, step), no points for ended runs, goals per metric,
paginated and downsampled reads, one key for many runs, and reads that never wait for writers."""

from __future__ import annotations

import math
import threading

import pytest


def point(key: str, value: float, step: int, **extra: object) -> dict[str, object]:
    return {"key": key, "value": value, "step": step, **extra}


def series(api, run_id: str, **params: object) -> dict:
    return api.get(f"/api/runs/{run_id}/metrics", **params)


# --- one point per step ----------------------------------------------------------------------------------------------


def test_a_retried_batch_is_stored_once(client, api) -> None:
    exp = api.experiment()
    run = api.run(exp["id"])
    batch = [point("loss", 0.9, 1), point("loss", 0.7, 2), point("accuracy", 0.5, 2)]

    assert api.metrics(run["id"], batch).json() == {"ingested": 3}
    assert api.metrics(run["id"], batch).json() == {"ingested": 3}  # the client never heard the first answer

    got = series(api, run["id"])
    assert [(p["step"], p["value"]) for p in got["series"]["loss"]] == [(1, 0.9), (2, 0.7)]
    assert got["summary"]["loss"]["count"] == 2 and got["summary"]["accuracy"]["count"] == 1


def test_a_point_sent_again_replaces_the_stored_one_and_summaries_follow(client, api) -> None:
    exp = api.experiment()
    run = api.run(exp["id"])
    api.metrics(run["id"], [point("loss", 0.1, 1), point("loss", 0.5, 2), point("loss", 0.6, 3)])
    assert series(api, run["id"])["summary"]["loss"]["best"] == 0.1

    # The best point was a logging bug; the client sends the right value for step 1, and a new step 4.
    api.metrics(run["id"], [point("loss", 0.8, 1), point("loss", 0.4, 4)])

    got = series(api, run["id"])
    assert [(p["step"], p["value"]) for p in got["series"]["loss"]] == [(1, 0.8), (2, 0.5), (3, 0.6), (4, 0.4)]
    assert got["summary"]["loss"] == {"final": 0.4, "best": 0.4, "goal": "min", "last_step": 4, "count": 4}
    assert api.get(f"/api/experiments/{exp['id']}")["best_metrics"] == {"loss": 0.4}


def test_within_one_batch_the_last_point_for_a_step_wins(client, api) -> None:
    run = api.run(api.experiment()["id"])
    assert api.metrics(run["id"], [point("loss", 0.9, 1), point("loss", 0.3, 1)]).json() == {"ingested": 1}
    assert [p["value"] for p in series(api, run["id"])["series"]["loss"]] == [0.3]


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_a_run_that_has_ended_takes_no_more_points(client, api, status: str) -> None:
    run = api.run(api.experiment()["id"])
    api.metrics(run["id"], [point("loss", 0.5, 1)])
    api.end_run(run["id"], status)

    for points in ([point("loss", 0.1, 2)], [point("loss", 0.1, 1)], [point("loss", 0.1, i) for i in range(600)], []):
        error = api.error(api.metrics(run["id"], points), 409, "run_finished")
        assert error["details"] == {"run_id": run["id"], "status": status}
    assert [p["value"] for p in series(api, run["id"])["series"]["loss"]] == [0.5]


# --- goals -------------------------------------------------------------------------------------------------------


def test_learning_rate_grad_norm_epoch_and_log_probs_are_not_ranked(client, api) -> None:
    exp = api.experiment()
    a, b = api.run(exp["id"]), api.run(exp["id"])
    keys = ["loss", "learning_rate", "grad_norm", "epoch", "rejected_logp", "reward_accuracy"]
    api.metrics(a["id"], [point(k, 1.0, 1) for k in keys])
    api.metrics(b["id"], [point(k, 2.0, 1) for k in keys])

    compared = api.get("/api/runs/compare", ids=f"{a['id']},{b['id']}")["metrics"]
    summary = api.get(f"/api/runs/{a['id']}")["metrics_summary"]
    best = api.get(f"/api/experiments/{exp['id']}")["best_metrics"]

    for key in ("learning_rate", "grad_norm", "epoch", "rejected_logp"):
        assert compared[key]["goal"] == "none" and compared[key]["best_run_ids"] == []
        assert compared[key]["best_run_id"] is None
        assert summary[key]["best"] is None and summary[key]["goal"] == "none"
    assert compared["loss"]["best_run_ids"] == [a["id"]] and compared["reward_accuracy"]["best_run_ids"] == [b["id"]]
    assert best == {"loss": 1.0, "reward_accuracy": 2.0}


def test_ties_star_every_tied_run(client, api) -> None:
    exp = api.experiment()
    a, b, c = (api.run(exp["id"]) for _ in range(3))
    for run, value in ((a, 0.2), (b, 0.5), (c, 0.2)):
        api.metrics(run["id"], [point("loss", value, 1)])

    loss = api.get("/api/runs/compare", ids=f"{a['id']},{b['id']},{c['id']}")["metrics"]["loss"]

    assert loss["best_run_ids"] == [a["id"], c["id"]] and loss["best_run_id"] == a["id"]


def test_an_experiment_sets_its_own_goals_and_null_goes_back_to_the_default(client, api) -> None:
    exp = api.experiment("goals", metric_goals={"fad_score": "min"})
    a, b = api.run(exp["id"]), api.run(exp["id"])
    api.metrics(a["id"], [point("fad_score", 3.0, 1), point("lr", 1e-4, 1), point("loss", 0.2, 1)])
    api.metrics(b["id"], [point("fad_score", 5.0, 1), point("lr", 1e-3, 1), point("loss", 0.4, 1)])
    assert api.get(f"/api/experiments/{exp['id']}")["best_metrics"] == {"fad_score": 3.0, "loss": 0.2}

    patched = client.patch(f"/api/experiments/{exp['id']}", json={"metric_goals": {"lr": "max", "loss": "none"}})

    assert patched.status_code == 200, patched.text
    assert patched.json()["metric_goals"] == {"fad_score": "min", "lr": "max", "loss": "none"}
    assert patched.json()["best_metrics"] == {"fad_score": 3.0, "lr": 1e-3}
    compared = api.get("/api/runs/compare", ids=f"{a['id']},{b['id']}")["metrics"]
    assert (compared["lr"]["goal"], compared["lr"]["best_run_ids"]) == ("max", [b["id"]])
    assert compared["loss"]["goal"] == "none"

    back = client.patch(f"/api/experiments/{exp['id']}", json={"metric_goals": {"loss": None}}).json()
    assert back["metric_goals"] == {"fad_score": "min", "lr": "max"} and back["best_metrics"]["loss"] == 0.2
    api.error(client.patch(f"/api/experiments/{exp['id']}", json={"metric_goals": {"loss": "lower"}}), 422,
              "validation_error")  # fmt: skip
    api.error(client.patch(f"/api/experiments/{exp['id']}", json={"metric_goals": None}), 422, "validation_error")


# --- paginated and downsampled reads -------------------------------------------------------------------------------


def test_history_pages_through_after_step_and_limit(client, api) -> None:
    run = api.run(api.experiment()["id"])
    api.metrics(run["id"], [point("loss", 1 / (s + 1), s) for s in range(25)] + [point("lr", 0.1, s) for s in range(5)])

    steps: list[int] = []
    after = None
    pages = 0
    while True:
        params = {"key": "loss", "limit": 10, **({"after_step": after} if after is not None else {})}
        got = series(api, run["id"], **params)
        steps += [p["step"] for p in got["series"].get("loss", [])]
        pages += 1
        if "loss" not in got["next_after_step"]:
            break
        after = got["next_after_step"]["loss"]

    assert steps == list(range(25)) and pages == 3
    both = series(api, run["id"], limit=3)
    assert [len(both["series"][k]) for k in ("loss", "lr")] == [3, 3]
    assert both["next_after_step"] == {"loss": 2, "lr": 2}
    assert series(api, run["id"], after_step=100)["series"] == {}
    assert series(api, run["id"], after_step=20)["summary"]["loss"]["count"] == 25  # the summary is the run's


def test_downsampling_keeps_the_shape_and_every_spike(client, api) -> None:
    run = api.run(api.experiment()["id"])
    values = [math.sin(s / 50) for s in range(5000)]
    values[1234], values[4321] = 40.0, -40.0  # spikes a stride would miss
    for start in range(0, 5000, 2500):
        api.metrics(run["id"], [point("loss", values[s], s) for s in range(start, start + 2500)])

    got = series(api, run["id"], max_points=200)["series"]["loss"]

    assert 100 <= len(got) <= 200
    steps = [p["step"] for p in got]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert {(p["step"], p["value"]) for p in got} >= {(1234, 40.0), (4321, -40.0)}
    assert got[0]["step"] == 0 or values[got[0]["step"]] <= values[0]  # the first bucket keeps its extremes
    assert all(p["value"] == values[p["step"]] and p["ts"].endswith("Z") for p in got)  # real points, not averages
    small = series(api, run["id"], max_points=200, key="loss", after_step=4900)["series"]["loss"]
    assert [p["step"] for p in small] == list(range(4901, 5000))  # few enough: given as they are


def test_one_key_for_many_runs_in_one_answer_as_columns(client, api) -> None:
    exp = api.experiment()
    runs = [api.run(exp["id"]) for _ in range(3)]
    for i, run in enumerate(runs[:2]):
        api.metrics(run["id"], [point("loss", i + s / 10, s) for s in range(5)] + [point("acc", 0.5, 1)])

    ids = ",".join(run["id"] for run in runs)
    got = api.get("/api/runs/metrics", ids=ids, key="loss")

    assert got["key"] == "loss"
    assert list(got["runs"]) == [runs[0]["id"], runs[1]["id"]]  # the run without the key is left out
    assert got["runs"][runs[1]["id"]] == {"steps": [0, 1, 2, 3, 4], "values": [1.0, 1.1, 1.2, 1.3, 1.4]}
    thin = api.get("/api/runs/metrics", ids=ids, key="loss", max_points=2)["runs"][runs[0]["id"]]
    assert thin == {"steps": [0, 4], "values": [0.0, 0.4]}
    error = api.error(client.get("/api/runs/metrics", params={"ids": f"{ids},run-ghost", "key": "loss"}), 404,
                      "run_not_found")  # fmt: skip
    assert error["details"] == {"missing": ["run-ghost"]}
    api.error(client.get("/api/runs/metrics", params={"ids": ",".join(["r"] * 101 + ["x"]), "key": "loss"}), 404,
              "run_not_found")  # fmt: skip
    many = ",".join(f"run-{i}" for i in range(101))
    api.error(client.get("/api/runs/metrics", params={"ids": many, "key": "loss"}), 422, "invalid_compare")


# --- reads never wait for writers -------------------------------------------------------------------------------


def test_reads_answer_while_a_writer_holds_the_write_path(app, client, api) -> None:
    exp = api.experiment("busy")
    run = api.run(exp["id"])
    api.metrics(run["id"], [point("loss", 0.5, 1)])
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        db = app.state.services.db
        with db.transaction() as con:
            con.execute("UPDATE experiments SET description = 'being written' WHERE id = ?", [exp["id"]])
            db.after_commit(lambda: db.rows.experiment_changed(exp["id"]))  # as every write tells the caches
            held.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert held.wait(5)
        # Each of these would block on the write lock if reads shared it; they answer, with committed data.
        assert api.get(f"/api/experiments/{exp['id']}")["description"] is None
        assert api.get("/api/experiments")["total"] == 1
        assert series(api, run["id"])["series"]["loss"][0]["value"] == 0.5
        assert api.get(f"/api/runs/{run['id']}")["final_loss"] == 0.5
    finally:
        release.set()
        thread.join()
    assert api.get(f"/api/experiments/{exp['id']}")["description"] == "being written"


def test_downsampling_a_series_whose_steps_span_the_whole_bigint_range(client, api) -> None:
    run = api.run(api.experiment()["id"])
    steps = [0, 1, 2**40, 2**62, 2**63 - 2, 2**63 - 1]
    api.metrics(run["id"], [point("loss", float(i), s) for i, s in enumerate(steps)])

    got = series(api, run["id"], max_points=4)["series"]["loss"]

    assert 2 <= len(got) <= 4 and {p["step"] for p in got} <= set(steps)
    assert {(0, 0.0), (2**63 - 1, 5.0)} <= {(p["step"], p["value"]) for p in got}
