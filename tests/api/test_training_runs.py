"""Runs TuneLab trains, end to end on the tiny MusicGen: start from the API, the queue, the supervisor's log, live
logs over SSE, metrics from the training process's events, the adapter it registers, failures and cancelling.

One app serves the module (its scheduler starts the runs); each run trains for a few seconds."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

from tunelab.app import create_app
from tunelab.config import Settings
from tunelab.training.events import parse_events

pytestmark = pytest.mark.slow
QUICK = {"epochs": 1, "batch_size": 4, "max_audio_seconds": 1, "save_every": 0}
TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("studio") / "data"
    settings = Settings(data_dir=data, allowed_hosts=["testserver"], bootstrap_model=False)
    app = create_app(settings)
    shutil.copytree(tiny_model, data / "models" / "tiny")
    with TestClient(app) as client:
        assert client.post("/api/models", json={"path": str(data / "models" / "tiny")}).status_code == 201
        yield client


@pytest.fixture(scope="module")
def demo(studio: TestClient) -> dict[str, Any]:
    return studio.post("/api/datasets/demo").json()


def experiment(client: TestClient, name: str, dataset_id: str | None, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/experiments", json={"name": name, "dataset_id": dataset_id, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def start(client: TestClient, experiment_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/experiments/{experiment_id}/runs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def wait_for(client: TestClient, run_id: str, statuses: set[str], timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(f"/api/runs/{run_id}").json()
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is still {run['status']}"
        time.sleep(0.2)


def streamed(client: TestClient, run_id: str, offset: int = 0, last_event_id: str | None = None,
             stop_after: int | None = None) -> tuple[bytes, list[tuple[str, str, str]]]:  # fmt: skip
    """The bytes an SSE viewer receives from `offset`, and every event (kind, id, data)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    received = b""
    events: list[tuple[str, str, str]] = []
    with client.stream("GET", f"/api/runs/{run_id}/logs/stream", params={"offset": offset}, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        kind, ident, data = "message", "", ""
        for line in r.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("id:"):
                ident = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = line.split(":", 1)[1].strip()
            elif line == "" and (data or kind != "message"):
                events.append((kind, ident, data))
                if kind == "message":
                    received += base64.b64decode(data)
                if kind == "end" or (stop_after is not None and len(events) >= stop_after):
                    break
                kind, ident, data = "message", "", ""
    return received, events


def test_a_supervised_run_trains_streams_its_log_and_registers_its_adapter(studio, demo, tmp_path) -> None:
    exp = experiment(studio, "melodies", demo["id"], config={"learning_rate": 0.0002, "notes": "not an option"})
    run = start(studio, exp["id"], name="first", config=QUICK)
    assert (run["status"], run["training_type"], run["external"]) == ("pending", "supervised", False)
    assert run["config"]["learning_rate"] == 0.0002 and run["config"]["epochs"] == 1  # experiment < run config
    assert run["config"]["lora_r"] == 16 and "notes" not in run["config"]  # defaults; not an option: left out
    assert set(run["inputs"]) == {"dataset_export", "base_model"}
    export = studio.get(f"/api/artifacts/{run['inputs']['dataset_export'][0]}").json()
    assert export["type"] == "dataset_export" and export["metadata"]["dataset_id"] == demo["id"]
    assert studio.get(f"/api/artifacts/{run['inputs']['base_model'][0]}").json()["type"] == "base_model"

    received, events = streamed(studio, run["id"])  # from the start, while it is queued and then runs
    done = wait_for(studio, run["id"], TERMINAL)
    assert (done["status"], done["exit_code"], done["error"]) == ("completed", 0, None), done
    log = Path(studio.app.state.settings.data_dir) / "runs" / run["id"] / "output.log"  # type: ignore[attr-defined]
    assert received == log.read_bytes()  # every byte, once
    assert events[-1][0] == "end" and json.loads(events[-1][2]) == {"status": "completed", "exit_code": 0}
    assert [int(e[1]) for e in events[:-1]] == sorted(int(e[1]) for e in events[:-1])
    assert b"\r" in received and b"\x1b[" in received  # a terminal's bytes: bars redrawn in place, colours

    # Metrics came from the process's events: the same as its own metrics.jsonl.
    output = Path(done["output_dir"])
    written = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert parse_events(received) == written
    metrics = studio.get(f"/api/runs/{run['id']}/metrics").json()
    assert metrics["adapter_id"] == done["adapter_id"] and metrics["final_loss"] == written[-1]["values"]["final_loss"]
    steps = [e for e in written if e["event"] == "metrics"]
    assert [p["value"] for p in metrics["series"]["loss"]] == [
        e["values"]["loss"] for e in steps if "loss" in e["values"]
    ]

    adapter = studio.get(f"/api/adapters/{done['adapter_id']}").json()
    assert adapter["name"] == "melodies-first" and re.fullmatch(r"\d{4}\.\d\d\.\d\d\.1", adapter["version"])
    assert (
        Path(adapter["storage_path"]) == output / "final" and (output / "final" / "adapter_model.safetensors").is_file()
    )
    assert (adapter["run_id"], adapter["experiment_id"], adapter["training_dataset_id"]) == (
        run["id"], exp["id"], demo["id"])  # fmt: skip
    assert adapter["base_model_id"] == "tiny" and adapter["active"] is False
    assert adapter["training_config"]["hyperparameters"]["learning_rate"] == 0.0002
    assert adapter["metrics"]["final_loss"] == metrics["final_loss"]
    # Registered through the registry's own checks, with its provenance and the run's LoRA facts
    assert adapter["source"] == "run" and adapter["provenance"]["run_id"] == run["id"] and adapter["compatible"]
    assert adapter["lora"]["r"] == run["config"]["lora_r"] and adapter["lora"]["modules"] > 0
    assert [g["name"] for g in adapter["configuration"]][-1] == "Checkpointing"  # supervised: no DPO group
    timeline = studio.get("/api/adapters/versions", params={"name": "melodies-first"}).json()
    assert [v["id"] for v in timeline["versions"]] == [adapter["id"]]
    assert timeline["versions"][0]["final_loss"] == metrics["final_loss"]
    after = studio.get(f"/api/experiments/{exp['id']}").json()
    assert after["status"] == "completed" and after["best_metrics"]["loss"] == min(
        e["values"]["loss"] for e in steps if "loss" in e["values"])  # fmt: skip

    # The log: from an offset, its tail, whole; a viewer that comes back later gets it all, then the end.
    whole = studio.get(f"/api/runs/{run['id']}/logs")
    assert whole.content == log.read_bytes() and whole.headers["x-run-status"] == "completed"
    assert whole.headers["x-log-offset"] == whole.headers["x-log-size"] == str(len(whole.content))
    part = studio.get(f"/api/runs/{run['id']}/logs", params={"offset": 100, "limit": 50})
    assert part.content == whole.content[100:150] and part.headers["x-log-offset"] == "150"
    tail = studio.get(f"/api/runs/{run['id']}/logs", params={"tail": 64})
    assert tail.content == whole.content[-64:] and int(tail.headers["x-log-start"]) == len(whole.content) - 64
    saved = studio.get(f"/api/runs/{run['id']}/logs", params={"download": True})
    assert saved.content == whole.content and "attachment" in saved.headers["content-disposition"]
    again, later = streamed(studio, run["id"])
    assert again == whole.content and later[-1][0] == "end"
    # A second run of the same experiment gets the next version of the day, under its own name.
    second = wait_for(studio, start(studio, exp["id"], name="second", config=QUICK)["id"], TERMINAL)
    assert studio.get(f"/api/adapters/{second['adapter_id']}").json()["name"] == "melodies-second"


def test_sse_resumes_exactly_from_the_last_event_id(studio, demo) -> None:
    exp = experiment(studio, "resume", demo["id"])
    run = start(studio, exp["id"], config=QUICK)
    # Live, the log comes in pieces as the process writes them (banner, model loading, steps…): leave after two.
    first, events = streamed(studio, run["id"], stop_after=2)
    assert [kind for kind, _, _ in events] == ["message", "message"] and int(events[-1][1]) == len(first)
    rest, tail_events = streamed(studio, run["id"], last_event_id=events[-1][1])
    run = wait_for(studio, run["id"], TERMINAL)
    whole = studio.get(f"/api/runs/{run['id']}/logs").content
    assert first + rest == whole and tail_events[-1][0] == "end"
    middle, _ = streamed(studio, run["id"], offset=len(whole) // 2)
    assert middle == whole[len(whole) // 2 :]


def wav(seconds: float, frequency: float) -> bytes:
    t = np.arange(int(seconds * 16_000)) / 16_000
    out = io.BytesIO()
    soundfile.write(out, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), 16_000, format="WAV")
    return out.getvalue()


def test_a_preference_run_trains_with_dpo(studio) -> None:
    pairs = studio.post("/api/datasets", json={"name": "pairs", "type": "preference"}).json()
    for index in range(4):
        files = {"chosen": ("c.wav", wav(1.0, 660 + 50 * index)), "rejected": ("r.wav", wav(1.0, 110 + 20 * index))}
        assert studio.post(f"/api/datasets/{pairs['id']}/items", data={"prompt": f"bright {index}"},
                           files=files).status_code == 201  # fmt: skip
    exp = experiment(studio, "dpo", pairs["id"])
    run = start(studio, exp["id"], config=QUICK)
    assert run["training_type"] == "preference"
    done = wait_for(studio, run["id"], TERMINAL)
    assert done["status"] == "completed", done
    summary = studio.get(f"/api/runs/{run['id']}/metrics").json()["summary"]
    assert "reward_accuracy" in summary or "rewards/accuracy" in summary or any("reward" in k for k in summary)
    trained = studio.get(f"/api/adapters/{done['adapter_id']}").json()
    assert trained["training_config"]["training_type"] == "preference"
    assert [g["name"] for g in trained["configuration"]][-1] == "DPO"
    assert {"reward_accuracy", "reward_margin"} <= set(trained["metrics"]), trained["metrics"]


def test_bad_starts_are_refused_before_any_run_is_made(studio, demo) -> None:
    bare = experiment(studio, "no data", None)
    error = studio.post(f"/api/experiments/{bare['id']}/runs", json={}).json()["error"]
    assert error["code"] == "dataset_required"
    exp = experiment(studio, "bad config", demo["id"])
    response = studio.post(f"/api/experiments/{exp['id']}/runs",
                           json={"config": {"epochs": 0, "lora_r": "big", "nonsense": 1}})  # fmt: skip
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_config"
    problems = response.json()["error"]["details"]["problems"]
    assert any("nonsense" in p for p in problems) and any("lora_r" in p for p in problems)
    archived = experiment(studio, "archived", demo["id"])
    studio.post(f"/api/experiments/{archived['id']}/archive")
    assert studio.post(f"/api/experiments/{archived['id']}/runs", json={}).status_code == 409
    for bad in (bare, exp, archived):
        assert studio.get(f"/api/experiments/{bad['id']}/runs").json()["items"] == []


def test_an_empty_dataset_gives_a_failed_run_saying_so(studio) -> None:
    empty = studio.post("/api/datasets", json={"name": "nothing yet", "type": "supervised"}).json()
    run = start(studio, experiment(studio, "empty", empty["id"])["id"])
    assert (run["status"], run["error"]) == ("failed", "Dataset is empty")
    assert studio.get(f"/api/runs/{run['id']}").json()["status"] == "failed"


def test_a_failing_training_process_fails_the_run_with_its_last_line_and_keeps_its_log(studio, demo) -> None:
    data = Path(studio.app.state.settings.data_dir)  # type: ignore[attr-defined]
    shutil.copytree(data / "models" / "tiny", data / "models" / "broken")
    assert studio.post("/api/models", json={"path": str(data / "models" / "broken")}).status_code == 201
    studio.patch("/api/settings", json={"current_model_id": "broken"})
    (data / "models" / "broken" / "model.safetensors").unlink()  # registered fine; the process cannot load it
    try:
        exp = experiment(studio, "failing", demo["id"])
        run = wait_for(studio, start(studio, exp["id"], config=QUICK)["id"], TERMINAL)
    finally:
        studio.patch("/api/settings", json={"current_model_id": "tiny"})
    assert (run["status"], run["exit_code"], run["adapter_id"]) == ("failed", 2, None), run
    assert run["error"].endswith("has no model.safetensors (exit status 2)"), run["error"]
    assert "\x1b" not in run["error"]
    log = studio.get(f"/api/runs/{run['id']}/logs").content
    assert b"has no model.safetensors" in log
    assert (Path(run["output_dir"]).parent).exists() or not Path(run["output_dir"]).exists()
    assert studio.get(f"/api/experiments/{exp['id']}").json()["status"] == "failed"


def test_cancel_stops_a_running_process_and_takes_a_queued_run_off_the_queue(studio, demo) -> None:
    exp = experiment(studio, "cancelled", demo["id"])
    long = start(studio, exp["id"], config={**QUICK, "epochs": 500})
    queued = start(studio, exp["id"], config=QUICK)  # one run at a time: it waits behind the long one
    running = wait_for(studio, long["id"], {"running"} | TERMINAL)
    assert running["status"] == "running"
    assert studio.get(f"/api/runs/{queued['id']}").json()["status"] == "pending"
    off = studio.post(f"/api/runs/{queued['id']}/cancel")
    assert off.status_code == 200 and off.json()["status"] == "cancelled" and off.json()["exit_code"] is None
    assert not (Path(studio.app.state.settings.data_dir) / "runs" / queued["id"]).exists()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while b"loss=" not in studio.get(f"/api/runs/{long['id']}/logs").content:  # training steps are under way
        assert time.monotonic() < deadline
        time.sleep(0.2)
    stopped = studio.post(f"/api/runs/{long['id']}/cancel").json()
    assert stopped["status"] == "cancelled" and stopped["exit_code"] == 143 and stopped["adapter_id"] is None
    assert studio.get(f"/api/runs/{long['id']}/logs").content  # the log is kept
    assert studio.post(f"/api/runs/{long['id']}/cancel").json()["error"]["code"] == "invalid_status_transition"
    report = studio.post(f"/api/runs/{long['id']}/status", json={"status": "completed"})
    assert report.status_code == 409 and report.json()["error"]["code"] == "run_not_external"
    assert studio.get(f"/api/experiments/{exp['id']}").json()["status"] == "cancelled"
