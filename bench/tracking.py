"""Tracking benchmarks; prints one JSON object.

In process (the store and services): metric ingest points/s, first-page list latency at 10,000 experiments,
one key's history for 50 runs at 1,000,000 points.
Through HTTP, against `tunelab serve` in its own process on loopback: the latency of each kind of small write
(create experiment, create run, end run, a 3-point metric batch), per-step logging points/s from one client,
10,000-point batches, the 50-run history of one key, a downsampled million-point history, the first list page,
and p50/p95 latency of reads and of ingest while 8 clients (4 readers, 4 writers) run at once, back to back
(saturation) and paced below it; then the API
contract's schemathesis session (bench/contract.py) and its summary (requests, failures: target 0).
Every timing is a median (and p95 where said) of many repeats; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute

from tunelab.config import Settings
from tunelab.domain.common import utcnow
from tunelab.domain.experiments import ExperimentCreate, ExperimentFilter
from tunelab.domain.runs import RunCreate
from tunelab.services import Services
from tunelab.store import Database
from tunelab.store import metrics as metric_store


def timings_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    return statistics.median(timings_ms(fn, repeats))


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)


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


def seed_experiments(services: Services, count: int) -> None:
    now = utcnow()
    with services.db.transaction() as con:
        con.execute(
            "INSERT INTO experiments (id, name, status, created_at, updated_at, git_commit, engine_version) "
            "SELECT 'bench-' || i, 'experiment ' || i, CASE WHEN i % 10 = 0 THEN 'archived' ELSE 'completed' END, "
            "?::TIMESTAMP - to_seconds(i), ?::TIMESTAMP, 'abc', '0.1.0' FROM range(?) t(i)",
            [now, now, count],
        )


def in_process_figures(services: Services, args: argparse.Namespace) -> dict[str, Any]:
    """Store-level figures; leaves behind the runs the HTTP figures read (50 runs x 20 keys, one 1M-point run)."""
    experiment = services.experiments.create(ExperimentCreate(name="bench"))
    run = services.runs.create(experiment.id, RunCreate(external=True))
    table = points_table([run.id], keys=10, steps=10_000)  # 100,000 points a batch
    batches = iter(range(10**9))

    def ingest() -> None:
        steps = pa.compute.add(table.column("step"), next(batches) * 10_000)  # each batch its own steps
        with services.db.transaction() as con:
            metric_store.insert_table(con, table.set_column(2, "step", steps))

    store_rate = table.num_rows / (median_ms(ingest, args.repeats) / 1000)
    seed_experiments(services, args.experiments)
    runs = [services.runs.create(experiment.id, RunCreate(external=True)).id for _ in range(50)]
    steps = args.history_points // (50 * 20)
    with services.db.transaction() as con:
        metric_store.insert_table(con, points_table(runs, keys=20, steps=steps))

    def history() -> None:
        with services.db.read() as con:
            metric_store.history_json(con, runs, "metric_3")

    big = services.runs.create(experiment.id, RunCreate(external=True)).id
    with services.db.transaction() as con:
        metric_store.insert_table(con, points_table([big], keys=1, steps=args.history_points))
    return {
        "figures": {
            "ingest_points_per_s_store": round(store_rate),
            "list_first_page_ms": {
                "experiments": args.experiments,
                "service_ms": round(
                    median_ms(lambda: services.experiments.list_page(ExperimentFilter(page_size=50)), args.repeats * 4),
                    2,
                ),
            },
            "history_one_key_50_runs_store_ms": {
                "points": 50 * steps,
                "ms": round(median_ms(history, args.repeats * 4), 2),
            },
        },  # fmt: skip
        "experiment_id": experiment.id,
        "history_runs": runs,
        "big_run": big,
    }


@contextmanager
def served(data_dir: Path) -> Iterator[str]:
    """`tunelab serve` in its own process, as users run it: the client's work does not share its GIL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TUNELAB_") and k != "EXPERIMENT_DB"}
    command = [sys.executable, "-m", "tunelab", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def check(response: httpx.Response) -> httpx.Response:
    assert response.is_success, f"{response.request.method} {response.request.url}: {response.text[:300]}"
    return response


def small_writes(client: httpx.Client, repeats: int) -> dict[str, float]:
    """Median ms of each kind of small write, one client, keep-alive connection."""
    serial = iter(range(10**9))
    experiment = check(client.post("/api/experiments", json={"name": "small-writes"})).json()["id"]

    def create_experiment() -> None:
        check(client.post("/api/experiments", json={"name": f"small-{next(serial)}"}))

    runs: list[str] = []

    def create_run() -> None:
        runs.append(check(client.post(f"/api/experiments/{experiment}/runs", json={"external": True})).json()["id"])

    ended = iter(range(10**9))

    def end_run() -> None:
        check(client.post(f"/api/runs/{runs[next(ended)]}/status", json={"status": "completed"}))

    run = check(client.post(f"/api/experiments/{experiment}/runs", json={"external": True})).json()["id"]
    step = iter(range(10**9))

    def batch() -> None:
        s = next(step)
        points = [{"key": key, "value": 1.0 / (s + 1), "step": s} for key in ("loss", "learning_rate", "grad_norm")]
        check(client.post(f"/api/runs/{run}/metrics", json={"points": points}))

    out = {}
    for name, fn in [("create_experiment", create_experiment), ("create_run", create_run), ("end_run", end_run),
                     ("metric_batch_3_points", batch)]:  # fmt: skip
        fn()  # warm up
        out[name] = round(median_ms(fn, repeats), 2)
    return out


def per_step_logging(client: httpx.Client, experiment: str, steps: int) -> float:
    """Points/s of a training loop that posts its 3 metrics at every step and waits for each answer."""
    run = check(client.post(f"/api/experiments/{experiment}/runs", json={"external": True})).json()["id"]
    start = time.perf_counter()
    for s in range(steps):
        points = [{"key": key, "value": 1.0 / (s + 1), "step": s} for key in ("loss", "learning_rate", "grad_norm")]
        check(client.post(f"/api/runs/{run}/metrics", json={"points": points}))
    return 3 * steps / (time.perf_counter() - start)


def big_batches(client: httpx.Client, experiment: str, repeats: int) -> float:
    run = check(client.post(f"/api/experiments/{experiment}/runs", json={"external": True})).json()["id"]
    step = iter(range(10**9))

    def post() -> None:
        base = next(step) * 1000
        body = {"points": [{"key": f"m{i % 10}", "value": i * 0.001, "step": base + i // 10} for i in range(10_000)]}
        check(client.post(f"/api/runs/{run}/metrics", content=json.dumps(body).encode(),
                          headers={"content-type": "application/json"}))  # fmt: skip

    return 10_000 / (median_ms(post, repeats) / 1000)


def _paced(stop: float, period: float | None, request: Callable[[int], None]) -> list[float]:
    """Latencies of `request(i)` until `stop`: back to back (period None), or one due every `period` seconds on a
    fixed schedule, each timed from when it was due (a late one counts its wait: no coordinated omission)."""
    samples = []
    i = 0
    due = time.perf_counter()
    while time.time() < stop:
        if period is not None:
            time.sleep(max(0.0, due - time.perf_counter()))
        start = time.perf_counter() if period is None else due
        request(i)
        samples.append((time.perf_counter() - start) * 1000)
        due += period or 0.0
        i += 1
    return samples


def _reader(url: str, paths: list[str], first: int, stop: float, period: float | None) -> list[float]:
    with httpx.Client(base_url=url, timeout=30) as client:

        def get(i: int) -> None:
            check(client.get(paths[(first + i) % len(paths)]))

        return _paced(stop, period, get)


def _writer(url: str, run_id: str, stop: float, period: float | None) -> list[float]:
    with httpx.Client(base_url=url, timeout=30) as client:

        def post(step: int) -> None:
            points = [
                {"key": k, "value": 1.0 / (step + 1), "step": step} for k in ("loss", "learning_rate", "grad_norm")
            ]
            check(client.post(f"/api/runs/{run_id}/metrics", json={"points": points}))

        return _paced(stop, period, post)


def concurrent(
    url: str,
    experiment: str,
    read_paths: list[str],
    seconds: float,
    read_every: float | None = None,
    write_every: float | None = None,
) -> dict[str, Any]:
    """4 readers and 4 writers (3-point batches, each on its own run) at once for `seconds`, each client in a
    process of its own, so that the clients' own Python does not queue them behind one another. Back to back
    (closed loop: the latency is the server's queue at saturation, 8 requests / its throughput), or each client at
    its own pace: readers polling every `read_every` s, writers logging a step every `write_every` s."""
    import multiprocessing

    with httpx.Client(base_url=url, timeout=30) as setup:
        runs = [check(setup.post(f"/api/experiments/{experiment}/runs", json={"external": True})).json()["id"]
                for _ in range(4)]  # fmt: skip
    stop = time.time() + 2 + seconds  # wall clock: shared by the processes; 2 s to start them
    with multiprocessing.get_context("fork").Pool(8) as pool:
        readers = [pool.apply_async(_reader, (url, read_paths, n, stop, read_every)) for n in range(4)]
        writers = [pool.apply_async(_writer, (url, run, stop, write_every)) for run in runs]
        reads = [x for job in readers for x in job.get()]
        writes = [x for job in writers for x in job.get()]
    return {
        "clients": 8,
        "pace": "closed loop" if read_every is None else
                f"each reader every {read_every * 1000:g} ms, each writer every {write_every * 1000:g} ms",  # type: ignore[operator]
        "requests_per_s": round((len(reads) + len(writes)) / seconds),
        "reads": {"count": len(reads), "p50_ms": round(statistics.median(reads), 2), "p95_ms": round(p95(reads), 2)},
        "ingest": {"count": len(writes), "p50_ms": round(statistics.median(writes), 2),
                   "p95_ms": round(p95(writes), 2)},
        "read_paths": read_paths,
    }  # fmt: skip


def writes_during_big_reads(url: str, experiment: str, big_path: str, seconds: float) -> dict[str, Any]:
    """3-point batch latency while another client reads a million-point series whole, again and again (it used
    to hold the one lock for seconds, and every writer waited)."""
    stop = time.monotonic() + seconds
    reads: list[float] = []
    writes: list[float] = []

    def reader() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while time.monotonic() < stop:
                start = time.perf_counter()
                check(client.get(big_path))
                reads.append((time.perf_counter() - start) * 1000)

    thread = threading.Thread(target=reader)
    thread.start()
    with httpx.Client(base_url=url, timeout=30) as client:
        run = check(client.post(f"/api/experiments/{experiment}/runs", json={"external": True})).json()["id"]
        s = 0
        while time.monotonic() < stop:
            points = [{"key": k, "value": 1.0, "step": s} for k in ("loss", "learning_rate", "grad_norm")]
            start = time.perf_counter()
            check(client.post(f"/api/runs/{run}/metrics", json={"points": points}))
            writes.append((time.perf_counter() - start) * 1000)
            s += 1
    thread.join()
    return {
        "big_read": {"path": big_path, "count": len(reads), "p50_ms": round(statistics.median(reads), 1)},
        "writes": {"count": len(writes), "p50_ms": round(statistics.median(writes), 2), "p95_ms": round(p95(writes), 2),
                   "max_ms": round(max(writes), 2)},
    }  # fmt: skip


def http_figures(url: str, seeded: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    experiment = seeded["experiment_id"]
    history_path = f"/api/runs/metrics?ids={','.join(seeded['history_runs'])}&key=metric_3"
    downsampled = f"/api/runs/{seeded['big_run']}/metrics?key=metric_0&max_points=1000"
    with httpx.Client(base_url=url, timeout=120) as client:
        history = check(client.get(history_path)).json()
        assert sum(len(series["steps"]) for series in history["runs"].values()) == args.history_points // 20
        figures: dict[str, Any] = {
            "small_write_ms": small_writes(client, args.repeats * 40),
            "per_step_logging_points_per_s": round(per_step_logging(client, experiment, args.repeats * 60)),
            "ingest_points_per_s_http_10k_batches": round(big_batches(client, experiment, args.repeats)),
            "history_one_key_50_runs_http_ms": {
                "points": args.history_points // 20,
                "ms": round(median_ms(lambda: check(client.get(history_path)), args.repeats * 4), 2),
            },
            "downsampled_history_http_ms": {
                "points": args.history_points,
                "max_points": 1000,
                "first_ms": round(timings_ms(lambda: check(client.get(downsampled)), 1)[0], 2),  # tiles computed
                "ms": round(median_ms(lambda: check(client.get(downsampled)), args.repeats * 4), 2),
            },
            "list_first_page_http_ms": round(
                median_ms(lambda: check(client.get("/api/experiments?page_size=50")), args.repeats * 4), 2
            ),
        }
    # What pages poll while training runs: an experiment's list, one experiment with its runs, a run, a run's
    # loss curve (1,000 points). The heavy reads (a million-point series) have their own figures below.
    small_run = seeded["history_runs"][0]
    reads = ["/api/experiments?page_size=50", f"/api/experiments/{experiment}", f"/api/runs/{small_run}",
             f"/api/runs/{small_run}/metrics?key=metric_3"]  # fmt: skip
    figures["concurrent_8_clients"] = concurrent(url, experiment, reads, args.concurrent_seconds)
    # Paced below saturation: pages polling 10 times a second, training loops logging 20 steps a second.
    figures["concurrent_8_clients_paced"] = concurrent(url, experiment, reads, args.concurrent_seconds, 0.1, 0.05)
    whole = f"/api/runs/{seeded['big_run']}/metrics?key=metric_0&limit={args.history_points}"
    figures["writes_during_whole_1m_point_reads"] = writes_during_big_reads(
        url, experiment, whole, args.concurrent_seconds
    )
    return figures


def contract_summary() -> dict[str, Any]:
    """The same session as bench/contract.py and the test that gates on it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.api.contract_run import MAX_EXAMPLES, SEED, run_contract

    with tempfile.TemporaryDirectory() as tmp:
        return run_contract(Path(tmp) / "data", seed=SEED, max_examples=MAX_EXAMPLES).summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--history-points", type=int, default=1_000_000)
    parser.add_argument("--concurrent-seconds", type=float, default=10.0)
    parser.add_argument("--no-contract", action="store_true", help="skip the schemathesis session (~2 minutes)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        # Both paths explicit: TUNELAB_DB or EXPERIMENT_DB in the environment must not send the bench to a real DB.
        settings = Settings(data_dir=data_dir, db=data_dir / "tunelab.duckdb")
        db = Database(settings.db_path)
        seeded = in_process_figures(Services.build(db), args)
        db.close()
        with served(data_dir) as url:
            figures = {**seeded["figures"], **http_figures(url, seeded, args)}
    figures["list_first_page_ms"]["http_ms"] = figures.pop("list_first_page_http_ms")
    if not args.no_contract:
        figures["schemathesis"] = contract_summary()
    print(
        json.dumps(
            {
                **figures,
                "bench_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "repeats": args.repeats,
                "statistic": "median unless p95 is named",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
