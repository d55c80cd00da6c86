"""A TuneLab server on a free port in a background thread, and a small JSON API client to seed it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI


@dataclass
class LiveServer:
    url: str
    api: httpx.Client

    def create_experiment(self, name: str, description: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"name": name, **fields}
        if description is not None:
            body["description"] = description
        return self._json("POST", "/api/experiments", json=body)

    def create_artifact(self, type_: str, uri: str, **fields: Any) -> dict[str, Any]:
        return self._json("POST", "/api/artifacts", json={"type": type_, "uri": uri, **fields})

    def store_results(self, experiment_id: str, outputs: dict[str, str]) -> dict[str, Any]:
        return self._json("POST", f"/api/experiments/{experiment_id}/results", json={"outputs": outputs})

    def archive(self, experiment_id: str) -> dict[str, Any]:
        return self._json("POST", f"/api/experiments/{experiment_id}/archive")

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        return self._json("GET", f"/api/experiments/{experiment_id}")

    def listed_ids(self, include_archived: bool = False) -> set[str]:
        params = {"include_archived": str(include_archived).lower()}
        return {item["id"] for item in self._json("GET", "/api/experiments", params=params)["items"]}

    def external_run(self, experiment_id: str, name: str, config: dict[str, Any], metrics: dict[str, float]) -> str:
        """A run reported by an outside engine: created, given its final metrics, completed."""
        run_id = self.start_external_run(experiment_id, name, config)
        points = [{"key": key, "value": value, "step": 1} for key, value in metrics.items()]
        self._json("POST", f"/api/runs/{run_id}/metrics", json={"points": points})
        self.end_run(run_id, "completed")
        return run_id

    def start_external_run(self, experiment_id: str, name: str, config: dict[str, Any] | None = None) -> str:
        """A run an outside engine reports on; it is running until end_run."""
        body = {"external": True, "name": name, "config": config or {}}
        run_id: str = self._json("POST", f"/api/experiments/{experiment_id}/runs", json=body)["id"]
        return run_id

    def end_run(self, run_id: str, status: str) -> None:
        self._json("POST", f"/api/runs/{run_id}/status", json={"status": status})

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()


@contextmanager
def serve(app: FastAPI) -> Iterator[LiveServer]:
    """Uvicorn serving `app` in a daemon thread until the block ends."""
    # IPPROTO_TCP: without it asyncio leaves Nagle on, and each keep-alive answer waits ~40 ms (see cli._listen).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=10) as api:
            yield LiveServer(url=url, api=api)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.01)
