"""A TestClient on a fresh data dir per test, and an `api` helper that creates resources through it; a `Studio`:
a TestClient on a data dir with the tiny MusicGen current and a real generation worker (modules share one)."""

from __future__ import annotations

import hashlib
import itertools
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from safetensors.numpy import load_file, save_file

from tunelab.app import create_app
from tunelab.config import Settings
from tunelab.services import Services

_serial = itertools.count(1)


class Api:
    """Creates resources through the HTTP API and checks the error envelope; every call asserts success."""

    def __init__(self, client: TestClient):
        self.client = client

    def experiment(self, name: str | None = None, **fields: Any) -> dict[str, Any]:
        response = self.client.post("/api/experiments", json={"name": name or f"exp-{next(_serial)}", **fields})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def artifact(self, type_: str = "dataset_export", **fields: Any) -> dict[str, Any]:
        fields.setdefault("uri", f"file:///data/{type_}/{next(_serial)}")
        response = self.client.post("/api/artifacts", json={"type": type_, **fields})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def run(self, experiment_id: str, **fields: Any) -> dict[str, Any]:
        response = self.client.post(f"/api/experiments/{experiment_id}/runs", json={"external": True, **fields})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def end_run(self, run_id: str, status: str, error: str | None = None) -> dict[str, Any]:
        response = self.client.post(f"/api/runs/{run_id}/status", json={"status": status, "error": error})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def metrics(self, run_id: str, points: list[dict[str, Any]]) -> httpx.Response:
        return self.client.post(f"/api/runs/{run_id}/metrics", json={"points": points})

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    @staticmethod
    def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
        """Assert the error envelope with this status and code; return its inner object."""
        assert response.status_code == status, response.text
        body = response.json()
        assert list(body) == ["error"]
        assert set(body["error"]) == {"code", "message", "details"}
        assert body["error"]["code"] == code
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert isinstance(body["error"]["details"], dict)
        return dict(body["error"])

    @staticmethod
    def sha256(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()


# The Host header of Starlette's TestClient: a name only tests serve.
TEST_HOST = "testserver"


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    # tests/conftest.py clears the TuneLab environment, so the database is the temporary one.
    return create_app(Settings(data_dir=tmp_path, allowed_hosts=[TEST_HOST]))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient) -> Api:
    return Api(client)


# --- a studio with a real generation worker on the tiny MusicGen -------------------------------------------------

WAIT_S = 60.0  # for jobs to end: a worker start (~5 s on a busy machine) and the clips


def make_settings(data: Path) -> Settings:
    return Settings(data_dir=data, allowed_hosts=[TEST_HOST], bootstrap_model=False)


class Studio:
    """A TestClient on a data dir with the tiny MusicGen registered as `tiny` (current)."""

    def __init__(self, client: TestClient, data: Path, tiny: Path, trained: Path):
        self.client, self.data, self.tiny, self.trained = client, data, tiny, trained
        self.api = Api(client)

    @property
    def services(self) -> Services:
        services: Services = self.client.app.state.services  # type: ignore[attr-defined]
        return services

    def generate(self, **body: Any) -> dict[str, Any]:
        body.setdefault("prompt", "calm piano melody")
        body.setdefault("duration_s", 0.3)
        response = self.client.post("/api/generations", json=body)
        assert response.status_code == 202, response.text
        job = dict(response.json())
        assert job["status"] == "pending" and job["audio_url"] is None, job
        return job

    def wait(self) -> None:
        assert self.services.generations.wait_idle(WAIT_S), self.worker()

    def made(self, **body: Any) -> dict[str, Any]:
        """A job generated and waited for: completed."""
        job = self.generate(**body)
        self.wait()
        done = self.job(job["id"])
        assert done["status"] == "completed", done
        return done

    def job(self, generation_id: str) -> dict[str, Any]:
        return dict(self.api.get(f"/api/generations/{generation_id}"))

    def jobs(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.api.get("/api/generations", page_size=500, **params)["items"])

    def total(self) -> int:
        return int(self.api.get("/api/generations")["total"])

    def audio(self, generation_id: str) -> bytes:
        response = self.client.get(f"/api/generations/{generation_id}/audio")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "audio/wav"
        return response.content

    def worker(self) -> dict[str, Any]:
        return dict(self.api.get("/api/generation-worker"))

    def model(self, model_id: str = "tiny") -> dict[str, Any]:
        return dict(self.api.get(f"/api/models/{model_id}"))

    def adapter(self, name: str, version: str = "1", active: bool = True, base_model_id: str = "tiny",
                noise_seed: int | None = None) -> dict[str, Any]:  # fmt: skip
        """A copy of the trained adapter registered (and activated); `noise_seed` changes its B matrices."""
        folder = self.data / "adapters" / "outside" / f"{name}-{version}-{time.monotonic_ns()}"
        shutil.copytree(self.trained / "final", folder)
        if noise_seed is not None:
            rng = np.random.default_rng(noise_seed)
            tensors = load_file(folder / "adapter_model.safetensors")
            save_file({k: (v + rng.normal(0, 0.5, v.shape)).astype(v.dtype) if "lora_B" in k else v
                       for k, v in tensors.items()}, folder / "adapter_model.safetensors")  # fmt: skip
        body = {"name": name, "version": version, "path": str(folder), "base_model_id": base_model_id}
        response = self.client.post("/api/adapters", json=body)
        assert response.status_code == 201, response.text
        if active:
            activated = self.client.post(f"/api/adapters/{response.json()['id']}/activate")
            assert activated.status_code == 200, activated.text
        return dict(self.api.get(f"/api/adapters/{response.json()['id']}"))

    def add_model(self, model_id: str) -> None:
        """Another registered base model (a copy of the tiny one), unless there already is one by that id."""
        if self.client.get(f"/api/models/{model_id}").status_code == 200:
            return
        shutil.copytree(self.tiny, self.data / "models" / model_id)
        response = self.client.post("/api/models", json={"path": str(self.data / "models" / model_id), "id": model_id})
        assert response.status_code == 201, response.text

    def use_model(self, model_id: str) -> None:
        response = self.client.patch("/api/settings", json={"current_model_id": model_id})
        assert response.status_code == 200 and response.json()["current_model_id"] == model_id, response.text


def start_studio(data: Path, tiny: Path, trained: Path) -> Iterator[Studio]:
    app = create_app(make_settings(data))
    shutil.copytree(tiny, data / "models" / "tiny", dirs_exist_ok=True)
    with TestClient(app) as client:
        if client.get("/api/models/tiny").status_code == 404:
            body = {"path": str(data / "models" / "tiny"), "id": "tiny", "display_name": "Tiny MusicGen"}
            assert client.post("/api/models", json=body).status_code == 201
        yield Studio(client, data, tiny, trained)


def poll(check: Callable[[], Any], timeout_s: float = 20.0, every_s: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every_s)


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, trained_adapter: Path) -> Iterator[Studio]:
    """A served studio with a real generation worker, one per test module (starting a worker takes seconds). The
    worker runs one torch thread: a model this small only waits on a second one, the more so on a busy machine."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        yield from start_studio(tmp_path_factory.mktemp("studio") / "data", tiny_model, trained_adapter)
