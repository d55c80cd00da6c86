"""Tracking benchmarks; prints one JSON object.

Figures: metric ingest points/s through the store and through the HTTP batch endpoint, first-page list
latency at 10,000 experiments, full history of one key for 50 runs at 1,000,000 points, peak memory.
Each timing is the median of several repeats.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import uvicorn
from fastapi import FastAPI

from tunelab.api.app import create_app
from tunelab.config import Settings
from tunelab.domain.common import utcnow
from tunelab.domain.experiments import ExperimentCreate, ExperimentFilter
from tunelab.domain.runs import RunCreate
from tunelab.services import Services
from tunelab.store import metrics as metric_store


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def points_table(run_ids: list[str], keys: int, steps: int) -> pa.Table:
    n = len(run_ids) * keys * steps
    base = datetime(2026, 1, 1)
    return pa.table(
        {
            "run_id": pa.array([r for r in run_ids for _ in range(keys * steps)]),
            "key": pa.array([f"metric_{k}" for _ in run_ids for k in range(keys) for _ in range(steps)]),
            "step": pa.array([s for _ in run_ids for _ in range(keys) for s in range(steps)], pa.int64()),
            "value": pa.array([float(i % 997) / 997 for i in range(n)], pa.float64()),
            "ts": pa.array([base + timedelta(seconds=s) for _ in run_ids for _ in range(keys) for s in range(steps)],
                           pa.timestamp("us")),
        }
    )  # fmt: skip


def bench_store_ingest(services: Services, run_id: str, repeats: int) -> float:
    table = points_table([run_id], keys=10, steps=10_000)  # 100,000 points a batch

    def ingest() -> None:
        with services.db.transaction() as con:
            metric_store.insert_table(con, table)

    return table.num_rows / (median_ms(ingest, repeats) / 1000)


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """A real uvicorn server on loopback, so HTTP figures include the network stack and JSON parsing."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def bench_http_ingest(client: httpx.Client, run_id: str, repeats: int) -> float:
    body = {"points": [{"key": f"m{i % 10}", "value": i * 0.001, "step": i // 10} for i in range(10_000)]}
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json"}

    def post() -> None:
        response = client.post(f"/api/runs/{run_id}/metrics", content=raw, headers=headers)
        assert response.status_code == 200, response.text

    return 10_000 / (median_ms(post, repeats) / 1000)


def seed_experiments(services: Services, count: int) -> None:
    now = utcnow()
    with services.db.transaction() as con:
        con.execute(
            "INSERT INTO experiments (id, name, status, created_at, updated_at, git_commit, engine_version) "
            "SELECT 'bench-' || i, 'experiment ' || i, CASE WHEN i % 10 = 0 THEN 'archived' ELSE 'completed' END, "
            "?::TIMESTAMP - to_seconds(i), ?::TIMESTAMP, 'abc', '0.1.0' FROM range(?) t(i)",
            [now, now, count],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--history-points", type=int, default=1_000_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        # Both paths explicit: TUNELAB_DB or EXPERIMENT_DB in the environment must not send the bench to a real DB.
        app = create_app(Settings(data_dir=Path(tmp), db=Path(tmp) / "bench.duckdb"))
        services: Services = app.state.services
        with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            experiment = services.experiments.create(ExperimentCreate(name="bench"))
            run = services.runs.create(experiment.id, RunCreate(external=True))
            store_rate = bench_store_ingest(services, run.id, args.repeats)
            http_rate = bench_http_ingest(client, run.id, args.repeats)

            seed_experiments(services, args.experiments)
            list_ms = median_ms(
                lambda: services.experiments.list_page(ExperimentFilter(page_size=50)), args.repeats * 4
            )
            http_list_ms = median_ms(lambda: client.get("/api/experiments?page_size=50"), args.repeats * 4)

            # 50 runs x 20 keys x 1000 steps = 1,000,000 points; read one key's full history for all 50.
            runs = [services.runs.create(experiment.id, RunCreate(external=True)).id for _ in range(50)]
            steps = args.history_points // (50 * 20)
            with services.db.transaction() as con:
                metric_store.insert_table(con, points_table(runs, keys=20, steps=steps))

            def history() -> None:
                with services.db.read() as con:
                    metric_store.history(con, runs, "metric_3")

            history_ms = median_ms(history, args.repeats * 4)

    print(
        json.dumps(
            {
                "ingest_points_per_s_store": round(store_rate),
                "ingest_points_per_s_http": round(http_rate),
                "list_first_page_ms_at_experiments": {"experiments": args.experiments, "service_ms": round(list_ms, 2),
                                                      "http_ms": round(http_list_ms, 2)},
                "history_one_key_50_runs_ms": {"points": 50 * 20 * steps, "ms": round(history_ms, 2)},
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "repeats": args.repeats,
                "statistic": "median",
            },
            indent=2,
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
