"""Reach a running TuneLab server: the tracker port over HTTP, and finding the server that owns a data dir."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from tunelab.config import Settings
from tunelab.domain.common import Page
from tunelab.domain.experiments import Experiment, ExperimentCreate, ExperimentDetail, ExperimentFilter
from tunelab.errors import BadRequest, Conflict, NotFound, StoreBusy, TuneLabError, Unprocessable

_BY_STATUS: dict[int, type[TuneLabError]] = {
    400: BadRequest, 404: NotFound, 409: Conflict, 422: Unprocessable, 503: StoreBusy,
}  # fmt: skip


def write_server_file(settings: Settings, url: str) -> None:
    settings.server_file.write_text(json.dumps({"url": url, "pid": os.getpid(), "db": str(settings.db_path)}))


def remove_server_file(settings: Settings) -> None:
    settings.server_file.unlink(missing_ok=True)


def running_server(settings: Settings) -> str | None:
    """The URL of a live server that owns this data dir's database, if there is one."""
    try:
        info = json.loads(settings.server_file.read_text())
        answer = httpx.get(f"{info['url']}/api/health", timeout=2.0).json()
    except (OSError, ValueError, KeyError, httpx.HTTPError):
        return None
    return str(info["url"]) if answer.get("db") == str(settings.db_path) else None


class HttpTracker:
    """The experiment tracker (and the CLI's experiment commands) against a server's JSON API."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        self._http = httpx.Client(base_url=base_url, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            error = response.json().get("error", {})
            kind = _BY_STATUS.get(response.status_code, TuneLabError)
            raise kind(error.get("message", response.text), code=error.get("code"), details=error.get("details"))
        return response.json()

    def create(self, definition: ExperimentCreate) -> Experiment:
        body = definition.model_dump(mode="json", exclude_none=True)
        return Experiment(**self._call("POST", "/api/experiments", json=body))

    def get(self, experiment_id: str) -> Experiment:
        return Experiment(**self._call("GET", f"/api/experiments/{experiment_id}"))

    def detail(self, experiment_id: str) -> ExperimentDetail:
        return ExperimentDetail(**self._call("GET", f"/api/experiments/{experiment_id}"))

    def list_page(self, flt: ExperimentFilter) -> Page[Experiment]:
        params = flt.model_dump(mode="json", exclude_none=True)
        params["created_after"] = params.pop("min_created_at", None)
        params["created_before"] = params.pop("max_created_at", None)
        if flt.limit:
            params["page_size"] = params.pop("limit")
        page = self._call("GET", "/api/experiments", params={k: v for k, v in params.items() if v is not None})
        return Page[Experiment](**page)

    def archive(self, experiment_id: str) -> Experiment:
        return Experiment(**self._call("POST", f"/api/experiments/{experiment_id}/archive"))

    def unarchive(self, experiment_id: str) -> Experiment:
        return Experiment(**self._call("POST", f"/api/experiments/{experiment_id}/unarchive"))

    # The tracker port.

    def create_experiment(self, definition: ExperimentCreate) -> Experiment:
        return self.create(definition)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.get(experiment_id)

    def list_experiments(self, flt: ExperimentFilter) -> list[Experiment]:
        return self.list_page(flt).items

    def update_status(self, experiment_id: str, status: str, error: str | None = None) -> Experiment:
        body = {"status": status, "error": error}
        return Experiment(**self._call("POST", f"/api/experiments/{experiment_id}/status", json=body))

    def store_results(self, experiment_id: str, outputs: dict[str, str]) -> Experiment:
        body = {"outputs": outputs}
        return Experiment(**self._call("POST", f"/api/experiments/{experiment_id}/results", json=body))

    def find_by_input_artifacts(self, artifact_ids: list[str]) -> list[Experiment]:
        if not artifact_ids:  # as the store answers; the route needs at least one id
            return []
        answer = self._call("GET", "/api/experiments/by-input-artifacts", params={"artifact_id": artifact_ids})
        return [Experiment(**item) for item in answer]
