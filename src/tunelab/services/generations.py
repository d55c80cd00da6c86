"""Generation jobs: checked and queued here, made by the generation worker process, which this service supervises.

A request is refused before it is queued: no current model (409 `no_current_model`), a duration past the model's
limit (422 `duration_too_long`), or an adapter that is deleted, inactive or does not fit the current model (400
`adapter_deleted`, `adapter_inactive`, `adapter_incompatible` with the compatible adapters). A queued job records
its model, its adapter's folder and its seed (drawn when none is given), so it can be made again, and so a job
whose adapter is deactivated or deleted after it was queued still finishes with that adapter.

The worker (`python -m tunelab.generation.worker`) is started when there is work (or at the server's start when
`warm_worker` is set) and holds at most MAX_HELD jobs at a time; the rest wait here, oldest first. When it exits
without being asked, the jobs it held fail with the reason and it is started again for the others (three crashes
in a minute with nothing completed fail the queue too). Changing the current model reloads it once the jobs it
holds are done. Each completed job stores its clip as an audio file (so datasets can use it) and counts one use
of its adapter. A server that stops leaves pending and running jobs in the database; the next start queues them
again (their seeds make the same clips).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import soundfile

from tunelab.config import Settings
from tunelab.domain.common import Page, utcnow
from tunelab.domain.generations import (
    MAX_SEED,
    AdapterRef,
    Generation,
    GenerationCreate,
    GenerationStatus,
    Performance,
    RatingSummary,
    WorkerStatus,
)
from tunelab.domain.models import BaseModelInfo
from tunelab.errors import Conflict, NotFound, Unprocessable
from tunelab.generation.client import WorkerProcess
from tunelab.services.adapters import AdapterService, adapter_not_found
from tunelab.services.experiments import new_id
from tunelab.services.models import ModelService
from tunelab.store import adapters as adapter_store
from tunelab.store import generations as store
from tunelab.store import models as model_store
from tunelab.store.db import Database, insert_row

log = logging.getLogger(__name__)
MAX_HELD = 16  # jobs the worker holds at once: what a crash can fail
CRASH_WINDOW_S = 60.0
MAX_CRASHES = 3


def generation_not_found(generation_id: str) -> NotFound:
    return NotFound(f"Generation {generation_id!r} does not exist", code="generation_not_found",
                    details={"generation_id": generation_id})  # fmt: skip


class GenerationService:
    def __init__(self, db: Database, settings: Settings, models: ModelService, adapters: AdapterService) -> None:
        self.db = db
        self.settings = settings
        self.models = models
        self.adapters = adapters
        self.audio_root = settings.data_dir / "audio"
        self.log_path = settings.data_dir / "logs" / "generation-worker.log"
        self._lock = threading.RLock()
        self._queue: deque[str] = deque()
        self._held: set[str] = set()
        self._worker: WorkerProcess | None = None
        self._state = "stopped"
        self._model: BaseModelInfo | None = None
        self._device: str | None = None
        self._error: str | None = None
        self._cache: dict[str, Any] = {}
        self._restarts = 0
        self._crashes: deque[float] = deque()
        self._reload = False
        self._closed = False
        self.idle = threading.Condition(self._lock)  # notified whenever a job ends (tests and benches wait on it)
        adapters.activated.append(self.preload)
        models.current_changed.append(self.model_changed)

    # requests

    def create(self, data: GenerationCreate, abtest_id: str | None = None) -> Generation:
        current = self.current_model()
        self.check_duration(data.duration_s, current)
        adapter = self.adapters.usable(data.adapter_id) if data.adapter_id else None
        row = self.new_row(data.prompt, data.duration_s, data.seed, data.guidance_scale, current,
                           adapter.id if adapter else None, adapter.storage_path if adapter else None, abtest_id)  # fmt: skip
        with self.db.transaction() as con:
            store.insert(con, row)
        queued = self.get(row["id"])  # read before the worker has it: the answer is the job as queued (pending)
        self.enqueue([row["id"]])
        return queued

    def current_model(self) -> BaseModelInfo:
        current = self.models.current()
        if current is None:
            raise Conflict("No base model is current: add one, or choose one in Settings", code="no_current_model")
        return current

    @staticmethod
    def check_duration(duration_s: float, model: BaseModelInfo) -> None:
        if duration_s > model.max_duration_s:
            raise Unprocessable(f"{duration_s:g} s is longer than {model.display_name} can make "
                                f"({model.max_duration_s:g} s at most)", code="duration_too_long",
                                details={"duration_s": duration_s, "max_duration_s": model.max_duration_s,
                                         "model_id": model.id})  # fmt: skip

    @staticmethod
    def new_row(prompt: str, duration_s: float, seed: int | None, guidance_scale: float | None, model: BaseModelInfo,
                adapter_id: str | None, adapter_path: str | None, abtest_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        return {"id": new_id("gen"), "status": GenerationStatus.PENDING.value, "prompt": prompt,
                "duration_s": duration_s, "seed": secrets.randbelow(MAX_SEED + 1) if seed is None else seed,
                "guidance_scale": guidance_scale, "model_id": model.id, "adapter_id": adapter_id,
                "adapter_path": adapter_path, "abtest_id": abtest_id, "timings": {}, "created_at": utcnow()}  # fmt: skip

    def enqueue(self, generation_ids: list[str]) -> None:
        with self._lock:
            self._queue.extend(generation_ids)
        self._dispatch()

    # reading

    def get(self, generation_id: str) -> Generation:
        with self.db.read() as con:
            row = store.get(con, generation_id)
            if row is None:
                raise generation_not_found(generation_id)
            return self._views(con, [row])[0]

    def list_page(self, status: GenerationStatus | None, adapter_id: str | None, page: int,
                  page_size: int) -> Page[Generation]:  # fmt: skip
        """Jobs made in the studio (not those of A/B tests, which would tell the sides apart), newest first."""
        filters = {"status": status.value if status else None, "adapter_id": adapter_id}
        with self.db.read() as con:
            rows, total = store.page(con, {**filters, "studio_only": True}, page_size, (page - 1) * page_size)
            return Page(items=self._views(con, rows), total=total, page=page, page_size=page_size)

    def _views(self, con: Any, rows: list[dict[str, Any]]) -> list[Generation]:
        adapter_ids = sorted({row["adapter_id"] for row in rows if row["adapter_id"]})
        adapters = adapter_store.many(con, adapter_ids) if adapter_ids else {}
        return [view(row, adapters.get(row["adapter_id"] or "")) for row in rows]

    def audio(self, generation_id: str) -> Path:
        generation = self.get(generation_id)
        path = self.audio_root / f"{generation_id}.wav"
        if generation.status != GenerationStatus.COMPLETED or not path.is_file():
            raise Conflict(f"Generation {generation_id} has no audio yet (it is {generation.status.value})",
                           code="generation_not_completed",
                           details={"generation_id": generation_id, "status": generation.status.value})  # fmt: skip
        return path

    def rate(self, generation_id: str, rating: int) -> Generation:
        """Rate a completed clip 1..5; a new rating replaces the old."""
        with self.db.transaction() as con:
            row = store.get(con, generation_id)
            if row is None:
                raise generation_not_found(generation_id)
            if row["status"] != GenerationStatus.COMPLETED.value:
                raise Conflict(f"Only completed generations can be rated; {generation_id} is {row['status']}",
                               code="generation_not_completed",
                               details={"generation_id": generation_id, "status": row["status"]})  # fmt: skip
            store.update(con, generation_id, {"rating": rating, "rated_at": utcnow()})
        return self.get(generation_id)

    def performance(self, adapter_id: str) -> Performance:
        """Generations and ratings of an adapter, beside the base model's ratings on the same prompts."""
        from tunelab import stats

        with self.db.read() as con:
            adapter = adapter_store.get(con, adapter_id)
            if adapter is None:
                raise adapter_not_found(adapter_id)
            total, completed = store.counts(con, adapter_id)
            own = store.ratings(con, adapter_id)
            prompts = sorted({prompt for prompt, _ in own})
            # the adapter's own base model: another model's clips of the same prompts say nothing of what it adds
            base = store.ratings(con, None, prompts, adapter.base_model_id) if prompts else []
        own_ratings, base_ratings = [r for _, r in own], [r for _, r in base]
        return Performance(
            adapter_id=adapter_id, total_generations=total, completed_generations=completed,
            ratings=RatingSummary(**stats.rating_summary(own_ratings)),
            base_model=RatingSummary(**stats.rating_summary(base_ratings)) if base_ratings else None,
            prompts_compared=len({prompt for prompt, _ in base}),
            difference=stats.compare_ratings(own_ratings, base_ratings) if base_ratings else None,
        )  # fmt: skip

    def worker_status(self) -> WorkerStatus:
        with self._lock:
            return WorkerStatus(state=self._state, model_id=self._model.id if self._model else None,
                                pid=self._worker.pid if self._worker else None, device=self._device, error=self._error,
                                queued=len(self._queue), held=len(self._held), restarts=self._restarts,
                                cache=dict(self._cache))  # fmt: skip

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no job is queued or held; whether that happened within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._queue or self._held:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.idle.wait(left)
            return True

    # the worker's lifecycle

    def begin(self) -> None:
        """Queue again what a previous server left pending or running; warm the worker up if asked to."""
        with self.db.transaction() as con:
            unfinished = store.unfinished(con)
            for row in unfinished:
                if row["status"] == GenerationStatus.RUNNING.value:
                    store.update(con, row["id"], {"status": GenerationStatus.PENDING.value, "started_at": None})
        if unfinished:
            log.info("queueing again %d generation jobs left unfinished", len(unfinished))
        with self._lock:
            self._closed = False
            self._queue.extend(row["id"] for row in unfinished)
        if self.settings.warm_worker:
            self.start_worker()
        self._dispatch()

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
            self._state = "stopped"
        if worker is not None:
            worker.stop()

    def start_worker(self) -> None:
        with self._lock:
            if self._worker is not None or self._closed:
                return
            model = self.models.current()
            if model is None:
                return
            self._model, self._state, self._error, self._device, self._cache = model, "starting", None, None, {}
            self._worker = WorkerProcess(model.path, self.settings.adapter_cache_mb, self.log_path, self._on_event,
                                         self._on_exit, self.settings.worker_threads)  # fmt: skip
            log.info("starting the generation worker on %s", model.id)
            self._worker.start()

    def model_changed(self, model_id: str) -> None:
        with self._lock:
            if self._worker is not None and (self._model is None or self._model.id != model_id):
                self._reload = True
        self._dispatch()

    def preload(self, adapter_id: str) -> None:
        """An adapter was activated: have the worker load it now if it runs this adapter's model and has room."""
        with self.db.read() as con:
            adapter = adapter_store.get(con, adapter_id)
        with self._lock:
            if (adapter is None or self._worker is None or self._state != "ready" or self._model is None
                    or adapter.base_model_id != self._model.id):  # fmt: skip
                return
            self._worker.send({"op": "preload", "adapter_id": adapter.id, "adapter_path": adapter.storage_path})

    def _dispatch(self) -> None:
        """Send queued jobs to the worker, starting or reloading it as needed."""
        with self._lock:
            if self._closed:
                return
            reloading = False
            if self._reload and not self._held and self._worker is not None:
                worker, self._worker, self._reload, self._state = self._worker, None, False, "stopped"
                threading.Thread(target=worker.stop, daemon=True).start()
                reloading = True
            if self._worker is None:
                if self._queue or reloading:  # a worker that was up comes back up on the new model
                    self.start_worker()
                return
            if self._state != "ready" or self._reload:
                return
            while self._queue and len(self._held) < MAX_HELD:
                self._send(self._queue.popleft())

    def _send(self, generation_id: str) -> None:
        with self.db.read() as con:
            row = store.get(con, generation_id)
        if row is None or row["status"] not in (GenerationStatus.PENDING.value, GenerationStatus.RUNNING.value):
            return
        assert self._model is not None and self._worker is not None
        if row["model_id"] != self._model.id:
            self._fail(generation_id, f"the current model changed to {self._model.id} before this job ran "
                                      f"(it was asked of {row['model_id']}); generate it again")  # fmt: skip
            return
        job = {key: row[key] for key in ("id", "prompt", "duration_s", "seed", "guidance_scale", "adapter_id",
                                         "adapter_path")}  # fmt: skip
        job["output"] = str(self.audio_root / f"{generation_id}.wav")
        self._held.add(generation_id)
        if not self._worker.send({"op": "generate", "job": job}):
            log.warning("the generation worker did not take job %s; it is reported when the worker ends", job["id"])

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "ready":
            with self._lock:
                self._state, self._device = "ready", event.get("device")
            self._preload_active()
            self._dispatch()
        elif kind == "started":
            with self.db.transaction() as con:
                for generation_id in event.get("ids", []):
                    store.update(con, generation_id, {"status": GenerationStatus.RUNNING.value,
                                                      "started_at": utcnow()})  # fmt: skip
        elif kind == "completed":
            self._complete(event)
        elif kind == "failed":
            self._fail(str(event.get("id")), str(event.get("error")))
        elif kind == "preloaded":
            if isinstance(event.get("cache"), dict):
                with self._lock:
                    self._cache = event["cache"]
        elif kind == "fatal":
            with self._lock:
                self._state, self._error = "failed", str(event.get("error"))
                doomed = [*self._held, *self._queue]
                self._queue.clear()
            for generation_id in doomed:
                self._fail(generation_id, str(event.get("error")))

    def _preload_active(self) -> None:
        with self._lock:
            model = self._model
        if model is None:
            return
        with self.db.read() as con:
            active = adapter_store.active_of_model(con, model.id)
        for adapter in active:
            self.preload(adapter.id)

    def _on_exit(self, worker: WorkerProcess, code: int | None) -> None:
        with self._lock:
            if worker is not self._worker:  # one we stopped (a reload or the server's stop)
                return
            self._worker = None
            failed = self._state == "failed"
            self._state = "failed" if failed else "stopped"
            held = list(self._held)
            now = time.monotonic()
            self._crashes.append(now)
            while self._crashes and now - self._crashes[0] > CRASH_WINDOW_S:
                self._crashes.popleft()
            looping = len(self._crashes) >= MAX_CRASHES
            if not failed:
                self._restarts += 1
                self._error = f"the generation worker stopped unexpectedly ({_exit_text(code)})"
                if looping:
                    self._state = "failed"
                    held += list(self._queue)
                    self._queue.clear()
        if not failed:
            log.error("generation worker exited (%s); %d jobs it held fail", _exit_text(code), len(held))
        for generation_id in held:
            self._fail(generation_id, f"the generation worker stopped while making this clip ({_exit_text(code)})")
        if not failed and not looping:
            self._dispatch()

    def _complete(self, event: dict[str, Any]) -> None:
        generation_id = str(event["id"])
        path = self.audio_root / f"{generation_id}.wav"
        try:
            info = soundfile.info(str(path))
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except (OSError, RuntimeError) as error:
            self._fail(generation_id, f"the worker's audio cannot be read: {error}")
            return
        now = utcnow()
        with self.db.transaction() as con:
            row = store.get(con, generation_id)
            if row is None:
                return
            audio_id = new_id("aud")
            insert_row(con, "audio", {"id": audio_id, "path": str(path), "sha256": digest, "size": path.stat().st_size,
                                      "duration_s": round(info.frames / info.samplerate, 6),
                                      "sample_rate": int(info.samplerate), "channels": int(info.channels),
                                      "format": info.format, "original_name": f"{generation_id}.wav",
                                      "created_at": now})  # fmt: skip
            started = row["started_at"] or now
            timings = {**event.get("timings", {}), "queued_s": round((started - row["created_at"]).total_seconds(), 4),
                       "total_s": round((now - row["created_at"]).total_seconds(), 4)}  # fmt: skip
            store.update(con, generation_id, {"status": GenerationStatus.COMPLETED.value, "audio_id": audio_id,
                                              "timings": timings, "completed_at": now, "started_at": started})  # fmt: skip
            if row["adapter_id"]:
                store.add_usage(con, row["adapter_id"])
        with self._lock:
            self._crashes.clear()
            if isinstance(event.get("cache"), dict):
                self._cache = event["cache"]
        self._ended(generation_id)

    def _fail(self, generation_id: str, error: str) -> None:
        with self.db.transaction() as con:
            row = store.get(con, generation_id)
            if row is not None and row["status"] in (GenerationStatus.PENDING.value, GenerationStatus.RUNNING.value):
                store.update(con, generation_id, {"status": GenerationStatus.FAILED.value, "error": error,
                                                  "completed_at": utcnow()})  # fmt: skip
        self._ended(generation_id)

    def _ended(self, generation_id: str) -> None:
        with self._lock:
            self._held.discard(generation_id)
            self.idle.notify_all()
        self._dispatch()


def view(row: dict[str, Any], adapter: Any) -> Generation:
    completed = row["status"] == GenerationStatus.COMPLETED.value
    return Generation(
        id=row["id"], status=row["status"], prompt=row["prompt"], duration_s=row["duration_s"], seed=row["seed"],
        guidance_scale=row["guidance_scale"], model_id=row["model_id"],
        adapter=AdapterRef(id=adapter.id, name=adapter.name, version=adapter.version) if adapter else None,
        adapter_deleted=bool(adapter is not None and adapter.deleted_at is not None),
        abtest_id=row["abtest_id"], error=row["error"],
        audio_url=f"/api/generations/{row['id']}/audio" if completed else None, audio_id=row["audio_id"],
        rating=row["rating"], rated_at=row["rated_at"], timings=row["timings"], created_at=row["created_at"],
        started_at=row["started_at"], completed_at=row["completed_at"],
    )  # fmt: skip


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit status"
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


__all__ = ["GenerationService", "generation_not_found", "model_store"]
