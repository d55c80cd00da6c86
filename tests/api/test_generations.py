"""Generation over HTTP with a real generation worker process on the tiny MusicGen: jobs queued (202 pending) then
made into WAV clips, listed and filtered, reproducible by seed; adapters named, counted and pre-loaded; refusals
before anything is queued; jobs that keep their adapter when it is deactivated or deleted after; ratings and an
adapter's performance; a worker killed mid-job, a change of the current model, and a server that stops with jobs
unfinished.

One studio (app, data dir, worker) serves the module: starting a worker costs seconds. Tests leave it as they found
it where that matters (the current model) and count from where they start (totals, restarts)."""

from __future__ import annotations

import io
import os
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

from tunelab import stats
from tunelab.app import create_app
from tunelab.store import generations as generation_store

from .conftest import WAIT_S, Api, Studio, make_settings, poll, start_studio


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    return Api.error(response, status, code)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- making clips ----------------------------------------------------------------------------------------------------


def test_a_job_is_queued_pending_then_completed_with_a_wav_of_the_asked_length(studio: Studio) -> None:
    model = studio.model()
    job = studio.generate(prompt="upbeat electronic music", duration_s=0.5, seed=3)
    assert (job["seed"], job["duration_s"], job["model_id"], job["adapter"]) == (3, 0.5, "tiny", None)
    studio.wait()

    done = studio.job(job["id"])
    assert done["status"] == "completed" and done["error"] is None
    assert done["audio_url"] == f"/api/generations/{job['id']}/audio" and done["audio_id"].startswith("aud-")
    timings = done["timings"]
    assert set(timings) == {"queued_s", "load_s", "generate_s", "write_s", "total_s", "batch_size"}
    assert all(value >= 0 for value in timings.values()) and timings["total_s"] >= timings["generate_s"]
    assert when(done["created_at"]) <= when(done["started_at"]) <= when(done["completed_at"])

    audio, rate = soundfile.read(io.BytesIO(studio.audio(job["id"])))
    assert rate == model["sample_rate"] == 32000
    assert abs(len(audio) - 0.5 * rate) <= rate / model["frame_rate"]  # ±1 frame
    assert audio.ndim == 1 and np.abs(audio).max() > 0

    listed = next(item for item in studio.jobs() if item["id"] == job["id"])
    assert listed["adapter"] is None and listed["adapter_deleted"] is False and listed["status"] == "completed"
    assert job["id"] in {item["id"] for item in studio.jobs(status="completed")}
    assert job["id"] not in {item["id"] for item in studio.jobs(status="pending")}
    assert job["id"] not in {item["id"] for item in studio.jobs(adapter_id="adp-0123456789abcdef")}


def test_the_same_seed_makes_the_same_wav_and_a_drawn_seed_is_kept(studio: Studio) -> None:
    first = studio.made(prompt="dark ambient pad", seed=11)
    again = studio.made(prompt="dark ambient pad", seed=11)  # the worker is warm now: still answered pending
    assert studio.audio(first["id"]) == studio.audio(again["id"])

    drawn = studio.made(prompt="dark ambient pad")
    assert 0 <= drawn["seed"] <= 2**31 - 1
    remade = studio.made(prompt="dark ambient pad", seed=drawn["seed"])
    assert studio.audio(drawn["id"]) == studio.audio(remade["id"])


def test_a_job_made_with_an_adapter_names_it_and_counts_one_use_per_clip(studio: Studio) -> None:
    adapter = studio.adapter("lofi", "1.0", noise_seed=1)
    assert adapter["usage_count"] == 0
    first = studio.generate(prompt="lofi hip hop", adapter_id=adapter["id"], seed=1)
    assert first["adapter"] == {"id": adapter["id"], "name": "lofi", "version": "1.0"}
    studio.wait()
    assert studio.job(first["id"])["status"] == "completed"
    detail = studio.api.get(f"/api/adapters/{adapter['id']}")
    assert detail["usage_count"] == 1 and detail["usage"]["generations"] == 1

    second = studio.made(prompt="lofi hip hop", adapter_id=adapter["id"], seed=2, guidance_scale=3)
    assert second["adapter"]["id"] == adapter["id"] and second["guidance_scale"] == 3
    assert studio.api.get(f"/api/adapters/{adapter['id']}")["usage_count"] == 2
    assert adapter["id"] in studio.worker()["cache"]["adapters"]

    mine = studio.jobs(adapter_id=adapter["id"])
    assert [item["id"] for item in mine] == [second["id"], first["id"]]  # newest first
    assert all(item["adapter"]["name"] == "lofi" and item["adapter_deleted"] is False for item in mine)


def test_requests_that_cannot_be_made_are_refused_before_anything_is_queued(studio: Studio) -> None:
    before = studio.total()
    inactive = studio.adapter("idle", active=False)
    found = error(studio.client.post("/api/generations", json={"prompt": "a", "duration_s": 0.3,
                                                               "adapter_id": inactive["id"]}), 400, "adapter_inactive")  # fmt: skip
    assert found["details"]["adapter_id"] == inactive["id"]

    deleted = studio.adapter("gone")
    assert studio.client.delete(f"/api/adapters/{deleted['id']}").status_code == 200
    error(studio.client.post("/api/generations", json={"prompt": "a", "duration_s": 0.3,
                                                       "adapter_id": deleted["id"]}), 400, "adapter_deleted")  # fmt: skip
    error(studio.client.post("/api/generations", json={"prompt": "a", "duration_s": 0.3,
                                                       "adapter_id": "adp-0123456789abcdef"}), 404, "adapter_not_found")  # fmt: skip

    longest = studio.model()["max_duration_s"]
    found = error(studio.client.post("/api/generations", json={"prompt": "a", "duration_s": longest + 0.5}), 422,
                  "duration_too_long")  # fmt: skip
    assert found["details"]["max_duration_s"] == longest and found["details"]["model_id"] == "tiny"

    good = {"prompt": "calm", "duration_s": 0.3}
    for bad in ({**good, "prompt": ""}, {**good, "prompt": "   "}, {**good, "seed": -1}, {**good, "seed": 2**31},
                {**good, "guidance_scale": 0.5}, {**good, "duration_s": 0}, {**good, "speed": 2}, {"prompt": "calm"},
                {**good, "seed": "5"}, {**good, "adapter_id": "not an id!"}):  # fmt: skip
        error(studio.client.post("/api/generations", json=bad), 422, "validation_error")
    assert studio.total() == before

    error(studio.client.get("/api/generations/gen-0123456789abcdef"), 404, "generation_not_found")
    error(studio.client.get("/api/generations/gen-0123456789abcdef/audio"), 404, "generation_not_found")


def test_a_job_keeps_its_adapter_when_it_is_deactivated_or_deleted_right_after(studio: Studio) -> None:
    adapter = studio.adapter("tape", noise_seed=2)
    kept = studio.generate(prompt="warm tape", adapter_id=adapter["id"], seed=4)
    assert studio.client.post(f"/api/adapters/{adapter['id']}/deactivate").json()["active"] is False
    error(studio.client.post("/api/generations", json={"prompt": "warm tape", "duration_s": 0.3,
                                                       "adapter_id": adapter["id"]}), 400, "adapter_inactive")  # fmt: skip
    studio.wait()
    assert studio.job(kept["id"])["status"] == "completed"

    assert studio.client.post(f"/api/adapters/{adapter['id']}/activate").status_code == 200
    orphan = studio.generate(prompt="warm tape", adapter_id=adapter["id"], seed=5)
    assert studio.client.delete(f"/api/adapters/{adapter['id']}").status_code == 200
    studio.wait()

    listed = {item["id"]: item for item in studio.jobs(adapter_id=adapter["id"])}
    assert set(listed) == {kept["id"], orphan["id"]}
    for item in listed.values():
        assert item["status"] == "completed", item
        assert item["adapter"] == {"id": adapter["id"], "name": "tape", "version": "1"}
        assert item["adapter_deleted"] is True
    assert studio.job(orphan["id"])["adapter_deleted"] is True
    assert adapter["id"] in studio.worker()["cache"]["adapters"]  # the worker loaded it for them
    performance = studio.api.get(f"/api/adapters/{adapter['id']}/performance")  # a deleted adapter's history stays
    assert (performance["total_generations"], performance["completed_generations"]) == (2, 2)
    with studio.services.db.read() as con:
        assert con.execute("SELECT usage_count FROM adapters WHERE id = ?", [adapter["id"]]).fetchone() == (2,)


def test_activating_an_adapter_preloads_it_into_the_ready_worker(studio: Studio) -> None:
    studio.made(prompt="calm")  # the worker is up and ready
    adapter = studio.adapter("warmup", noise_seed=3)  # activated
    cache = poll(lambda: adapter["id"] in studio.worker()["cache"].get("adapters", []) and studio.worker()["cache"])
    assert cache["loads"] >= 1 and cache["budget_bytes"] == 512 * 1024 * 1024
    assert studio.worker()["state"] == "ready" and studio.worker()["model_id"] == "tiny"


# --- ratings and performance -----------------------------------------------------------------------------------------


def test_a_completed_clip_is_rated_from_one_to_five_and_a_new_rating_replaces_the_old(studio: Studio) -> None:
    job = studio.made(prompt="bright synth chord")
    rated = studio.client.post(f"/api/generations/{job['id']}/rating", json={"rating": 4})
    assert rated.status_code == 200 and rated.json()["rating"] == 4 and rated.json()["rated_at"] is not None
    again = studio.client.post(f"/api/generations/{job['id']}/rating", json={"rating": 2})
    assert again.status_code == 200 and again.json()["rating"] == 2
    assert when(again.json()["rated_at"]) >= when(rated.json()["rated_at"])
    for bad in ({"rating": 0}, {"rating": 6}, {"rating": "5"}, {"rating": 4.5}, {}, {"rating": 3, "note": "x"}):
        response = studio.client.post(f"/api/generations/{job['id']}/rating", json=bad)
        assert response.status_code == 422, (bad, response.text)
    assert studio.job(job["id"])["rating"] == 2
    error(studio.client.post("/api/generations/gen-0123456789abcdef/rating", json={"rating": 3}), 404,
          "generation_not_found")  # fmt: skip


def test_an_adapter_performance_sets_its_ratings_beside_the_base_model_on_the_same_prompts(studio: Studio) -> None:
    adapter = studio.adapter("perf", noise_seed=4)
    prompt, other = "happy pop groove perf", "sad strings perf"

    def rated(rating: int | None, **body: Any) -> None:
        job = studio.made(**body)
        if rating is not None:
            response = studio.client.post(f"/api/generations/{job['id']}/rating", json={"rating": rating})
            assert response.status_code == 200, response.text

    for seed, rating in enumerate((5, 4, 5)):
        rated(rating, prompt=prompt, adapter_id=adapter["id"], seed=seed)
    rated(3, prompt=other, adapter_id=adapter["id"])
    rated(None, prompt=prompt, adapter_id=adapter["id"])  # made, not rated
    rated(2, prompt=prompt)
    rated(1, prompt=prompt)
    rated(5, prompt="a prompt the adapter never had perf")  # not compared
    with studio.services.db.transaction() as con:  # the base model of another model on the same prompt: not its base
        current = studio.services.generations.current_model()
        row = studio.services.generations.new_row(prompt, 0.3, 1, None, current, None, None)
        generation_store.insert(con, {**row, "model_id": "another-model", "status": "completed", "rating": 5})

    found = studio.api.get(f"/api/adapters/{adapter['id']}/performance")
    assert found["adapter_id"] == adapter["id"]
    assert (found["total_generations"], found["completed_generations"]) == (5, 5)
    mine = found["ratings"]
    assert mine["count"] == 4 and mine["average"] == 4.25
    assert mine["distribution"] == {"1": 0, "2": 0, "3": 1, "4": 1, "5": 2}
    assert mine["ci"] == stats.rating_summary([5, 4, 5, 3])["ci"] and mine["ci"][0] < 4.25 < mine["ci"][1]
    base = found["base_model"]
    assert (base["count"], base["average"], base["distribution"]["2"], base["distribution"]["1"]) == (2, 1.5, 1, 1)
    assert found["prompts_compared"] == 1
    assert found["difference"] == stats.compare_ratings([5, 4, 5, 3], [2, 1])
    assert found["difference"]["prob_a_higher"] == 1.0

    fresh = studio.api.get(f"/api/adapters/{studio.adapter('unused')['id']}/performance")
    assert fresh["total_generations"] == 0 and fresh["ratings"]["count"] == 0 and fresh["ratings"]["average"] is None
    assert fresh["base_model"] is None and fresh["difference"] is None and fresh["prompts_compared"] == 0
    error(studio.client.get("/api/adapters/adp-0123456789abcdef/performance"), 404, "adapter_not_found")


# --- the worker's life -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_worker_fails_the_job_it_held_and_a_new_worker_makes_the_next(studio: Studio) -> None:
    restarts = studio.worker()["restarts"]
    longest = studio.model()["max_duration_s"]
    job = studio.generate(prompt="epic cinematic orchestra", duration_s=longest, guidance_scale=3.0)
    poll(lambda: studio.job(job["id"])["status"] == "running", timeout_s=WAIT_S)
    pid = studio.worker()["pid"]
    os.kill(pid, signal.SIGKILL)
    studio.wait()

    failed = studio.job(job["id"])
    assert failed["status"] == "failed", failed
    assert "generation worker" in failed["error"] and "signal 9" in failed["error"]
    worker = studio.worker()
    assert worker["restarts"] == restarts + 1 and "stopped unexpectedly" in worker["error"]
    found = error(studio.client.post(f"/api/generations/{job['id']}/rating", json={"rating": 3}), 409,
                  "generation_not_completed")  # fmt: skip
    assert found["details"]["status"] == "failed"
    error(studio.client.get(f"/api/generations/{job['id']}/audio"), 409, "generation_not_completed")

    studio.made(prompt="calm")
    worker = studio.worker()
    assert worker["state"] == "ready" and worker["pid"] not in (None, pid) and worker["restarts"] == restarts + 1


@pytest.mark.slow
def test_a_change_of_the_current_model_refuses_its_adapters_and_reloads_the_worker(studio: Studio) -> None:
    studio.made(prompt="calm")  # a worker on tiny
    adapter = studio.adapter("old-model", noise_seed=5)
    studio.add_model("tiny-b")
    bright = studio.adapter("bright", base_model_id="tiny-b", active=False)
    before = studio.total()
    studio.use_model("tiny-b")
    try:
        found = error(studio.client.post("/api/generations", json={"prompt": "a", "duration_s": 0.3,
                                                                   "adapter_id": adapter["id"]}), 400,
                      "adapter_incompatible")  # fmt: skip
        assert "tiny-b" in found["details"]["reason"]
        suggested = found["details"]["compatible_adapters"]
        assert {"id": bright["id"], "name": "bright", "version": "1", "active": False} in suggested
        assert adapter["id"] not in {s["id"] for s in suggested}
        assert studio.total() == before

        poll(lambda: studio.worker()["model_id"] == "tiny-b", timeout_s=WAIT_S)
        done = studio.made(prompt="calm")
        assert done["model_id"] == "tiny-b" and studio.worker()["model_id"] == "tiny-b"
    finally:
        studio.use_model("tiny")
    poll(lambda: studio.worker()["model_id"] == "tiny", timeout_s=WAIT_S)
    assert studio.made(prompt="calm", adapter_id=adapter["id"])["model_id"] == "tiny"


@pytest.mark.slow
def test_jobs_left_unfinished_by_a_stopping_server_are_made_by_the_next(
    tmp_path: Path, tiny_model: Path, trained_adapter: Path
) -> None:
    data = tmp_path / "data"
    for studio in start_studio(data, tiny_model, trained_adapter):
        queued = [studio.generate(prompt="slow piano", seed=seed) for seed in (1, 2)]
    # the TestClient's context ended: the app stopped its worker before it made them

    app = create_app(make_settings(data))
    idle = TestClient(app)  # no lifespan: nothing is queued again yet
    for job in queued:
        assert idle.get(f"/api/generations/{job['id']}").json()["status"] == "pending"
    found = error(idle.get(f"/api/generations/{queued[0]['id']}/audio"), 409, "generation_not_completed")
    assert found["details"]["status"] == "pending"
    error(idle.post(f"/api/generations/{queued[0]['id']}/rating", json={"rating": 5}), 409, "generation_not_completed")

    with TestClient(app) as client:
        studio = Studio(client, data, tiny_model, trained_adapter)
        studio.wait()
        for job in queued:
            done = studio.job(job["id"])
            assert done["status"] == "completed" and done["seed"] == job["seed"], done
        again = studio.made(prompt="slow piano", seed=1)
        # the same clip: made alone now, in a batch of two before, which may round a sample the other way
        alone, _ = soundfile.read(io.BytesIO(studio.audio(again["id"])))
        batched, _ = soundfile.read(io.BytesIO(studio.audio(queued[0]["id"])))
        assert alone.shape == batched.shape and np.abs(alone - batched).max() <= 1 / 2**15
