"""Reach a data dir's experiments from another process: through the running server that owns the database
(the tracker port over HTTP), or by opening the file when no server holds it."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeAlias, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from tunelab.config import Settings
from tunelab.domain.adapters import (
    Adapter,
    AdapterComparison,
    AdapterCreate,
    AdapterDetail,
    AdapterGroup,
    AdapterItem,
    AdapterUpdate,
    AdapterVersions,
)
from tunelab.domain.artifacts import Artifact
from tunelab.domain.common import Page
from tunelab.domain.datasets import Dataset, DatasetCreate, DatasetDetail, DatasetItem
from tunelab.domain.experiments import Experiment, ExperimentCreate, ExperimentDetail, ExperimentFilter
from tunelab.domain.models import BaseModelCreate, BaseModelInfo
from tunelab.errors import (
    BadRequest,
    BadServerResponse,
    Conflict,
    NotFound,
    ServerUnavailable,
    StoreBusy,
    TuneLabError,
    Unprocessable,
)

if TYPE_CHECKING:
    from tunelab.services.adapters import AdapterService
    from tunelab.services.datasets import DatasetService
    from tunelab.services.experiments import ExperimentService
    from tunelab.services.models import ModelService
    from tunelab.store import Database

M = TypeVar("M", bound=BaseModel)

_BY_STATUS: dict[int, type[TuneLabError]] = {
    400: BadRequest, 404: NotFound, 409: Conflict, 422: Unprocessable, 503: StoreBusy,
}  # fmt: skip


def _segment(value: str) -> str:
    """A path parameter, quoted so that no id can reach another route."""
    return quote(value, safe="")


def write_server_file(settings: Settings, url: str) -> None:
    settings.server_file.write_text(json.dumps({"url": url, "pid": os.getpid(), "db": str(settings.db_path)}))


def remove_server_file(settings: Settings) -> None:
    settings.server_file.unlink(missing_ok=True)


def server_address(settings: Settings) -> str | None:
    """The URL a server left in its address file next to the database, whether or not it still answers."""
    try:
        info = json.loads(settings.server_file.read_text())
    except (OSError, ValueError):
        return None
    url = info.get("url") if isinstance(info, dict) else None
    return url if isinstance(url, str) and url else None


def running_server(settings: Settings) -> str | None:
    """The URL of a live server that owns this data dir's database, if there is one."""
    url = server_address(settings)
    if url is None:
        return None
    try:
        answer = httpx.get(f"{url}/api/health", timeout=2.0).json()
    except (ValueError, httpx.HTTPError):
        return None
    return url if isinstance(answer, dict) and answer.get("db") == str(settings.db_path) else None


class HttpClient:
    """A server's JSON API: its answers as our models, its error envelopes as our errors."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(
                f"The TuneLab server at {self.base_url} holds the database but did not answer: {exc}",
                details={"url": self.base_url},
            ) from exc
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> Any:
        """A response's JSON body, or the TuneLab error its error envelope names."""
        try:
            body = response.json()
        except ValueError:
            raise self._bad_response(response, "a body that is not JSON") from None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if not isinstance(error, dict):
                raise self._bad_response(response, "an error without the error envelope")
            kind = _BY_STATUS.get(response.status_code, TuneLabError)
            raise kind(
                str(error.get("message") or response.text),
                code=error.get("code"),
                details=error.get("details") if isinstance(error.get("details"), dict) else None,
            )
        return body

    def _bad_response(self, response: httpx.Response, what: str) -> BadServerResponse:
        return BadServerResponse(
            f"The server at {self.base_url} answered {response.request.method} {response.request.url.path} "
            f"with HTTP {response.status_code} and {what}",
            details={"url": self.base_url, "status": response.status_code, "body": response.text[:500]},
        )

    def _model(self, model: type[M], data: Any) -> M:
        """`data` as `model`, or bad_server_response: a server answer is not the caller's input to validate."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise BadServerResponse(
                f"The server at {self.base_url} answered with JSON that is not a {model.__name__}: {exc}",
                details={"url": self.base_url},
            ) from None


class HttpTracker(HttpClient):
    """The experiment tracker (and the CLI's experiment commands) against a server's JSON API."""

    def create(self, definition: ExperimentCreate) -> Experiment:
        body = definition.model_dump(mode="json", exclude_none=True)
        return self._model(Experiment, self._call("POST", "/api/experiments", json=body))

    def get(self, experiment_id: str) -> Experiment:
        return self._model(Experiment, self._call("GET", f"/api/experiments/{_segment(experiment_id)}"))

    def detail(self, experiment_id: str) -> ExperimentDetail:
        return self._model(ExperimentDetail, self._call("GET", f"/api/experiments/{_segment(experiment_id)}"))

    def list_page(self, flt: ExperimentFilter) -> Page[Experiment]:
        params = flt.model_dump(mode="json", exclude_none=True)
        params["created_after"] = params.pop("min_created_at", None)
        params["created_before"] = params.pop("max_created_at", None)
        if flt.limit:
            params["page_size"] = params.pop("limit")
        page = self._call("GET", "/api/experiments", params={k: v for k, v in params.items() if v is not None})
        return self._model(Page[Experiment], page)

    def archive(self, experiment_id: str) -> Experiment:
        return self._model(Experiment, self._call("POST", f"/api/experiments/{_segment(experiment_id)}/archive"))

    def unarchive(self, experiment_id: str) -> Experiment:
        return self._model(Experiment, self._call("POST", f"/api/experiments/{_segment(experiment_id)}/unarchive"))

    # The tracker port.

    def create_experiment(self, definition: ExperimentCreate) -> Experiment:
        return self.create(definition)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.get(experiment_id)

    def list_experiments(self, flt: ExperimentFilter) -> list[Experiment]:
        return self.list_page(flt).items

    def update_status(self, experiment_id: str, status: str, error: str | None = None) -> Experiment:
        body = {"status": status, "error": error}
        return self._model(
            Experiment, self._call("POST", f"/api/experiments/{_segment(experiment_id)}/status", json=body)
        )

    def store_results(self, experiment_id: str, outputs: dict[str, str]) -> Experiment:
        body = {"outputs": outputs}
        return self._model(
            Experiment, self._call("POST", f"/api/experiments/{_segment(experiment_id)}/results", json=body)
        )

    def find_by_input_artifacts(self, artifact_ids: list[str]) -> list[Experiment]:
        if not artifact_ids:  # as the store answers; the route needs at least one id
            return []
        found: list[Experiment] = []
        for page in itertools.count(1):
            params = {"artifact_id": artifact_ids, "page": page, "page_size": 500}
            answer = self._model(
                Page[Experiment], self._call("GET", "/api/experiments/by-input-artifacts", params=params)
            )
            found += answer.items
            if not answer.items or len(found) >= answer.total:
                return found
        raise AssertionError("unreachable")


Experiments: TypeAlias = "HttpTracker | ExperimentService"


class HttpModels(HttpClient):
    """The base model commands of the CLI against a server's JSON API (the ModelService methods they use)."""

    def list(self) -> list[BaseModelInfo]:
        return self._model(Page[BaseModelInfo], self._call("GET", "/api/models")).items

    def add(self, data: BaseModelCreate) -> BaseModelInfo:
        body = data.model_dump(mode="json", exclude_none=True)
        return self._model(BaseModelInfo, self._call("POST", "/api/models", json=body))


Models: TypeAlias = "HttpModels | ModelService"


class HttpDatasets(HttpClient):
    """The dataset commands of the CLI against a server's JSON API (the DatasetService methods they use)."""

    def create(self, data: DatasetCreate) -> Dataset:
        return self._model(Dataset, self._call("POST", "/api/datasets", json=data.model_dump(mode="json")))

    def list_page(self) -> Page[Dataset]:
        return self._model(Page[Dataset], self._call("GET", "/api/datasets"))

    def detail(self, dataset_id: str) -> DatasetDetail:
        return self._model(DatasetDetail, self._call("GET", f"/api/datasets/{_segment(dataset_id)}"))

    def export(self, dataset_id: str) -> Artifact:
        return self._model(Artifact, self._call("POST", f"/api/datasets/{_segment(dataset_id)}/export"))

    def add_items(self, dataset_id: str, records: list[dict[str, Any]], root: Path, source: str) -> list[DatasetItem]:
        """Each record uploaded as a form from the files beside the manifest; all or none: on a refusal the items
        added so far are removed again (the server cannot read the client's paths, so it cannot do this at once)."""
        del source  # the server marks uploads as such
        added: list[DatasetItem] = []
        try:
            for number, record in enumerate(records, start=1):
                fields = {k: str(record[k]) for k in ("prompt", "rating") if record.get(k) is not None}
                paths = {side: record.get(f"{side}_path") for side in ("audio", "chosen", "rejected")}
                with contextlib.ExitStack() as stack:
                    files = {side: (Path(str(p)).name, stack.enter_context((root / str(p)).open("rb")))
                             for side, p in paths.items() if p}  # fmt: skip
                    try:
                        answer = self._call("POST", f"/api/datasets/{_segment(dataset_id)}/items", data=fields,
                                            files=files)  # fmt: skip
                    except TuneLabError as error:
                        error.message = f"line {number}: {error.message}"
                        raise
                added.append(self._model(DatasetItem, answer))
        except BaseException:
            for item in added:
                self._call("DELETE", f"/api/datasets/{_segment(dataset_id)}/items/{_segment(item.id)}")
            raise
        return added


Datasets: TypeAlias = "HttpDatasets | DatasetService"


class HttpAdapters(HttpClient):
    """The adapter commands of the CLI against a server's JSON API (the AdapterService methods they use)."""

    def list_page(self, active: bool | None = None, base_model_id: str | None = None, q: str | None = None,
                  group_by_name: bool = False, page: int = 1, page_size: int = 50) -> Page[Any]:  # fmt: skip
        params = {"active": active, "base_model_id": base_model_id, "q": q, "group_by_name": group_by_name,
                  "page": page, "page_size": page_size}  # fmt: skip
        answer = self._call("GET", "/api/adapters", params={k: v for k, v in params.items() if v is not None})
        return self._model(Page[AdapterGroup] if group_by_name else Page[AdapterItem], answer)

    def detail(self, adapter_id: str) -> AdapterDetail:
        return self._model(AdapterDetail, self._call("GET", f"/api/adapters/{_segment(adapter_id)}"))

    def register(self, data: AdapterCreate) -> AdapterDetail:
        body = data.model_dump(mode="json", exclude_none=True)
        return self._model(AdapterDetail, self._call("POST", "/api/adapters", json=body))

    def activate(self, adapter_id: str) -> AdapterDetail:
        return self._model(AdapterDetail, self._call("POST", f"/api/adapters/{_segment(adapter_id)}/activate"))

    def deactivate(self, adapter_id: str) -> AdapterDetail:
        return self._model(AdapterDetail, self._call("POST", f"/api/adapters/{_segment(adapter_id)}/deactivate"))

    def update(self, adapter_id: str, data: AdapterUpdate) -> AdapterDetail:
        body = data.model_dump(mode="json", exclude_none=True)
        return self._model(AdapterDetail, self._call("PATCH", f"/api/adapters/{_segment(adapter_id)}", json=body))

    def delete(self, adapter_id: str) -> Adapter:
        return self._model(Adapter, self._call("DELETE", f"/api/adapters/{_segment(adapter_id)}"))

    def compare(self, adapter_ids: list[str]) -> AdapterComparison:
        answer = self._call("GET", "/api/adapters/compare", params={"ids": ",".join(adapter_ids)})
        return self._model(AdapterComparison, answer)

    def versions(self, name: str) -> AdapterVersions:
        return self._model(AdapterVersions, self._call("GET", "/api/adapters/versions", params={"name": name}))

    def roll_back(self, name: str) -> AdapterDetail:
        return self._model(AdapterDetail, self._call("POST", "/api/adapters/rollback", json={"name": name}))

    def export(self, adapter_id: str) -> tuple[Path, str]:
        """The server's zip of the adapter, downloaded to a temporary file, and its name."""
        response = self._http.get(f"/api/adapters/{_segment(adapter_id)}/export")
        if response.status_code != 200:
            self._answer(response)  # raises the error it answered with
            raise self._bad_response(response, "no archive")
        filename = response.headers.get("content-disposition", "").partition('filename="')[2].rstrip('"')
        with tempfile.NamedTemporaryFile("wb", suffix=".zip", delete=False) as file:
            file.write(response.content)
        return Path(file.name), filename or f"{adapter_id}.zip"

    def import_archive(self, source: IO[bytes], name: str | None = None, version: str | None = None,
                       base_model_id: str | None = None) -> AdapterDetail:  # fmt: skip
        fields = {k: v for k, v in (("name", name), ("version", version), ("base_model_id", base_model_id)) if v}
        answer = self._call("POST", "/api/adapters/import", data=fields, files={"archive": ("adapter.zip", source)})
        return self._model(AdapterDetail, answer)


Adapters: TypeAlias = "HttpAdapters | AdapterService"


@contextmanager
def open_adapters(settings: Settings) -> Iterator[tuple[Adapters, Opened]]:
    """The data dir's adapter registry: through its running server, else from its database file."""
    from tunelab.services.adapters import AdapterService
    from tunelab.services.models import ModelService

    with _served_or_opened(settings, HttpAdapters,
                           lambda db: AdapterService(db, settings, ModelService(db, settings))) as opened:  # fmt: skip
        yield opened


@contextmanager
def open_datasets(settings: Settings) -> Iterator[tuple[Datasets, Opened]]:
    """The data dir's datasets: through its running server, else from its database file."""
    from tunelab.services.datasets import DatasetService

    with _served_or_opened(settings, HttpDatasets, lambda db: DatasetService(db, settings)) as opened:
        yield opened


@contextmanager
def open_models(settings: Settings) -> Iterator[tuple[Models, Opened]]:
    """The data dir's base models: through its running server, else from its database file (created if need be:
    the commands that use this register models, or list them, which an empty database answers)."""
    from tunelab.services.models import ModelService

    with _served_or_opened(settings, HttpModels, lambda db: ModelService(db, settings)) as opened:
        yield opened


@contextmanager
def _served_or_opened(
    settings: Settings, http: Callable[[str], Any], local: Callable[[Database], Any]
) -> Iterator[tuple[Any, Opened]]:
    """`http(url)` of the data dir's running server, else `local(db)` over its database file (made if need be)."""
    url = running_server(settings)
    if url:
        yield http(url), Opened(settings.db_path, url=url)
        return
    exists = settings.db_path.exists()
    settings.ensure_dirs()
    db = _open_database(settings)
    try:
        yield local(db), Opened(settings.db_path, created=not exists)
    finally:
        db.close()


@dataclass(frozen=True)
class Opened:
    """Where a client's experiments are: a server (url), or the database file it opened itself."""

    db: Path
    url: str | None = None
    created: bool = False  # the file did not exist: this call created it
    missing: bool = False  # the file does not exist and was not created: it reads as an empty database


@contextmanager
def open_experiments(settings: Settings, *, create: bool) -> Iterator[tuple[Experiments, Opened]]:
    """The data dir's experiments: through its running server, else from its database file. A file that does not
    exist is created only when `create` is set (a write that makes something new); otherwise it reads as empty."""
    from tunelab.services.experiments import ExperimentService

    url = running_server(settings)
    if url:
        yield HttpTracker(url), Opened(settings.db_path, url=url)
        return
    exists = settings.db_path.exists()
    if not exists and not create:
        db, opened = _empty_database(), Opened(settings.db_path, missing=True)
    else:
        if not exists:
            settings.ensure_dirs()
        db, opened = _open_database(settings), Opened(settings.db_path, created=not exists)
    try:
        yield ExperimentService(db), opened
    finally:
        db.close()


def _empty_database() -> Database:
    """A fresh in-memory database: it answers every read exactly as a new file would, validation included."""
    from tunelab.store import Database

    return Database(Path(":memory:"))


def _open_database(settings: Settings) -> Database:
    from tunelab.store import Database

    try:
        return Database(settings.db_path)
    except StoreBusy as exc:
        # A server left its address but does not answer, and something still holds the file: most likely
        # that server, hung or still starting. Say so rather than only that the file is locked.
        listed = server_address(settings)
        if listed is None:
            raise
        raise ServerUnavailable(
            f"The TuneLab server at {listed} holds the database {settings.db_path} but does not answer",
            details={"url": listed, "db": str(settings.db_path)},
        ) from exc


_ELSEWHERE = "If your data is elsewhere, pass --data-dir DIR or set TUNELAB_DATA_DIR."


def opening_note(experiments: Experiments, opened: Opened) -> str | None:
    """What to tell the user about the database a client opened itself (None: it went through a server)."""
    if opened.url is not None:
        return None
    if opened.missing:
        return f"There is no TuneLab database at {opened.db}; nothing was created. {_ELSEWHERE}"
    if opened.created:
        return f"Created a new TuneLab database at {opened.db} (no server holds one there). {_ELSEWHERE}"
    if _holds_none(experiments):
        return f"Opened {opened.db} (no server holds it): it holds no experiments. {_ELSEWHERE}"
    return f"Opened {opened.db} (no server holds it)."


def _holds_none(experiments: Experiments) -> bool:
    return experiments.list_page(ExperimentFilter(include_archived=True, page_size=1)).total == 0
