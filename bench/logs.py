"""Live training logs, measured through a real server (uvicorn on loopback) and the real supervisor and PTY.

Prints JSON:
- `line_latency_ms`: from a process writing a line (its own clock, in the line) to an SSE client receiving it,
  p50/p95, with 1 and with 200 viewers of the same run (targets: p50 <= 5 ms with 1, <= 50 ms with 200);
- `sustained`: a process printing tqdm-style lines as fast as it can for a few seconds: MB/s the server followed
  (the file's size over the time from the first byte to the run's end), the server process's CPU, and whether the
  bytes an SSE viewer received equal the file;
- `start_ms`: `POST /api/experiments/{id}/runs` to the training process started (its supervisor's record of the
  spawn), model load excluded (target <= 200 ms);
- `first_screen_1gb_ms`: a run page whose log is 1 GB, in Debian chromium, to the terminal's first bytes
  (target <= 1 s); skipped with a note when chromium is missing.

The writer runs in place of the training command (a bench executor passes the server's command to the local
executor with another argv); everything else is TuneLab's own path: scheduler, supervisor, follower, SSE.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.web.live import serve  # noqa: E402

from tunelab.app import create_app  # noqa: E402
from tunelab.config import Settings  # noqa: E402
from tunelab.executors.base import Command  # noqa: E402
from tunelab.executors.local import LocalExecutor, LocalHandle  # noqa: E402

TICKER = """
import sys, time
count, every = int(sys.argv[1]), float(sys.argv[2])
time.sleep(6.0)  # the viewers (a process of their own) connect first
for i in range(count):
    sys.stdout.write(f"tick {i} {time.time_ns()}\\n"); sys.stdout.flush()
    time.sleep(every)
"""
FLOOD = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
i = 0
while time.monotonic() < end:
    sys.stdout.write(f"\\rtraining:  {i % 100:3d}%|{'#' * (i % 50):<50}| {i}/999999 [00:01<00:02, 123.45it/s, loss={1 / (i + 1):.4f}]")
    i += 1
sys.stdout.write("\\n"); sys.stdout.flush()
"""
BIG = """
import sys
line = ("\\x1b[32minfo\\x1b[0m " + "x" * 90 + "\\n").encode()
block = line * ((1 << 20) // len(line) + 1)
out = open(sys.argv[2], "ab")
written = 0
while written < int(sys.argv[1]):
    out.write(block); written += len(block)
out.close()
print("done")
"""


class BenchExecutor(LocalExecutor):
    """The local executor (supervisor, PTY, files) running the bench's writer instead of the training command."""

    argv: list[str] = []

    def start(self, run_id: str, command: Command) -> LocalHandle:
        argv = [a.replace("{log}", str(self.runs_dir / run_id / "output.log")) for a in self.argv]
        return super().start(run_id, Command(argv=argv, env=command.env, cwd=command.cwd))


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)


async def viewer(url: str, run_id: str, latencies: list[float]) -> bytes:
    received = b""
    pending = b""
    async with (
        httpx.AsyncClient(base_url=url, timeout=None) as client,
        client.stream("GET", f"/api/runs/{run_id}/logs/stream") as response,
    ):
        event = "message"
        async for line in response.aiter_lines():
            now = time.time_ns()
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "message":
                chunk = base64.b64decode(line.split(":", 1)[1].strip())
                received += chunk
                pending += chunk
                if b"\n" not in chunk:
                    pending = pending[-256:]  # a line being redrawn with \r holds no tick to time
                    continue
                *whole, pending = pending.split(b"\n")
                for text in whole:
                    parts = text.strip().split()
                    if len(parts) == 3 and parts[0] == b"tick":
                        latencies.append((now - int(parts[2])) / 1e6)
            elif line.startswith("data:") and event == "end":
                return received
            elif line == "":
                event = "message"
    return received


def watch(url: str, run_id: str, viewers: int) -> tuple[list[float], bytes]:
    """`viewers` SSE clients of the run (in this process); their line latencies and the first one's bytes."""
    samples: list[float] = []

    async def main() -> list[bytes]:
        return await asyncio.gather(*(viewer(url, run_id, samples) for _ in range(viewers)))

    received = asyncio.run(main())
    return samples, received[0]


def start_run(http: httpx.Client, experiment_id: str) -> dict[str, Any]:
    response = http.post(f"/api/experiments/{experiment_id}/runs", json={"config": {"epochs": 1}})
    response.raise_for_status()
    return dict(response.json())


def wait_ended(http: httpx.Client, run_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = http.get(f"/api/runs/{run_id}").json()
        if run["status"] in ("completed", "failed", "cancelled"):
            return dict(run)
        time.sleep(0.05)
    raise TimeoutError(run_id)


def latency(url: str, http: httpx.Client, experiment: str, viewers: int, lines: int) -> dict[str, Any]:
    BenchExecutor.argv = [sys.executable, "-c", TICKER, str(lines), "0.02"]
    run = start_run(http, experiment)
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # the viewers' CPU is not the server's
        samples = pool.apply(watch, (url, run["id"], viewers))[0]
    wait_ended(http, run["id"])
    return {"viewers": viewers, "lines": lines, "samples": len(samples), "p50_ms": round(statistics.median(samples), 2),
            "p95_ms": round(p95(samples), 2)}  # fmt: skip


def sustained(url: str, http: httpx.Client, experiment: str, data_dir: Path, seconds: float) -> dict[str, Any]:
    BenchExecutor.argv = [sys.executable, "-c", FLOOD, str(seconds)]
    cpu = os.times()
    run = start_run(http, experiment)
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        received = pool.apply(watch, (url, run["id"], 1))[1]
    ended = wait_ended(http, run["id"])
    viewed = time.monotonic() - started
    after = os.times()
    log = (data_dir / "runs" / run["id"] / "output.log").read_bytes()
    # Followed: from the process's start to the run's end, which the server records once every byte is read.
    took = (datetime.fromisoformat(ended["completed_at"]) - datetime.fromisoformat(ended["started_at"])).total_seconds()
    return {"seconds": round(took, 2), "viewer_seconds": round(viewed, 2), "mb": round(len(log) / 1e6, 1),
            "mb_per_s": round(len(log) / 1e6 / took, 1),
            "server_cpu_s": round((after.user + after.system) - (cpu.user + cpu.system), 2),
            "viewer_bytes_equal_file": received == log}  # fmt: skip


def start_latency(http: httpx.Client, experiment: str, data_dir: Path, repeats: int) -> dict[str, Any]:
    BenchExecutor.argv = [sys.executable, "-c", "print('started')"]
    samples = []
    for _ in range(repeats):
        began = time.time()
        run = start_run(http, experiment)
        record = data_dir / "runs" / run["id"] / "supervisor.json"
        while not record.exists():
            time.sleep(0.001)
        spawned = json.loads(record.read_text())["started_at"]
        samples.append((time.mktime(time.strptime(spawned[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
                        + float("0" + spawned[19:-1]) - began) * 1000)  # fmt: skip
        wait_ended(http, run["id"])
    return {"repeats": repeats, "p50_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1)}


def first_screen(url: str, http: httpx.Client, experiment: str, size: int) -> dict[str, Any]:
    if not Path("/usr/bin/chromium").exists():
        return {"skipped": "needs /usr/bin/chromium"}
    from playwright.sync_api import sync_playwright

    BenchExecutor.argv = [sys.executable, "-c", BIG, str(size), "{log}"]
    run = start_run(http, experiment)
    wait_ended(http, run["id"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        samples = []
        for _ in range(3):
            began = time.monotonic()
            page.goto(f"{url}/runs/{run['id']}")
            page.wait_for_function("Number(document.querySelector('[data-testid=terminal]')?.dataset.bytes || 0) > 0")
            samples.append((time.monotonic() - began) * 1000)
        browser.close()
    actual = int(http.get(f"/api/runs/{run['id']}/logs", params={"tail": 1}).headers["x-log-size"])
    return {"log_bytes": actual, "ms": round(statistics.median(samples), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200, help="lines written for each latency figure")
    parser.add_argument("--flood-seconds", type=float, default=5.0)
    parser.add_argument("--big-log-bytes", type=int, default=1 << 30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        settings = Settings(data_dir=data_dir, bootstrap_model=False, max_concurrent_runs=4)
        from tunelab.musicgen.tiny import create_tiny_musicgen

        create_tiny_musicgen(data_dir / "models" / "tiny")
        with serve(create_app(settings, BenchExecutor(data_dir / "runs"))) as server:
            http = server.api
            http.post("/api/models", json={"path": str(data_dir / "models" / "tiny")}).raise_for_status()
            demo = http.post("/api/datasets/demo").json()
            experiment = http.post("/api/experiments", json={"name": "bench", "dataset_id": demo["id"]}).json()["id"]
            figures = {
                "line_latency_ms": [latency(server.url, http, experiment, n, args.lines) for n in (1, 200)],
                "sustained": sustained(server.url, http, experiment, data_dir, args.flood_seconds),
                "start_ms": start_latency(http, experiment, data_dir, 10),
                "first_screen_1gb_ms": first_screen(server.url, http, experiment, args.big_log_bytes),
                "statistic": "median unless p95 or max is named",
            }
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
