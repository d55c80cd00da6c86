"""A TestClient on a fresh data dir per test, and an `api` helper that creates resources through it."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tunelab.app import create_app
from tunelab.config import Settings

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
