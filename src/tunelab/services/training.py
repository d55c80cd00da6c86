"""Runs TuneLab trains: start (config, export, inputs, queue), the scheduler, following a run's output, its end.

Start: the experiment needs a dataset (400 `dataset_required`, no run) and must not be archived (409). The config
is resolved (the training command's defaults < the experiment's `config` < the run's `config`), the dataset is
exported (an empty dataset or a failed export makes a `failed` run saying so, as the design document asks), the
inputs are frozen (the export artifact and the current base model's artifact), and the run is created `pending`.

The scheduler (one thread) starts pending runs oldest first while fewer than TUNELAB_MAX_CONCURRENT_RUNS run: it
hands the executor `python -m tunelab.training …` and marks the run `running`. A follower thread per running run
reads `runs/{id}/output.log` as the supervisor appends to it: metric events (OSC 7711, also when cut between two
reads) go into the metric store, and live viewers are told of new bytes (LogHub). When the exit file appears the
run ends: exit 0 registers its adapter and completes it; a cancelled run is `cancelled`; any other exit is
`failed` with the last line of output and the exit status. The server's start re-attaches followers to runs whose
supervisor lives on, ends those whose command ended meanwhile, and fails those whose supervisor is gone without
an exit file ("training process lost"). Logs and partial outputs are always kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import tunelab
from tunelab.config import Settings
from tunelab.domain.experiments import Experiment
from tunelab.domain.metrics import MAX_POINTS_PER_BATCH, MetricColumns
from tunelab.domain.runs import TERMINAL_RUN, Run, RunCreate, RunStatus, RunStatusUpdate
from tunelab.errors import BadRequest, Conflict, NotFound, TuneLabError, Unprocessable
from tunelab.executors.base import Command, Executor, ExitStatus, Handle
from tunelab.services import provenance
from tunelab.services.adapters import AdapterService
from tunelab.services.datasets import DatasetService
from tunelab.services.experiments import ExperimentService, new_id
from tunelab.services.models import ModelService
from tunelab.services.runs import PreparedRun, RunService
from tunelab.store import runs as run_store
from tunelab.store.db import Database
from tunelab.training.args import Hyperparameters
from tunelab.training.events import EventStream, strip_events

log = logging.getLogger(__name__)
_ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]")
READ_CHUNK = 1 << 20
RECENT_BYTES = 4 << 20  # per running run, the log's last bytes kept in memory for live viewers
LOST = "training process lost"


class LogHub:
    """Tells live log viewers (asyncio tasks on the server's loop) that a run's log grew or its run ended."""

    def __init__(self, keep: int = RECENT_BYTES) -> None:
        self._viewers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._recent: dict[str, tuple[int, bytes]] = {}  # run id -> (offset of its first byte, the log's last bytes)
        self._keep = keep
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def viewer(self, run_id: str) -> Any:
        """An event set whenever the run's log grows; clear it before reading, so no news is missed."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._viewers.setdefault(run_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                self._viewers.get(run_id, set()).discard(entry)

    def recent(self, run_id: str, offset: int, limit: int) -> bytes | None:
        """The log's bytes from `offset` from memory, when the follower's last bytes reach back that far (None:
        read the file). Hundreds of viewers of one run then share what the follower read once."""
        with self._lock:
            start, data = self._recent.get(run_id, (0, b""))
        if not data or not start <= offset <= start + len(data):
            return None
        return data[offset - start : offset - start + limit]

    def publish(self, run_id: str, offset: int | None = None, data: bytes = b"") -> None:
        """News of the run: `data` read from the log at `offset` (kept for viewers), or that it ended."""
        with self._lock:
            if offset is not None and data:
                start, kept = self._recent.get(run_id, (offset, b""))
                if start + len(kept) != offset:  # not contiguous (a restart): start afresh
                    start, kept = offset, b""
                kept += data
                if len(kept) > self._keep:
                    start, kept = start + len(kept) - self._keep, kept[-self._keep :]
                self._recent[run_id] = (start, kept)
            viewers = list(self._viewers.get(run_id, ()))
        for loop, event in viewers:
            with contextlib.suppress(RuntimeError):  # a loop that has closed
                loop.call_soon_threadsafe(event.set)

    def forget(self, run_id: str) -> None:
        """The run is no longer followed: its bytes are read from the file."""
        with self._lock:
            self._recent.pop(run_id, None)


def resolve_config(experiment_config: dict[str, Any], run_config: dict[str, Any]) -> dict[str, Any]:
    """The training options of a run: the command's defaults < the experiment's config < the run's config.

    Keys of the experiment's config that are not training options are left out (an experiment's config may
    describe other things); an unknown key in the run's config, or a bad value anywhere, is 422 `invalid_config`
    listing every problem.
    """
    fields = {f.name: f for f in dataclasses.fields(Hyperparameters)}
    defaults = Hyperparameters()
    resolved: dict[str, Any] = {name: getattr(defaults, name) for name in fields}
    problems = [f"unknown option {key!r}" for key in run_config if key not in fields]
    for source in (experiment_config, run_config):
        for key, value in source.items():
            if key not in fields:
                continue
            default = getattr(defaults, key)
            if isinstance(default, tuple):
                items = value.split(",") if isinstance(value, str) else value
                if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                    problems.append(f"{key} must be a list of names")
                    continue
                resolved[key] = tuple(i.strip() for i in items if i.strip())
            elif isinstance(default, bool) or isinstance(value, bool):
                problems.append(f"{key} must be a number")
            elif isinstance(default, int) and not (isinstance(value, int) or (isinstance(value, float) and
                                                                               value.is_integer())):  # fmt: skip
                problems.append(f"{key} must be a whole number")
            elif isinstance(default, float) and not isinstance(value, int | float):
                problems.append(f"{key} must be a number")
            else:
                resolved[key] = type(default)(value)
    if not problems:
        problems = Hyperparameters(**resolved).problems()
    if problems:
        raise Unprocessable("Invalid training config: " + "; ".join(problems), code="invalid_config",
                            details={"problems": problems})  # fmt: skip
    resolved["lora_target_modules"] = list(resolved["lora_target_modules"])
    return resolved


def last_line(path: Path, limit: int = 64 * 1024) -> str:
    """The last non-blank line a terminal would show of the log's end (colours, events and bars removed)."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - limit))
            tail = file.read()
    except OSError:
        return ""
    text = _ANSI.sub(b"", strip_events(tail)).decode("utf-8", "replace")
    lines = [line.rsplit("\r", 1)[-1].strip() for line in text.replace("\r\n", "\n").split("\n")]
    return next((line for line in reversed(lines) if line), "")


class TrainingService:
    def __init__(self, db: Database, settings: Settings, executor: Executor, runs: RunService,
                 experiments: ExperimentService, datasets: DatasetService, models: ModelService,
                 adapters: AdapterService) -> None:  # fmt: skip
        self.db = db
        self.settings = settings
        self.executor = executor
        self.runs = runs
        self.experiments = experiments
        self.datasets = datasets
        self.models = models
        self.adapters = adapters
        self.hub = LogHub()
        self._lock = threading.Lock()  # between starting a pending run and cancelling it
        self._wake = threading.Condition()
        self._followers: dict[str, threading.Thread] = {}
        self._handles: dict[str, Handle] = {}
        self._cancelling: set[str] = set()
        self._stopping = False
        self._scheduler: threading.Thread | None = None

    # --- starting a run -----------------------------------------------------------------------------------------

    def start(self, experiment_id: str, data: RunCreate) -> Run:
        """A run of the experiment's dataset on the current base model, queued (or failed, saying why)."""
        experiment = self.experiments.get(experiment_id)
        if experiment.archived:
            raise Conflict(f"Experiment {experiment.name!r} is archived; unarchive it to start runs",
                           code="experiment_archived")  # fmt: skip
        if not experiment.dataset_id:
            raise BadRequest("A dataset must be linked to the experiment before a run can start",
                             code="dataset_required", details={"experiment_id": experiment_id})  # fmt: skip
        config = resolve_config(experiment.config, data.config)
        model = self.models.current()
        if model is None:
            raise Conflict("No base model is registered: add one with `tunelab models add PATH` (a fresh data dir "
                           "makes the tiny one on first start)", code="no_base_model")  # fmt: skip
        run_id = new_id("run")
        error = None
        training_type = "supervised"
        inputs: dict[str, list[str]] = {"base_model": [model.artifact_id]}
        try:
            dataset = self.datasets.get(experiment.dataset_id)
            training_type = dataset.type.value
            export = self.datasets.export(dataset.id)
            inputs = {"dataset_export": [export.id], **inputs}
        except Unprocessable as exc:
            error = "Dataset is empty" if exc.code == "dataset_empty" else "Dataset export failed"
        except (TuneLabError, OSError) as exc:
            log.warning("export of dataset %s for a run failed: %s", experiment.dataset_id, exc)
            error = "Dataset export failed"
        prov = provenance.capture(None)
        prepared = PreparedRun(
            run_id=run_id, training_type=training_type, config=config, inputs=inputs,
            output_dir=str(self.settings.data_dir / "adapters" / experiment.id / run_id),
            provenance={"git_commit": prov.git_commit, "git_dirty": prov.git_dirty,
                        "engine_version": prov.engine_version, "base_model_id": model.id,
                        "base_model_path": model.path, "dataset_id": experiment.dataset_id,
                        "data": export.uri if error is None else None},
            error=error,
        )  # fmt: skip
        run = self.runs.create(experiment_id, RunCreate(name=data.name, config=data.config), prepared)
        self.wake()
        return run

    def command(self, run: Run) -> Command:
        """`python -m tunelab.training …` for the run, as the design document says (PYTHONPATH: TuneLab's source)."""
        argv = [sys.executable, "-m", "tunelab.training", "--type", str(run.training_type),
                "--data", str(run.provenance["data"]), "--base-model", str(run.provenance["base_model_path"]),
                "--output-dir", str(run.output_dir)]  # fmt: skip
        for key, value in run.config.items():
            argv += [f"--{key.replace('_', '-')}", ",".join(value) if isinstance(value, list) else str(value)]
        source = str(Path(tunelab.__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "FORCE_COLOR": "1"}
        return Command(argv=argv, env=env, cwd=self.settings.data_dir)

    # --- the scheduler ----------------------------------------------------------------------------------------

    def begin(self) -> None:
        """Re-attach to the runs a previous server left running, then start the scheduler."""
        for run in self._runs_with(RunStatus.RUNNING):
            handle = self.executor.attach(run.id)
            if handle.exit_status() is not None or handle.alive():
                log.info("following run %s again", run.id)
                self._follow(run.id, handle)
            else:
                log.warning("run %s: its supervisor is gone without an exit status; failing it", run.id)
                self._finish(run.id, handle, None)
        self._scheduler = threading.Thread(target=self._schedule, name="run-scheduler", daemon=True)
        self._scheduler.start()

    def stop(self) -> None:
        """Stop scheduling and following (the runs go on: their supervisors do not need the server)."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._scheduler is not None:
            self._scheduler.join(timeout=5)
        for thread in list(self._followers.values()):
            thread.join(timeout=5)

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _schedule(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
            try:
                self._start_queued()
            except Exception:
                log.exception("the run scheduler failed to start a run; it tries again")
            with self._wake:
                if self._stopping:
                    return
                self._wake.wait(timeout=1.0)

    def _start_queued(self) -> None:
        running = sum(1 for thread in self._followers.values() if thread.is_alive())
        free = self.settings.max_concurrent_runs - running
        if free <= 0:
            return
        for run in self._runs_with(RunStatus.PENDING)[:free]:
            with self._lock:
                if self.runs.get(run.id).status is not RunStatus.PENDING:  # cancelled meanwhile
                    continue
                handle = self.executor.start(run.id, self.command(run))
                self.runs.set_status(run.id, RunStatusUpdate(status=RunStatus.RUNNING))
            log.info("run %s started", run.id)
            self._follow(run.id, handle)

    def _runs_with(self, status: RunStatus) -> list[Run]:
        with self.db.read() as con:
            ids = run_store.started_here_with(con, status.value)
        return [self.runs.get(run_id) for run_id in ids]

    # --- following a run ----------------------------------------------------------------------------------------

    def _follow(self, run_id: str, handle: Handle) -> None:
        self._handles[run_id] = handle
        thread = threading.Thread(target=self._follow_loop, args=(run_id, handle), name=f"follow-{run_id}",
                                  daemon=True)  # fmt: skip
        self._followers[run_id] = thread
        thread.start()

    def _follow_loop(self, run_id: str, handle: Handle) -> None:
        """Read the log as it grows (from the start: metrics sent again replace), until the command has ended and
        every byte is read; then end the run."""
        offset = 0
        events = EventStream()
        last_step = 0
        checked = time.monotonic()
        try:
            while not self._stopping:
                data = _read(handle.log_path, offset, READ_CHUNK)
                if data:
                    self.hub.publish(run_id, offset, data)  # viewers first: metrics can wait a moment
                    offset += len(data)
                    last_step = self._record(run_id, events.feed(data), last_step)
                    continue
                status = handle.exit_status()
                if status is not None:
                    if _size(handle.log_path) > offset:
                        continue  # the last bytes came before the exit file
                    self._finish(run_id, handle, status)
                    return
                if time.monotonic() - checked > 0.5:
                    checked = time.monotonic()
                    if not handle.alive() and handle.exit_status() is None:
                        self._finish(run_id, handle, None)
                        return
                time.sleep(0.002)
        except Exception:
            log.exception("following run %s failed", run_id)
        finally:
            self.hub.forget(run_id)
            self.hub.publish(run_id)
            self.wake()

    def _record(self, run_id: str, found: list[dict[str, Any]], last_step: int) -> int:
        """The metric events into the metric store (a summary's values at the last step); the last step."""
        keys: list[str] = []
        steps: list[int] = []
        values: list[float] = []
        for event in found:
            step = event.get("step") if event.get("event") == "metrics" else last_step
            raw = event.get("values")
            if not isinstance(step, int) or isinstance(step, bool) or step < 0 or not isinstance(raw, dict):
                continue
            last_step = max(last_step, step)
            for key, value in raw.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and isinstance(key, str):
                    keys.append(key)
                    steps.append(step)
                    values.append(float(value))
        for start in range(0, len(keys), MAX_POINTS_PER_BATCH):
            end = start + MAX_POINTS_PER_BATCH
            batch = MetricColumns(keys[start:end], steps[start:end], values[start:end], [None] * len(keys[start:end]))
            try:
                self.runs.ingest(run_id, batch)
            except TuneLabError as exc:
                log.warning("run %s: metric events not stored: %s", run_id, exc.message)
        return last_step

    def _finish(self, run_id: str, handle: Handle, status: ExitStatus | None) -> None:
        """End the run as its command ended (None: it was lost)."""
        run = self.runs.get(run_id)
        if run.status in TERMINAL_RUN:
            return
        if status is None:
            self._end(run_id, RunStatus.FAILED, LOST, None)
        elif status.cancelled or run_id in self._cancelling:
            self._end(run_id, RunStatus.CANCELLED, None, status.code)
        elif status.code == 0:
            try:
                adapter = self.adapters.register_run(run, self._experiment(run), self._final_metrics(run_id))
            except (ValueError, TuneLabError) as exc:
                self._end(run_id, RunStatus.FAILED, f"the adapter could not be registered: {exc}", 0)
                return
            self._end(run_id, RunStatus.COMPLETED, None, 0, adapter_id=adapter.id)
        else:
            line = last_line(handle.log_path)
            error = f"{line} (exit status {status.code})" if line else f"exit status {status.code}"
            self._end(run_id, RunStatus.FAILED, error, status.code)
        self._cancelling.discard(run_id)
        self._handles.pop(run_id, None)

    def _end(self, run_id: str, status: RunStatus, error: str | None, exit_code: int | None, **more: Any) -> None:
        self.runs.set_status(run_id, RunStatusUpdate(status=status, error=error), exit_code=exit_code, **more)
        log.info("run %s ended %s%s", run_id, status.value, f": {error}" if error else "")

    def _experiment(self, run: Run) -> Experiment:
        return self.experiments.get(run.experiment_id)

    def _final_metrics(self, run_id: str) -> dict[str, float]:
        summary = self.runs.get(run_id).metrics_summary
        return {key: entry.final for key, entry in summary.items() if entry.final is not None}

    # --- cancelling, logs -----------------------------------------------------------------------------------------

    def cancel(self, run_id: str, wait_s: float = 30.0) -> Run:
        """A pending run leaves the queue; a running one's process group is stopped (SIGTERM, then SIGKILL after
        the grace period) and it ends `cancelled` once its command has ended (waited for up to `wait_s`)."""
        run = self.runs.get(run_id)
        if run.external or run.status in TERMINAL_RUN:
            return self.runs.cancel(run_id)  # an outside run; or 409 for one that has ended
        with self._lock:
            run = self.runs.get(run_id)
            if run.status is RunStatus.PENDING:
                return self.runs.cancel(run_id)
        self._cancelling.add(run_id)
        handle = self._handles.get(run_id) or self.executor.attach(run_id)
        handle.cancel()
        follower = self._followers.get(run_id)
        if follower is not None:
            follower.join(timeout=wait_s)
        return self.runs.get(run_id)

    def log_file(self, run_id: str) -> tuple[Run, Path]:
        run = self.runs.get(run_id)
        if run.external:
            raise NotFound(f"Run {run.name!r} was reported from outside: TuneLab has no log of it",
                           code="log_not_found", details={"run_id": run_id})  # fmt: skip
        return run, self.settings.data_dir / "runs" / run_id / "output.log"

    def read_bytes(self, run_id: str, offset: int, limit: int) -> bytes:
        """The log's bytes from `offset`: from memory while the run is followed, else from the file."""
        recent = self.hub.recent(run_id, offset, limit)
        return recent if recent is not None else _read(self.settings.data_dir / "runs" / run_id / "output.log",
                                                       offset, limit)  # fmt: skip

    def read_log(self, run_id: str, offset: int, limit: int) -> tuple[Run, bytes, int]:
        """(the run, the log's bytes from `offset`, at most `limit` of them, the log's size)."""
        run, path = self.log_file(run_id)
        return run, _read(path, offset, limit), _size(path)


def _read(path: Path, offset: int, limit: int) -> bytes:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read(limit)
    except FileNotFoundError:
        return b""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
