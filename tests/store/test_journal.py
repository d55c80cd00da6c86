"""The metric journal: an acknowledged batch survives any crash, reads see it at once, and DuckDB gets it soon."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tunelab.config import Settings
from tunelab.domain.experiments import ExperimentCreate
from tunelab.domain.metrics import MetricBatch, MetricPoint
from tunelab.domain.runs import RunCreate
from tunelab.services import Services
from tunelab.store import Database


def batch(step: int, value: float = 0.5) -> MetricBatch:
    return MetricBatch(points=[MetricPoint(key=k, value=value, step=step) for k in ("loss", "learning_rate")])


def stored(db: Database, run_id: str) -> list[tuple[str, int, float]]:
    """The points DuckDB holds, read without flushing the journal."""
    with db.read() as con:
        rows = con.execute("SELECT key, step, value FROM metrics WHERE run_id = ? ORDER BY key, step", [run_id])
        return [(k, int(s), float(v)) for k, s, v in rows.fetchall()]


def journal_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".metrics-journal")


def running_run(services: Services) -> str:
    experiment = services.experiments.create(ExperimentCreate(name="journaled"))
    return services.runs.create(experiment.id, RunCreate(external=True)).id


def test_an_appending_batch_waits_in_the_journal_and_a_read_sees_it_at_once(settings: Settings) -> None:
    db = Database(settings.db_path, flush_after=3600)
    services = Services.build(db)
    run_id = running_run(services)

    assert services.runs.ingest(run_id, batch(1)) == 2

    assert stored(db, run_id) == []  # not in DuckDB yet …
    assert journal_path(settings.db_path).stat().st_size > 0  # … but on disk
    assert services.runs.get(run_id).metrics_summary["loss"].count == 1  # summaries know it
    assert [p["step"] for p in json.loads(services.runs.metrics(run_id))["series"]["loss"]] == [1]  # reads flush
    assert stored(db, run_id) == [("learning_rate", 1, 0.5), ("loss", 1, 0.5)]
    assert journal_path(settings.db_path).stat().st_size == 0
    db.close()


def test_the_journal_reaches_duckdb_within_flush_after_in_one_commit(settings: Settings) -> None:
    db = Database(settings.db_path, flush_after=0.2)
    services = Services.build(db)
    run_id = running_run(services)

    for step in range(5):
        services.runs.ingest(run_id, batch(step))
    assert stored(db, run_id) == []
    deadline = time.monotonic() + 5
    while not stored(db, run_id) and time.monotonic() < deadline:
        time.sleep(0.02)

    assert len(stored(db, run_id)) == 10  # the five batches came together
    assert journal_path(settings.db_path).stat().st_size == 0
    db.close()


def test_ending_a_run_or_replacing_points_applies_the_journal_first(settings: Settings) -> None:
    db = Database(settings.db_path, flush_after=3600)
    services = Services.build(db)
    run_id = running_run(services)
    services.runs.ingest(run_id, batch(1, value=0.9))

    services.runs.ingest(run_id, batch(1, value=0.1))  # a resend: replaces the point still in the journal

    assert stored(db, run_id) == [("learning_rate", 1, 0.1), ("loss", 1, 0.1)]
    services.runs.ingest(run_id, batch(2))
    from tunelab.domain.runs import RunStatus, RunStatusUpdate

    services.runs.set_status(run_id, RunStatusUpdate(status=RunStatus.COMPLETED))
    assert [s for k, s, _ in stored(db, run_id) if k == "loss"] == [1, 2]
    db.close()


_CRASHER = """
import os, sys
from pathlib import Path
from tunelab.domain.experiments import ExperimentCreate
from tunelab.domain.metrics import MetricBatch, MetricPoint
from tunelab.domain.runs import RunCreate
from tunelab.services import Services
from tunelab.store import Database

db = Database(Path(sys.argv[1]), flush_after=3600)  # nothing reaches DuckDB before the crash
services = Services.build(db)
experiment = services.experiments.create(ExperimentCreate(name="crashing"))
run = services.runs.create(experiment.id, RunCreate(external=True))
for step in range(20):
    services.runs.ingest(run.id, MetricBatch(points=[MetricPoint(key="loss", value=step / 10, step=step)]))
print(run.id, flush=True)
os._exit(137)  # as kill -9: no close, no flush, no cleanup
"""


def test_batches_acknowledged_before_a_crash_are_applied_when_the_database_opens(settings: Settings) -> None:
    done = subprocess.run([sys.executable, "-c", _CRASHER, str(settings.db_path)], capture_output=True, text=True)
    assert done.returncode == 137, done.stderr
    run_id = done.stdout.strip()
    assert journal_path(settings.db_path).stat().st_size > 0

    db = Database(settings.db_path)

    assert [s for _, s, _ in stored(db, run_id)] == list(range(20))
    assert journal_path(settings.db_path).stat().st_size == 0
    summary = Services.build(db).runs.get(run_id).metrics_summary["loss"]
    assert (summary.count, summary.final) == (20, 1.9)
    db.close()


def test_a_torn_last_line_is_skipped_and_applying_twice_is_applying_once(settings: Settings) -> None:
    done = subprocess.run([sys.executable, "-c", _CRASHER, str(settings.db_path)], capture_output=True, text=True)
    run_id = done.stdout.strip()
    path = journal_path(settings.db_path)
    lines = path.read_bytes()
    # The server died after its commit and before emptying the file, then again halfway through a line.
    db = Database(settings.db_path)
    db.close()
    path.write_bytes(lines + b'{"run_id": "' + run_id.encode() + b'", "keys": ["lo')

    db = Database(settings.db_path)

    assert [s for _, s, _ in stored(db, run_id)] == list(range(20))  # once each, nothing from the torn line
    db.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TUNELAB_") and k != "EXPERIMENT_DB"}
    server = subprocess.Popen(
        [sys.executable, "-m", "tunelab", "serve", "--data-dir", str(data_dir), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError(f"the server did not start: {server.stderr.read() if server.stderr else ''}")


def test_kill_9_of_the_server_during_ingest_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    port = _free_port()
    server = _serve(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    acknowledged: list[int] = []
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            experiment = client.post("/api/experiments", json={"name": "killed"}).json()["id"]
            run_id = client.post(f"/api/experiments/{experiment}/runs", json={"external": True}).json()["id"]

            def log_steps() -> None:
                for step in range(100_000):
                    points = [{"key": "loss", "value": 1 / (step + 1), "step": step}]
                    try:
                        response = client.post(f"/api/runs/{run_id}/metrics", json={"points": points})
                    except httpx.HTTPError:
                        return  # the server is gone
                    if response.status_code == 200:
                        acknowledged.append(step)

            writer = threading.Thread(target=log_steps)
            writer.start()
            while len(acknowledged) < 300:
                time.sleep(0.005)
            server.send_signal(signal.SIGKILL)
            server.wait()
            writer.join()
    finally:
        server.kill()

    server = _serve(tmp_path, port)
    try:
        got = httpx.get(f"{url}/api/runs/{run_id}/metrics", params={"key": "loss"}, timeout=30).json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    steps = [p["step"] for p in got["series"]["loss"]]
    assert set(acknowledged) <= set(steps)  # every acknowledged batch is there, once
    assert steps == sorted(set(steps))
    assert len(acknowledged) >= 300 and got["summary"]["loss"]["count"] == len(steps)


def test_flushes_racing_from_many_threads_insert_each_batch_once(settings: Settings) -> None:
    db = Database(settings.db_path, flush_after=3600)
    services = Services.build(db)
    run_id = running_run(services)
    for round_ in range(5):
        for step in range(round_ * 10, round_ * 10 + 10):
            services.runs.ingest(run_id, batch(step))
        racers = [threading.Thread(target=db.flush_metrics) for _ in range(8)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()

    assert len(stored(db, run_id)) == 2 * 50  # every point once: a flush that lost the race finds nothing waiting
    db.close()
