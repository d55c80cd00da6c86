"""Training survives the server: `kill -9` of a real `tunelab serve` mid-run neither stops nor damages the run; the
next server re-attaches and finishes it, and fails a run whose supervisor is gone as well ("training process lost").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tunelab.training.events import parse_events

pytestmark = pytest.mark.slow


class Server:
    """`tunelab serve --port 0` on a data dir, in a process of its own (so it can be killed with -9)."""

    def __init__(self, data_dir: Path, bootstrap: bool = False):
        env = {**os.environ, "TUNELAB_BOOTSTRAP_MODEL": "1" if bootstrap else "0"}
        self.output: list[str] = []  # what it printed (stdout and stderr) up to its address
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tunelab", "serve", "--data-dir", str(data_dir), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        for line in self.process.stdout:
            self.output.append(line)
            found = re.search(r"running at (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
            assert time.monotonic() < deadline, "the server did not start"
        else:
            raise AssertionError("the server exited before it listened")
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def wait_for(http: httpx.Client, run_id: str, check: Any, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = http.get(f"/api/runs/{run_id}").json()
        if check(run):
            return run
        assert time.monotonic() < deadline, f"run {run_id}: {run['status']}"
        time.sleep(0.2)


def prepared(server: Server, data_dir: Path, tiny_model: Path, name: str) -> str:
    shutil.copytree(tiny_model, data_dir / "models" / "tiny")
    assert server.http.post("/api/models", json={"path": str(data_dir / "models" / "tiny")}).status_code == 201
    demo = server.http.post("/api/datasets/demo").json()
    return str(server.http.post("/api/experiments", json={"name": name, "dataset_id": demo["id"]}).json()["id"])


def log_of(data_dir: Path, run_id: str) -> Path:
    return data_dir / "runs" / run_id / "output.log"


def test_a_run_outlives_a_killed_server_and_its_log_is_whole(tmp_path: Path, tiny_model: Path, servers) -> None:
    data_dir = tmp_path / "data"
    servers.append(first := Server(data_dir))
    experiment = prepared(first, data_dir, tiny_model, "survivor")
    config = {"epochs": 6, "batch_size": 1, "max_audio_seconds": 1, "save_every": 0}
    run = first.http.post(f"/api/experiments/{experiment}/runs", json={"config": config}).json()
    wait_for(first.http, run["id"], lambda r: r["status"] == "running")
    deadline = time.monotonic() + 120
    while b"loss=" not in log_of(data_dir, run["id"]).read_bytes():  # steps are being logged
        assert time.monotonic() < deadline
        time.sleep(0.1)
    first.kill()
    size = log_of(data_dir, run["id"]).stat().st_size
    time.sleep(1.5)
    assert log_of(data_dir, run["id"]).stat().st_size > size  # the training goes on without a server

    servers.append(second := Server(data_dir))
    done = wait_for(second.http, run["id"], lambda r: r["status"] in ("completed", "failed", "cancelled"))
    assert (done["status"], done["exit_code"]) == ("completed", 0), done
    log = log_of(data_dir, run["id"]).read_bytes()
    assert second.http.get(f"/api/runs/{run['id']}/logs").content == log
    # Every event the process wrote is in the log once, in order: the same as its own metrics.jsonl.
    written = [json.loads(line) for line in (Path(done["output_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert parse_events(log) == written
    steps = [e["step"] for e in written if e["event"] == "metrics" and "loss" in e["values"]]
    series = second.http.get(f"/api/runs/{run['id']}/metrics", params={"key": "loss"}).json()["series"]["loss"]
    assert [p["step"] for p in series] == steps  # metrics read again after the restart replaced, never doubled
    assert second.http.get(f"/api/adapters/{done['adapter_id']}").json()["run_id"] == run["id"]


def test_a_run_whose_supervisor_died_too_fails_as_lost_and_keeps_its_log(
    tmp_path: Path, tiny_model: Path, servers
) -> None:
    data_dir = tmp_path / "data"
    servers.append(first := Server(data_dir))
    experiment = prepared(first, data_dir, tiny_model, "lost")
    config = {"epochs": 50, "batch_size": 1, "max_audio_seconds": 1, "save_every": 0}
    run = first.http.post(f"/api/experiments/{experiment}/runs", json={"config": config}).json()
    wait_for(first.http, run["id"], lambda r: r["status"] == "running")
    supervisor_file = data_dir / "runs" / run["id"] / "supervisor.json"
    deadline = time.monotonic() + 60
    while not supervisor_file.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pids = json.loads(supervisor_file.read_text())
    first.kill()
    os.kill(pids["pid"], signal.SIGKILL)  # the machine lost the run: supervisor and training process
    os.killpg(pids["child_pid"], signal.SIGKILL)
    time.sleep(0.5)

    servers.append(second := Server(data_dir))
    lost = second.http.get(f"/api/runs/{run['id']}").json()
    assert (lost["status"], lost["error"], lost["adapter_id"]) == ("failed", "training process lost", None)
    assert log_of(data_dir, run["id"]).exists()
    assert second.http.get(f"/api/experiments/{experiment}").json()["status"] == "failed"


def test_a_first_start_says_it_makes_the_tiny_model_then_serves_it(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", bootstrap=True)
    try:
        said = "".join(server.output)
        assert "INFO:     creating the tiny MusicGen in" in said, said
        assert "INFO:     registered base model tiny-musicgen" in said, said
        assert server.http.get("/api/settings").json()["current_model_id"] == "tiny-musicgen"
    finally:
        server.stop()
