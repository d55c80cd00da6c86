"""A live studio for the generation pages: base models copied from the tiny MusicGen, adapters registered from a
real training run's PEFT folder, clips made by the real generation worker, all through the JSON API."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.app import create_app
from tunelab.config import Settings

from .live import LiveServer, serve

CLIP_S = 0.5  # short clips keep the worker fast on two shared cores
TERMINAL = ("completed", "failed")


@dataclass
class GenStudio:
    server: LiveServer
    data: Path
    tiny_model: Path
    trained: Path

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.server.api.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def add_model(self, model_id: str, name: str, **fields: Any) -> None:
        """A base model registered from a copy of the tiny MusicGen; the first one becomes the current model."""
        target = self.data / "models" / model_id
        shutil.copytree(self.tiny_model, target)
        self.call("POST", "/api/models", json={"path": str(target), "id": model_id, "display_name": name, **fields})

    @property
    def current_model(self) -> str:
        current: str = self.call("GET", "/api/settings")["current_model_id"]
        return current

    @contextmanager
    def model(self, model_id: str) -> Iterator[None]:
        """`model_id` is the current model inside the block; the one before comes back after it."""
        before = self.current_model
        self.call("PATCH", "/api/settings", json={"current_model_id": model_id})
        try:
            yield
        finally:
            self.call("PATCH", "/api/settings", json={"current_model_id": before})

    def adapter(self, name: str, version: str = "1.0", model: str = "tiny", active: bool = True) -> dict[str, Any]:
        """An adapter trained on `model`, active unless asked otherwise (activating needs its model current)."""
        folder = self.data / "adapters" / "outside" / f"{name}-{version}"
        shutil.copytree(self.trained / "final", folder)
        body = {"name": name, "version": version, "path": str(folder), "base_model_id": model}
        adapter: dict[str, Any] = self.call("POST", "/api/adapters", json=body)
        if active:
            with self.model(model):
                self.call("POST", f"/api/adapters/{adapter['id']}/activate")
        return adapter

    def generate(self, prompt: str, adapter_id: str | None = None, duration_s: float = CLIP_S) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": prompt, "duration_s": duration_s}
        if adapter_id:
            body["adapter_id"] = adapter_id
        job: dict[str, Any] = self.call("POST", "/api/generations", json=body)
        return job

    def wait(self, job_id: str, statuses: tuple[str, ...] = TERMINAL, timeout_s: float = 180) -> dict[str, Any]:
        """The job once its status is one of `statuses` (the worker's first start loads torch: allow for it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            job: dict[str, Any] = self.call("GET", f"/api/generations/{job_id}")
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, f"{job_id} is still {job['status']}"
            time.sleep(0.1)

    def made(self, prompt: str, adapter_id: str | None = None) -> dict[str, Any]:
        """A completed clip."""
        job = self.wait(self.generate(prompt, adapter_id)["id"])
        assert job["status"] == "completed", job["error"]
        return job


@contextmanager
def gen_studio(data: Path, tiny_model: Path, trained: Path, models: dict[str, str]) -> Iterator[GenStudio]:
    """A served app on `data` with `models` ({id: display name}, the first one current) registered."""
    with serve(create_app(Settings(data_dir=data, bootstrap_model=False))) as server:
        studio = GenStudio(server, data, tiny_model, trained)
        for model_id, name in models.items():
            studio.add_model(model_id, name)
        yield studio
