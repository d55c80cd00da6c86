"""The generation worker: `python -m tunelab.generation.worker --model DIR [--cache-mb N]`.

The server starts it (never generates itself) and talks to it by JSON lines: requests on stdin, events on stdout;
the worker's own log goes to stderr. It loads the base model once, then:

- `{"op": "generate", "job": {id, prompt, duration_s, seed, guidance_scale, adapter_id, adapter_path, output}}`:
  jobs that arrive within a few milliseconds of each other (an A/B pair, several users) are batched, by length and
  guidance scale, across adapters; each clip is written as 16-bit WAV to `output` (whole, then renamed).
- `{"op": "preload", "adapter_id", "adapter_path"}`: load an adapter that was activated, if the cache has room.
- `{"op": "stop"}` (or stdin closing): finish what is held and exit.

Events: `ready` (model facts, load time), `started` (job ids of a batch), `completed` (id, sample rate, duration,
timings), `failed` (id, error), `preloaded`, and `fatal` (the model cannot be loaded; the worker exits 3).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

BATCH_WINDOW_S = 0.01  # after the first job, how long to wait for others to join its batch
MAX_BATCH = 16
IDLE_S = 0.2  # quiet this long, the worker prepares a spare adapter slot (see Engine.prepare_spare)
log = logging.getLogger("tunelab.generation.worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunelab.generation.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="the base model folder (or hub id) to load")
    parser.add_argument("--cache-mb", type=float, default=512.0, help="memory budget of the adapter cache")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (0: half the cores, at least 1, so the server keeps some)")  # fmt: skip
    parser.add_argument("--batch-window-ms", type=float, default=BATCH_WINDOW_S * 1000)
    args = parser.parse_args(argv)
    events = _protocol_stream()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    emit = _emitter(events)
    import torch
    from transformers.utils import logging as hf_logging

    from tunelab.generation.engine import Engine

    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) // 2))
    hf_logging.set_verbosity_error()  # the tiny model's pad id warnings, on every load
    hf_logging.disable_progress_bar()

    try:
        engine = Engine.load(args.model, int(args.cache_mb * 1024 * 1024))
    except Exception as error:  # the model cannot be used: say why, and let the server fail the jobs
        emit({"event": "fatal", "error": f"cannot load base model {args.model}: {error}"})
        return 3
    log.info("loaded %s on %s in %.2f s", args.model, engine.device, engine.load_s)
    emit({"event": "ready", "model": args.model, "device": str(engine.device), "sample_rate": engine.sample_rate,
          "frame_rate": engine.frame_rate, "load_s": round(engine.load_s, 4), "pid": os.getpid()})  # fmt: skip
    inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(target=_read_requests, args=(sys.stdin.buffer, inbox), daemon=True).start()
    Worker(engine, emit, args.batch_window_ms / 1000).serve(inbox)
    return 0


class Worker:
    def __init__(self, engine: Any, emit: Any, window_s: float) -> None:
        self.engine = engine
        self.emit = emit
        self.window_s = window_s

    def serve(self, inbox: queue.Queue[dict[str, Any] | None]) -> None:
        while True:
            message = self._next(inbox)
            if message is None or message.get("op") == "stop":
                return
            if message.get("op") == "preload":
                self._preload(message)
                continue
            jobs = [message["job"]]
            deadline = time.monotonic() + self.window_s
            stop = False
            while len(jobs) < MAX_BATCH:
                try:
                    more = inbox.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if more is None or more.get("op") == "stop":
                    stop = True
                    break
                if more.get("op") == "preload":
                    self._preload(more)
                else:
                    jobs.append(more["job"])
            self.run(jobs)
            if stop:
                return

    def _next(self, inbox: queue.Queue[dict[str, Any] | None]) -> dict[str, Any] | None:
        """The next message; while none comes, the engine prepares a spare adapter slot, one at a time."""
        while True:
            try:
                return inbox.get(timeout=IDLE_S)
            except queue.Empty:
                pass
            try:
                if self.engine.prepare_spare():
                    continue
            except Exception as error:  # a spare is an optimisation: never a reason to stop serving
                log.warning("could not prepare a spare adapter slot: %s", error)
            return inbox.get()

    def _preload(self, message: dict[str, Any]) -> None:
        try:
            loaded, seconds = self.engine.preload(message["adapter_id"], message["adapter_path"])
        except Exception as error:
            log.warning("could not preload adapter %s: %s", message.get("adapter_id"), error)
            self.emit({"event": "preloaded", "adapter_id": message.get("adapter_id"), "loaded": False,
                       "error": str(error)})  # fmt: skip
            return
        self.emit({"event": "preloaded", "adapter_id": message["adapter_id"], "loaded": loaded,
                   "load_s": round(seconds, 4), "cache": self.cache_state()})  # fmt: skip

    def cache_state(self) -> dict[str, Any]:
        cache = self.engine.cache
        return {"adapters": cache.ids(), "used_bytes": cache.used_bytes, "budget_bytes": cache.budget_bytes,
                "loads": cache.loads, "evictions": cache.evictions}  # fmt: skip

    def run(self, jobs: list[dict[str, Any]]) -> None:
        """Every job of `jobs`, batched by length and guidance scale; each ends `completed` or `failed`."""
        from tunelab.generation.engine import Request

        groups: dict[tuple[int, float | None], list[tuple[Request, dict[str, Any]]]] = defaultdict(list)
        for job in jobs:
            request = Request(id=job["id"], prompt=job["prompt"], duration_s=float(job["duration_s"]),
                              seed=int(job["seed"]), guidance_scale=job.get("guidance_scale"),
                              adapter_id=job.get("adapter_id"), adapter_path=job.get("adapter_path"))  # fmt: skip
            groups[request.batch_key(self.engine.frames(request.duration_s))].append((request, job))
        for group in groups.values():
            self._run_batch(self._loadable(group))

    def _loadable(self, group: list[tuple[Any, dict[str, Any]]]) -> list[tuple[Any, dict[str, Any]]]:
        """The jobs whose adapter loads; the others fail alone, with the reason."""
        kept = []
        cache = self.engine.cache
        for request, job in group:
            if request.adapter_id and request.adapter_id not in cache:
                # with the group's adapters loaded so far, so that making room for this one does not evict them
                batch = {r.adapter_id: r.adapter_path for r, _ in group if r.adapter_id in cache}
                try:
                    cache.use([*batch.items(), (request.adapter_id, request.adapter_path)])
                except Exception as error:
                    self.emit({"event": "failed", "id": request.id, "error": f"cannot load adapter: {error}"})
                    continue
            kept.append((request, job))
        return kept

    def _run_batch(self, group: list[tuple[Any, dict[str, Any]]]) -> None:
        if not group:
            return
        import soundfile

        requests = [request for request, _ in group]
        self.emit({"event": "started", "ids": [r.id for r in requests], "batch_size": len(requests)})
        try:
            result = self.engine.generate(requests)
        except Exception as error:
            log.exception("generation failed")
            for request in requests:
                self.emit({"event": "failed", "id": request.id, "error": f"generation failed: {error}"})
            return
        for (request, job), clip in zip(group, result.audio, strict=True):
            started = time.perf_counter()
            try:
                output = Path(job["output"])
                partial = output.with_name(output.name + ".partial")
                soundfile.write(str(partial), clip, self.engine.sample_rate, subtype="PCM_16", format="WAV")
                os.replace(partial, output)
            except Exception as error:
                self.emit({"event": "failed", "id": request.id, "error": f"cannot write the audio: {error}"})
                continue
            timings = {"load_s": round(result.load_s, 4), "generate_s": round(result.generate_s, 4),
                       "write_s": round(time.perf_counter() - started, 4), "batch_size": len(requests)}  # fmt: skip
            self.emit({"event": "completed", "id": request.id, "sample_rate": self.engine.sample_rate,
                       "duration_s": round(len(clip) / self.engine.sample_rate, 4), "timings": timings,
                       "cache": self.cache_state()})  # fmt: skip


def _protocol_stream() -> IO[str]:
    """stdout is the protocol's: keep a handle on it, and send whatever libraries print to stderr instead."""
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return events


def _emitter(stream: IO[str]) -> Any:
    lock = threading.Lock()

    def emit(event: dict[str, Any]) -> None:
        with lock:
            stream.write(json.dumps(event) + "\n")
            stream.flush()

    return emit


def _read_requests(source: IO[bytes], inbox: queue.Queue[dict[str, Any] | None]) -> None:
    for line in source:
        try:
            message = json.loads(line)
        except ValueError:
            log.warning("ignored a line that is not JSON: %r", line[:200])
            continue
        if isinstance(message, dict):
            inbox.put(message)
    inbox.put(None)  # stdin closed: the server is gone


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # the stdin reader thread may hold stdin's lock; a normal shutdown would abort waiting for it
    os._exit(code)
