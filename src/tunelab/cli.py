"""The `tunelab` command: serve the studio, run JSON operations, inspect experiments, make models."""

from __future__ import annotations

import errno
import math
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from tunelab.config import DEFAULT_DATA_DIR, Settings
from tunelab.domain.common import Page
from tunelab.domain.experiments import Experiment, ExperimentFilter, ExperimentSort
from tunelab.errors import TuneLabError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tunelab.client import Adapters, Datasets, Experiments, Models
    from tunelab.domain.datasets import Dataset


def _without_flag_types(params: list[Any]) -> list[Any]:
    """Typer's rich help (0.29) prints a value type after every option, so flags, `--help` included, read
    `--all <bool>` as if they took a value; its plain help skips flags. A blank metavar blanks that column."""
    for param in params:
        if isinstance(param, TyperOption) and (param.is_flag or param.count) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_types(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_types(super().get_params(ctx))


def _group(help_text: str) -> typer.Typer:
    return typer.Typer(cls=Group, help=help_text, no_args_is_help=True)


app = _group("TuneLab: fine-tune MusicGen with LoRA adapters from human feedback.")
experiments_app = _group("List, show, archive and unarchive experiments.")
models_app = _group("Base models: list and register MusicGen folders, or create the tiny local MusicGen.")
app.add_typer(experiments_app, name="experiments")
app.add_typer(models_app, name="models")
datasets_app = _group("Datasets of rated clips or preference pairs: create, import, list, show, export.")
app.add_typer(datasets_app, name="datasets")
runs_app = _group("Training runs: start one on an experiment's dataset, follow its terminal output, cancel it.")
app.add_typer(runs_app, name="runs")
adapters_app = _group("The adapter registry: list, show, register, activate, deactivate, rename, delete, compare, "
                      "versions, roll back, export and import LoRA adapters.")  # fmt: skip
app.add_typer(adapters_app, name="adapters")

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", metavar="DIR", help=f"Data directory (default: $TUNELAB_DATA_DIR, else {DEFAULT_DATA_DIR})."
    ),
]


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return Settings(**overrides)


@app.command(cls=Command)
def serve(
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option(metavar="HOST", help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, metavar="PORT", help="Port to listen on (default 8000; 0: any free one)."),
    ] = None,
) -> None:
    """Start the studio's web server and API."""
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = _settings(data_dir, **overrides)
    # Bound before anything else, so that a busy port fails before the database is opened, and the URL is
    # printed and the address file written only for a server that got its socket.
    with _listen(settings.host, settings.port) as sock:
        _log_to_stderr()
        application = _application(settings)
        _serve(application, sock, settings)


def _log_to_stderr() -> None:
    """The server's own events on stderr, in uvicorn's style: runs started and ended, adapters and models
    registered, jobs queued again, and on a first start the tiny MusicGen being made (trained once per machine)."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    logger = logging.getLogger("tunelab")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (port 0: any free one), or exit 1 saying why not."""
    # IPPROTO_TCP said outright: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on connections of a
    # socket whose protocol reads as TCP, and with the default 0 every keep-alive answer waited ~40 ms for the
    # client's delayed ACK.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted connections on Linux
    # As uvicorn does: a restart need not wait for the previous server's connections to leave TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # from here connections queue until uvicorn accepts them, instead of being refused
    except (OSError, OverflowError) as exc:  # OverflowError: a port past 65535 (from TUNELAB_PORT)
        sock.close()
        typer.secho(f"error: {_cannot_listen(host, port, exc)}", fg="red", err=True)
        raise typer.Exit(1) from None
    return sock


def _cannot_listen(host: str, port: int, exc: OSError | OverflowError) -> str:
    where = f"{host}:{port}"
    if not isinstance(exc, OSError) or exc.errno != errno.EADDRINUSE:
        return f"cannot listen on {where}: {getattr(exc, 'strerror', None) or exc}"
    other = _free_port_after(host, port)
    return (
        f"{where} is already in use (by another TuneLab server, or another program). Choose another port: "
        f"`make run PORT={other}` or `tunelab serve --port {other}`."
    )


def _free_port_after(host: str, port: int) -> int:
    """The first port after `port` that is free on `host`, to suggest; port + 1 when none is found nearby."""
    for candidate in range(port + 1, min(port + 100, 65536)):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
            return candidate
    return port + 1


def _application(settings: Settings) -> FastAPI:
    from tunelab.app import create_app

    try:
        return create_app(settings)
    except TuneLabError as exc:
        typer.secho(f"error: {exc.message}", fg="red", err=True)
        raise typer.Exit(1) from None


def _serve(application: FastAPI, sock: socket.socket, settings: Settings) -> None:
    """Serve on the bound socket until stopped; the address file lives exactly as long as the server."""
    import uvicorn

    from tunelab.client import remove_server_file, write_server_file

    bound_port = sock.getsockname()[1]  # the one the system chose, for port 0
    url = f"http://{f'[{settings.host}]' if ':' in settings.host else settings.host}:{bound_port}"
    write_server_file(settings, url)
    try:
        typer.secho(f"TuneLab is running at {url}  (data: {settings.data_dir}; API docs: {url}/docs)", fg="green")
        # uvicorn re-raises SIGTERM after its graceful shutdown; as SystemExit it lets `finally` remove the file.
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
        config = uvicorn.Config(application, host=settings.host, port=bound_port, log_level="info")
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        remove_server_file(settings)


@app.command(cls=Command)
def ops(data_dir: DataDirOption = None) -> None:
    """Read one JSON operation on stdin and write one JSON answer on stdout (exit 1 on error)."""
    import json

    from tunelab import ops as operations

    # Bytes, not text: decoding is the parser's job, so that bad UTF-8 is invalid_json like any other bad input.
    raw = sys.stdin.buffer.read() if sys.stdin is not None else b""
    answer, code = operations.run(raw, _settings(data_dir), notify=_note)
    sys.stdout.write(json.dumps(answer) + "\n")
    raise typer.Exit(code)


def _note(text: str) -> None:
    typer.secho(f"tunelab: {text}", fg="yellow", err=True)


@contextmanager
def _experiments(data_dir: Path | None) -> Iterator[Experiments]:
    """The data dir's experiments for a command that creates nothing: a database that does not exist reads as empty."""
    from tunelab.client import open_experiments, opening_note

    try:
        with open_experiments(_settings(data_dir), create=False) as (experiments, opened):
            note = opening_note(experiments, opened)
            if note:
                _note(note)
            yield experiments
    except TuneLabError as exc:
        typer.secho(f"error [{exc.code}]: {exc.message}", fg="red", err=True)
        raise typer.Exit(1) from None


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def _metrics(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(values.items())) or "-"


def _row(e: Experiment) -> list[str]:
    return [
        e.id,
        e.name,
        e.status.value,
        str(e.run_count),
        _metrics(e.best_metrics),
        f"{e.created_at:%Y-%m-%d %H:%M}",
    ]


_SORT_HELP = (
    f"One of {', '.join(order.value for order in ExperimentSort)}; '-' is descending "
    "(default: -created_at, newest first)."
)


@experiments_app.command("list", cls=Command)
def list_experiments(
    data_dir: DataDirOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Include archived experiments.")] = False,
    status: Annotated[str | None, typer.Option(metavar="STATUS", help="Only experiments with this status.")] = None,
    q: Annotated[str | None, typer.Option("--search", metavar="TEXT", help="Only names containing this text.")] = None,
    sort: Annotated[ExperimentSort, typer.Option(metavar="ORDER", help=_SORT_HELP, show_default=False)] = (
        ExperimentSort.NEWEST
    ),
    page: Annotated[int, typer.Option(min=1, metavar="N", help="Which page to show.")] = 1,
    page_size: Annotated[int, typer.Option(min=1, max=500, metavar="N", help="Experiments per page.")] = 20,
) -> None:
    """Show experiments as a table, a page at a time."""
    flt = _list_filter(status=status, q=q, sort=sort, page=page, page_size=page_size, include_archived=all_)
    with _experiments(data_dir) as experiments:
        result = experiments.list_page(flt)
    headers = ["ID", "NAME", "STATUS", "RUNS", "BEST METRICS", "CREATED"]
    typer.echo(_table(headers, [_row(e) for e in result.items]))
    typer.echo(f"\n{_page_line(result)}")


_OPTION_OF = {"q": "--search", "page_size": "--page-size", "include_archived": "--all"}


def _list_filter(**fields: Any) -> ExperimentFilter:
    """The filter, or a usage error (exit 2) naming the option whose value is out of bounds."""
    from pydantic import ValidationError

    try:
        return ExperimentFilter(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0])
        raise typer.BadParameter(first["msg"], param_hint=_OPTION_OF.get(field, f"--{field}")) from None


def _page_line(result: Page[Experiment]) -> str:
    """How many of how many, which page of how many, and how to get the next one."""
    pages = max(1, math.ceil(result.total / result.page_size))
    line = f"{len(result.items)} of {result.total} experiment(s), page {result.page} of {pages}"
    if result.page < pages:
        return f"{line}; --page {result.page + 1} for more"
    if result.page > pages:
        return f"{line}; the last page is {pages}"
    return line


ExperimentArgument = Annotated[
    str,
    typer.Argument(
        metavar="NAME_OR_ID",
        help="The experiment's id, or its exact name (archived ones included); an id wins over a name.",
    ),
]
E = TypeVar("E", bound=Experiment)


def _find(experiments: Experiments, ref: str, fetch: Callable[[str], E]) -> E:
    """`fetch` of the experiment whose id is `ref`, else of the one named `ref`; experiment_not_found if neither."""
    from tunelab.domain.common import ID_PATTERN
    from tunelab.errors import NotFound

    if ID_PATTERN.match(ref):  # anything else is no id, and would not even reach the server's id route
        try:
            return fetch(ref)
        except NotFound as exc:
            if exc.code != "experiment_not_found":
                raise
    named = _id_of_name(experiments, ref)
    if named is None:
        raise NotFound(
            f"No experiment has the id or the name {ref!r} (archived ones included); "
            "`tunelab experiments list --all` lists them",
            code="experiment_not_found", details={"experiment": ref},
        )  # fmt: skip
    return fetch(named)


def _id_of_name(experiments: Experiments, name: str) -> str | None:
    from pydantic import ValidationError

    try:
        flt = ExperimentFilter(name=name, include_archived=True, page_size=1)
    except ValidationError:  # longer than any name can be, or not valid Unicode: no experiment has it
        return None
    page = experiments.list_page(flt)
    return page.items[0].id if page.items else None


@experiments_app.command("show", cls=Command)
def show_experiment(experiment: ExperimentArgument, data_dir: DataDirOption = None) -> None:
    """Show one experiment with its runs."""
    with _experiments(data_dir) as experiments:
        detail = _find(experiments, experiment, experiments.detail)
    typer.secho(f"{detail.name}  [{detail.status.value}]", bold=True)
    for label, value in [
        ("id", detail.id), ("description", detail.description or "-"), ("dataset", detail.dataset_id or "-"),
        ("created", f"{detail.created_at:%Y-%m-%d %H:%M:%S}"), ("git commit", detail.provenance.git_commit or "-"),
        ("best metrics", _metrics(detail.best_metrics)), ("error", detail.execution.error or "-"),
    ]:  # fmt: skip
        typer.echo(f"  {label:<13} {value}")
    rows = [[r.id, r.name, r.status.value, "-" if r.final_loss is None else f"{r.final_loss:.4g}"] for r in detail.runs]
    typer.echo("\n" + _table(["RUN", "NAME", "STATUS", "FINAL LOSS"], rows))


@experiments_app.command("archive", cls=Command)
def archive_experiment(experiment: ExperimentArgument, data_dir: DataDirOption = None) -> None:
    """Archive an experiment (it can be unarchived later); one already archived is left as it is."""
    with _experiments(data_dir) as experiments:
        found = _find(experiments, experiment, experiments.get)
        if found.archived:
            typer.echo(f"{found.name} ({found.id}) is already archived; nothing changed")
            return
        archived = experiments.archive(found.id)
    typer.echo(f"Archived {archived.name} ({archived.id}); `tunelab experiments unarchive {archived.id}` undoes it")


@experiments_app.command("unarchive", cls=Command)
def unarchive_experiment(experiment: ExperimentArgument, data_dir: DataDirOption = None) -> None:
    """Bring an archived experiment back (status draft); one that is not archived is left as it is."""
    with _experiments(data_dir) as experiments:
        found = _find(experiments, experiment, experiments.get)
        if not found.archived:
            typer.echo(f"{found.name} ({found.id}) is not archived (status {found.status.value}); nothing changed")
            return
        unarchived = experiments.unarchive(found.id)
    typer.echo(f"Unarchived {unarchived.name} ({unarchived.id}); status {unarchived.status.value}")


@contextmanager
def _models(data_dir: Path | None) -> Iterator[Models]:
    from tunelab.client import open_models

    with _opened(open_models(_settings(data_dir))) as models:
        yield models


@contextmanager
def _opened(opening: Any) -> Iterator[Any]:
    """What `opening` (client.open_models, open_datasets) yields; says when it opened the file itself, and turns
    TuneLab errors into a message and exit 1."""
    try:
        with opening as (opened_thing, opened):
            if opened.url is None:
                _note(f"no server holds {opened.db}; opened it directly")
            yield opened_thing
    except TuneLabError as exc:
        typer.secho(f"error [{exc.code}]: {exc.message}", fg="red", err=True)
        raise typer.Exit(1) from None


@models_app.command("list", cls=Command)
def list_models(data_dir: DataDirOption = None) -> None:
    """Show the registered base models; * marks the current one."""
    with _models(data_dir) as models:
        found = models.list()
    if not found:
        typer.echo("No base models yet: `tunelab serve` (or `make run`) creates the tiny one on first start, and "
                   "`tunelab models add PATH` registers a MusicGen folder.")  # fmt: skip
        return
    rows = [[("* " if m.current else "  ") + m.id, m.display_name, f"{m.sample_rate} Hz", f"{m.max_duration_s:g} s",
             str(m.num_codebooks), m.path] for m in found]  # fmt: skip
    typer.echo(_table(["  ID", "NAME", "RATE", "MAX", "CODEBOOKS", "PATH"], rows))


@models_app.command("add", cls=Command)
def add_model(
    path: Annotated[
        str, typer.Argument(metavar="PATH", help="A MusicGen folder in Hugging Face format (or a hub id).")
    ],
    model_id: Annotated[
        str | None, typer.Option("--id", metavar="ID", help="Its id (default: the folder name).")
    ] = None,
    display_name: Annotated[str | None, typer.Option(metavar="NAME", help="The name pages show.")] = None,
    max_duration: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="The longest clip to generate (default: what it allows).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register a local MusicGen folder (config, safetensors weights, processor), checked without loading it."""
    from pydantic import ValidationError

    from tunelab.domain.models import BaseModelCreate

    local = Path(path).expanduser()
    try:
        given: dict[str, Any] = {"path": str(local.resolve()) if local.exists() else path, "id": model_id,
                                 "display_name": display_name, "max_duration_s": max_duration}  # fmt: skip
        data = BaseModelCreate.model_validate({key: value for key, value in given.items() if value is not None})
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"]) from None
    with _models(data_dir) as models:
        added = models.add(data)
    current = " (the current model)" if added.current else ""
    typer.echo(f"Registered {added.id}{current}: {added.sample_rate} Hz, {added.num_codebooks} codebooks, "
               f"up to {added.max_duration_s:g} s")  # fmt: skip


@contextmanager
def _datasets(data_dir: Path | None) -> Iterator[Datasets]:
    from tunelab.client import open_datasets

    with _opened(open_datasets(_settings(data_dir))) as datasets:
        yield datasets


DatasetArgument = Annotated[str, typer.Argument(metavar="NAME_OR_ID", help="A dataset's id or exact name.")]


def _dataset(datasets: Datasets, ref: str) -> Dataset:
    found = [d for d in datasets.list_page().items if ref in (d.id, d.name)]
    if not found:
        raise TuneLabError(f"No dataset has the id or name {ref!r}; `tunelab datasets list` shows them",
                           code="dataset_not_found")  # fmt: skip
    return next((d for d in found if d.id == ref), found[0])


@datasets_app.command("list", cls=Command)
def list_datasets(data_dir: DataDirOption = None) -> None:
    """Show the datasets, newest first."""
    with _datasets(data_dir) as datasets:
        found = datasets.list_page().items
    if not found:
        typer.echo("No datasets yet: `tunelab datasets create NAME --type supervised`, `tunelab datasets import DIR`, "
                   "or the demo dataset on the studio's Datasets page.")  # fmt: skip
        return
    rows = [[d.id, d.name, d.type.value, str(d.item_count), f"{d.total_duration_s:.1f} s",
             f"{d.created_at:%Y-%m-%d %H:%M}"] for d in found]  # fmt: skip
    typer.echo(_table(["ID", "NAME", "TYPE", "ITEMS", "AUDIO", "CREATED"], rows))


@datasets_app.command("create", cls=Command)
def create_dataset(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Its name (unique).")],
    kind: Annotated[
        str, typer.Option("--type", metavar="TYPE", help="supervised (rated clips) or preference (pairs).")
    ],
    description: Annotated[str | None, typer.Option(metavar="TEXT", help="What it holds.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create an empty dataset; add clips on the studio's Datasets page, or import a folder."""
    from pydantic import ValidationError

    from tunelab.domain.datasets import DatasetCreate

    try:
        data = DatasetCreate.model_validate({"name": name, "type": kind, "description": description})
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"], param_hint=f"--{exc.errors()[0]['loc'][0]}") from None
    with _datasets(data_dir) as datasets:
        created = datasets.create(data)
    typer.echo(f"Created {created.type.value} dataset {created.name} ({created.id})")


@datasets_app.command("import", cls=Command)
def import_dataset(
    source: Annotated[Path, typer.Argument(metavar="DIR_OR_ZIP", help="A folder or .zip with a JSONL manifest.")],
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="The new dataset's name (default: the folder's).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Make a dataset from a folder (or zip) holding audio and a JSONL manifest beside it (data.jsonl, or its only
    .jsonl file): lines {"prompt", "audio_path", "rating"} make a supervised dataset, lines {"prompt",
    "chosen_path", "rejected_path"} a preference one; paths are relative to the manifest. All items or none."""
    import json
    import tempfile

    from tunelab.domain.datasets import DatasetCreate, DatasetType
    from tunelab.services.datasets import check_manifest

    with tempfile.TemporaryDirectory(prefix="tunelab-import-") as scratch:
        try:
            folder = _unpacked(source, Path(scratch))
            manifest = _manifest(folder)
            records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            typer.secho(f"error [invalid_import]: {exc}", fg="red", err=True)
            raise typer.Exit(1) from None
        supervised = all(isinstance(r, dict) and "audio_path" in r for r in records)
        kind = DatasetType.SUPERVISED if supervised else DatasetType.PREFERENCE
        with _datasets(data_dir) as datasets:
            # Every line and clip is checked before the dataset is made, so a bad manifest makes nothing.
            check_manifest(kind, records, manifest.parent)
            created = datasets.create(DatasetCreate(name=name or source.stem, type=kind))
            items = datasets.add_items(created.id, records, manifest.parent, source="import")
    typer.echo(f"Imported {len(items)} item(s) into {kind.value} dataset {created.name} ({created.id})")


def _unpacked(source: Path, scratch: Path) -> Path:
    """The folder to import: `source` itself, or a zip's contents unpacked into `scratch` (at most 4 GB)."""
    import zipfile

    if source.is_dir():
        return source
    if not zipfile.is_zipfile(source):
        raise ValueError(f"{source} is neither a folder nor a zip file")
    with zipfile.ZipFile(source) as archive:
        if sum(entry.file_size for entry in archive.infolist()) > 4 * 1024**3:
            raise ValueError(f"{source} unpacks to more than 4 GB")
        archive.extractall(scratch)  # zipfile drops absolute paths and '..' from member names
    return scratch


def _manifest(folder: Path) -> Path:
    candidates = [folder / "data.jsonl"] if (folder / "data.jsonl").is_file() else sorted(folder.rglob("*.jsonl"))
    if len(candidates) != 1:
        raise ValueError(f"{folder} needs one JSONL manifest (data.jsonl); found {len(candidates)}")
    return candidates[0]


@datasets_app.command("show", cls=Command)
def show_dataset(dataset: DatasetArgument, data_dir: DataDirOption = None) -> None:
    """Show one dataset with its items."""
    with _datasets(data_dir) as datasets:
        detail = datasets.detail(_dataset(datasets, dataset).id)
    typer.echo(f"{detail.name} ({detail.id}): {detail.type.value}, {detail.item_count} item(s), "
               f"{detail.total_duration_s:.1f} s of audio")  # fmt: skip
    if detail.items:
        rows = [[i.id, str(i.rating) if i.rating is not None else "-", f"{i.duration_s:.2f} s", i.source,
                 i.prompt[:60]] for i in detail.items]  # fmt: skip
        typer.echo(_table(["ITEM", "RATING", "AUDIO", "SOURCE", "PROMPT"], rows))


@datasets_app.command("export", cls=Command)
def export_dataset(dataset: DatasetArgument, data_dir: DataDirOption = None) -> None:
    """Write the dataset as the training command's JSONL and record it as an artifact."""
    with _datasets(data_dir) as datasets:
        artifact = datasets.export(_dataset(datasets, dataset).id)
    typer.echo(f"Exported to {artifact.uri} (artifact {artifact.id}, sha256 {artifact.sha256})")


def _server(data_dir: Path | None, what: str) -> Any:
    """The running server of the data dir, as an HTTP client; runs are trained by the server's scheduler."""
    from tunelab.client import HttpClient, running_server

    settings = _settings(data_dir)
    url = running_server(settings)
    if url is None:
        typer.secho(f"error [server_unavailable]: {what} needs the TuneLab server of {settings.data_dir}: start it "
                    "with `make run` or `tunelab serve`", fg="red", err=True)  # fmt: skip
        raise typer.Exit(1)
    return HttpClient(url)


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    import json

    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        try:
            config[key.strip()] = json.loads(value)
        except ValueError:
            config[key.strip()] = value  # a bare word: a string (lora_target_modules=q_proj,v_proj)
    return config


@runs_app.command("start", cls=Command)
def start_run(
    experiment: ExperimentArgument,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="A training option (epochs=1, learning_rate=2e-4 …); repeat it."
        ),
    ] = None,  # fmt: skip
    name: Annotated[str | None, typer.Option(metavar="NAME", help="The run's name (default: run-N).")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Queue a training run of the experiment's dataset on the current base model (needs the running server)."""
    server = _server(data_dir, "Starting a run")
    body: dict[str, Any] = {"config": _parse_sets(sets or [])}
    if name:
        body["name"] = name
    try:
        with _experiments(data_dir) as experiments:
            experiment_id = _find(experiments, experiment, experiments.get).id
        run = server._call("POST", f"/api/experiments/{experiment_id}/runs", json=body)
    except TuneLabError as exc:
        typer.secho(f"error [{exc.code}]: {exc.message}", fg="red", err=True)
        raise typer.Exit(1) from None
    note = f": {run['error']}" if run.get("error") else ""
    typer.echo(f"Run {run['name']} ({run['id']}) is {run['status']}{note}")
    if run["status"] == "pending":
        typer.echo(f"Follow it with: tunelab runs logs {run['id']} --follow")


@runs_app.command("logs", cls=Command)
def run_logs(
    run: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing as the run writes, until it ends.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Print a run's terminal output as raw bytes (bars and colours as they were); without a server, from its file."""
    import base64
    import json

    from tunelab.client import running_server

    settings = _settings(data_dir)
    out = sys.stdout.buffer
    url = running_server(settings)
    if url is None:
        if follow:
            _note("no server is running: printing the log as it is now")
        path = settings.data_dir / "runs" / run / "output.log"
        if "/" in run or not path.is_file():
            typer.secho(f"error [log_not_found]: no log of run {run!r} in {settings.data_dir}", fg="red", err=True)
            raise typer.Exit(1)
        out.write(path.read_bytes())
        out.flush()
        return
    import httpx

    with httpx.Client(base_url=url, timeout=None) as http:
        if not follow:
            response = http.get(f"/api/runs/{run}/logs", params={"download": True})
            if response.status_code != 200:
                typer.secho(f"error [{response.json()['error']['code']}]: {response.json()['error']['message']}",
                            fg="red", err=True)  # fmt: skip
                raise typer.Exit(1)
            out.write(response.content)
            out.flush()
            return
        with http.stream("GET", f"/api/runs/{run}/logs/stream") as stream:
            if stream.status_code != 200:
                stream.read()
                typer.secho(f"error [{stream.json()['error']['code']}]: {stream.json()['error']['message']}",
                            fg="red", err=True)  # fmt: skip
                raise typer.Exit(1)
            kind = "message"
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and kind == "message":
                    out.write(base64.b64decode(line.split(":", 1)[1].strip()))
                    out.flush()
                elif line.startswith("data:") and kind == "end":
                    end = json.loads(line.split(":", 1)[1])
                    typer.secho(f"\n[run {end['status']}, exit status {end['exit_code']}]", err=True)
                    return
                elif line == "":
                    kind = "message"


@runs_app.command("cancel", cls=Command)
def cancel_run(
    run: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")],
    data_dir: DataDirOption = None,
) -> None:
    """Cancel a run: a queued one leaves the queue; a running one's process is stopped (needs the running server)."""
    server = _server(data_dir, "Cancelling a run")
    try:
        answer = server._call("POST", f"/api/runs/{run}/cancel")
    except TuneLabError as exc:
        typer.secho(f"error [{exc.code}]: {exc.message}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Run {answer['name']} ({answer['id']}) is {answer['status']}")


@contextmanager
def _adapters(data_dir: Path | None) -> Iterator[Adapters]:
    from tunelab.client import open_adapters

    with _opened(open_adapters(_settings(data_dir))) as adapters:
        yield adapters


AdapterArgument = Annotated[
    str,
    typer.Argument(
        metavar="ADAPTER", help="An adapter id (adp-…), NAME@VERSION, or a NAME (its active, else newest, version)."
    ),  # fmt: skip
]


def _adapter_id(adapters: Adapters, ref: str) -> str:
    """The id of the adapter `ref` names: an id, NAME@VERSION, or NAME (the active version, else the newest)."""
    if ref.startswith("adp-"):
        return ref
    name, _, version = ref.rpartition("@") if "@" in ref else (ref, "", "")
    found = [item for group in adapters.list_page(q=name, group_by_name=True, page_size=500).items
             if group.name == name for item in group.versions]  # fmt: skip
    if version:
        found = [item for item in found if item.version == version]
    if not found:
        raise TuneLabError(f"No adapter is {ref!r}; `tunelab adapters list` shows them", code="adapter_not_found")
    chosen = next((item for item in found if item.active), found[-1])
    return str(chosen.id)


def _adapter_rows(items: list[Any]) -> list[list[str]]:
    return [[("* " if a.active else "  ") + a.id, a.name, a.version, a.base_model_id or "-",
             "yes" if a.compatible else "no", a.source.value, _metrics(_numbers(a.metrics)),
             f"{a.created_at:%Y-%m-%d %H:%M}"] for a in items]  # fmt: skip


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    keys = ("final_loss", "best_eval_loss", "reward_accuracy")
    return {k: float(v) for k, v in metrics.items() if k in keys and isinstance(v, int | float)}


_ADAPTER_HEADERS = ["  ID", "NAME", "VERSION", "BASE MODEL", "FITS", "SOURCE", "METRICS", "CREATED"]


@adapters_app.command("list", cls=Command)
def list_adapters(
    active: Annotated[bool | None, typer.Option("--active/--inactive", help="Only active, or only inactive.")] = None,
    model: Annotated[str | None, typer.Option("--model", metavar="ID", help="Trained on this base model.")] = None,
    search: Annotated[str | None, typer.Option("--search", metavar="TEXT", help="Part of a name or version.")] = None,
    group: Annotated[bool, typer.Option("--group", help="Versions grouped under their name.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Show the adapters (not deleted), newest first; * marks active ones; FITS: trained on the current model."""
    with _adapters(data_dir) as adapters:
        page = adapters.list_page(active, model, search, group, 1, 500)
    if not page.items:
        typer.echo("No adapters yet: a run that completes registers its adapter, `tunelab adapters register PATH "
                   "--name N --version V` registers a folder trained elsewhere, `tunelab adapters import ZIP` an "
                   "exported one.")  # fmt: skip
        return
    if group:
        for entry in page.items:
            typer.echo(f"\n{entry.name}")
            typer.echo(_table(_ADAPTER_HEADERS, _adapter_rows(entry.versions)))
    else:
        typer.echo(_table(_ADAPTER_HEADERS, _adapter_rows(page.items)))
    if page.total > len(page.items):
        typer.echo(f"({len(page.items)} of {page.total}; narrow with --search or --model)")


@adapters_app.command("show", cls=Command)
def show_adapter(adapter: AdapterArgument, data_dir: DataDirOption = None) -> None:
    """Show one adapter: base model and compatibility, provenance, LoRA, metrics and its training config."""
    with _adapters(data_dir) as adapters:
        detail = adapters.detail(_adapter_id(adapters, adapter))
    state = "active" if detail.active else "inactive"
    typer.echo(f"{detail.name} {detail.version} ({detail.id}), {state}")
    if detail.description:
        typer.echo(f"  {detail.description}")
    base = detail.base_model
    model = f"{base.display_name} ({base.id}), {base.sample_rate} Hz, up to {base.max_duration_s:g} s" if base else "-"
    fits = "yes" if detail.compatible else f"no: {detail.compatibility.reason}"
    lora = detail.lora
    rows = [["Base model", model], ["Fits the current model", fits], ["Source", detail.provenance.note],
            ["Experiment", detail.experiment_id or "-"], ["Run", detail.run_id or "-"],
            ["Dataset", detail.training_dataset_id or "-"], ["Files", detail.storage_path],
            ["LoRA", f"r={lora.get('r')}, alpha={lora.get('lora_alpha')}, "
                     f"{', '.join(lora.get('target_modules', []))} ({lora.get('parameters', 0):,} parameters)"],
            ["Metrics", _metrics(_numbers(detail.metrics))],
            ["Generations", str(detail.usage.generations)]]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    typer.echo("\n".join(f"  {label.ljust(width)}  {value}" for label, value in rows))
    if detail.configuration is None:
        typer.echo("\nNo training configuration: it was trained outside TuneLab.")
        return
    for group in detail.configuration:
        typer.echo(f"\n{group.name}")
        typer.echo(_table(["PARAMETER", "VALUE"], [[e.label, e.display] for e in group.entries]))


@adapters_app.command("register", cls=Command)
def register_adapter(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            help="A PEFT LoRA folder (adapter_config.json + "
            "adapter_model.safetensors) inside the data dir or an import root.",
        ),
    ],  # fmt: skip
    name: Annotated[str, typer.Option(metavar="NAME", help="Its name (1–100 characters).")],
    version: Annotated[str, typer.Option(metavar="VERSION", help="Its version, unique for the name (1.0, …).")],
    model: Annotated[
        str | None,
        typer.Option("--model", metavar="ID", help="Its base model (default: the one adapter_config.json names)."),
    ] = None,  # fmt: skip
    description: Annotated[str | None, typer.Option(metavar="TEXT", help="What it does.")] = None,
    training_config: Annotated[
        Path | None, typer.Option(metavar="FILE", help="A JSON file of how it was trained.")
    ] = None,  # fmt: skip
    data_dir: DataDirOption = None,
) -> None:
    """Register an adapter folder, checked without loading a model (it starts inactive)."""
    import json

    from pydantic import ValidationError

    from tunelab.domain.adapters import AdapterCreate

    try:
        config = json.loads(training_config.read_text()) if training_config else None
        given = {"name": name, "version": version, "path": str(path.expanduser().resolve()), "base_model_id": model,
                 "description": description, "training_config": config}  # fmt: skip
        data = AdapterCreate.model_validate({k: v for k, v in given.items() if v is not None})
    except (OSError, ValueError) as exc:
        message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise typer.BadParameter(message) from None
    with _adapters(data_dir) as adapters:
        added = adapters.register(data)
    typer.echo(f"Registered {added.name} {added.version} ({added.id}) on {added.base_model_id}: r={added.lora['r']}, "
               f"{added.lora['modules']} modules; `tunelab adapters activate {added.id}` makes it usable")  # fmt: skip


@adapters_app.command("activate", cls=Command)
def activate_adapter(adapter: AdapterArgument, data_dir: DataDirOption = None) -> None:
    """Make an adapter available for generation (the active version of its name becomes inactive)."""
    with _adapters(data_dir) as adapters:
        done = adapters.activate(_adapter_id(adapters, adapter))
    typer.echo(f"{done.name} {done.version} ({done.id}) is active")


@adapters_app.command("deactivate", cls=Command)
def deactivate_adapter(adapter: AdapterArgument, data_dir: DataDirOption = None) -> None:
    """No new generation request may use it (running ones finish)."""
    with _adapters(data_dir) as adapters:
        done = adapters.deactivate(_adapter_id(adapters, adapter))
    typer.echo(f"{done.name} {done.version} ({done.id}) is inactive")


@adapters_app.command("rename", cls=Command)
def rename_adapter(
    adapter: AdapterArgument,
    new_name: Annotated[str, typer.Argument(metavar="NEW_NAME", help="1–100 characters.")],
    data_dir: DataDirOption = None,
) -> None:
    """Give an adapter (one version) a new name."""
    from pydantic import ValidationError

    from tunelab.domain.adapters import AdapterUpdate

    try:
        data = AdapterUpdate(name=new_name)
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"], param_hint="NEW_NAME") from None
    with _adapters(data_dir) as adapters:
        done = adapters.update(_adapter_id(adapters, adapter), data)
    typer.echo(f"Renamed {done.id} to {done.name} (version {done.version})")


@adapters_app.command("delete", cls=Command)
def delete_adapter(
    adapter: AdapterArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Delete an adapter from the registry (its files stay on disk; its name and version become free)."""
    with _adapters(data_dir) as adapters:
        adapter_id = _adapter_id(adapters, adapter)
        if not yes:
            found = adapters.detail(adapter_id)
            typer.confirm(f"Delete {found.name} {found.version} ({adapter_id})?", abort=True)
        done = adapters.delete(adapter_id)
    typer.echo(f"Deleted {done.name} {done.version} ({done.id}); its files stay in {done.storage_path}")


@adapters_app.command("compare", cls=Command)
def compare_adapters(
    refs: Annotated[list[str], typer.Argument(metavar="ADAPTER...", help="Two to ten adapters (ids, NAME@VERSION).")],
    all_config: Annotated[bool, typer.Option("--all", help="Every config key, not only those that differ.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Training metrics side by side (* marks the better one) and the training config keys that differ."""
    with _adapters(data_dir) as adapters:
        found = adapters.compare([_adapter_id(adapters, ref) for ref in refs])
    ids = [a.id for a in found.adapters]
    headers = ["METRIC", *[f"{a.name} {a.version}" for a in found.adapters]]

    def cell(value: Any, mark: bool) -> str:
        text = "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
        return ("* " if mark else "") + text

    rows = [[f"{key} ({entry.goal.value})", *[cell(entry.values.get(i), entry.best_id == i) for i in ids]]
            for key, entry in found.metrics.items()]  # fmt: skip
    typer.echo(_table(headers, rows) if rows else "No training metrics to compare (registered from outside).")
    keys = list(found.config) if all_config else found.differing
    if keys:
        typer.echo("")
        typer.echo(_table(["CONFIG", *headers[1:]], [[k, *[cell(found.config[k].get(i), False) for i in ids]]
                                                      for k in keys]))  # fmt: skip
    elif found.config:
        typer.echo("\nTheir training configs are the same.")


@adapters_app.command("versions", cls=Command)
def adapter_versions(
    name: Annotated[str, typer.Argument(metavar="NAME", help="An adapter name.")], data_dir: DataDirOption = None
) -> None:
    """The version timeline of a name: losses, status, run, and what a roll back would activate."""
    with _adapters(data_dir) as adapters:
        timeline = adapters.versions(name)

    def loss(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    rows = [[v.version, v.id, "active" if v.active else "-", loss(v.final_loss), loss(v.best_eval_loss),
             f"{v.created_at:%Y-%m-%d %H:%M}", v.run_id or "-"] for v in timeline.versions]  # fmt: skip
    typer.echo(_table(["VERSION", "ID", "STATUS", "FINAL LOSS", "BEST EVAL", "CREATED", "RUN"], rows))
    if timeline.roll_back_to:
        back = next(v.version for v in timeline.versions if v.id == timeline.roll_back_to)
        typer.echo(f"`tunelab adapters rollback {name}` would activate {back} again")


@adapters_app.command("rollback", cls=Command)
def roll_back_adapter(
    name: Annotated[str, typer.Argument(metavar="NAME", help="An adapter name.")], data_dir: DataDirOption = None
) -> None:
    """Activate again the version of NAME that was active before the one active now."""
    with _adapters(data_dir) as adapters:
        done = adapters.roll_back(name)
    typer.echo(f"{done.name} {done.version} ({done.id}) is active again")


@adapters_app.command("export", cls=Command)
def export_adapter(
    adapter: AdapterArgument,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Where to write it.")] = Path("."),
    unzip: Annotated[bool, typer.Option("--unzip", help="Write the PEFT folder instead of a zip.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Write an adapter as a zip (or folder) with a model card, ready for a model hub or `tunelab adapters import`."""
    import shutil
    import zipfile

    from tunelab.client import HttpAdapters

    with _adapters(data_dir) as adapters:
        path, filename = adapters.export(_adapter_id(adapters, adapter))
        out.mkdir(parents=True, exist_ok=True)
        if unzip:
            with zipfile.ZipFile(path) as archive:
                top = archive.namelist()[0].split("/", 1)[0]
                if (out / top).exists():
                    raise typer.BadParameter(f"{out / top} exists already", param_hint="--out")
                archive.extractall(out)  # our own archive: plain names under one folder
            written = out / top
        else:
            written = out / filename
            shutil.copyfile(path, written)
        if isinstance(adapters, HttpAdapters):
            path.unlink(missing_ok=True)
    typer.echo(f"Wrote {written}")


@adapters_app.command("import", cls=Command)
def import_adapter(
    archive: Annotated[Path, typer.Argument(metavar="ZIP", help="A zip made by `tunelab adapters export`.")],
    name: Annotated[str | None, typer.Option(metavar="NAME", help="Default: the name it was exported with.")] = None,
    version: Annotated[str | None, typer.Option(metavar="VERSION", help="Default: its exported version.")] = None,
    model: Annotated[str | None, typer.Option("--model", metavar="ID", help="Its base model.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register an exported adapter zip (unpacked under the data dir's adapters/imported/)."""
    if not archive.is_file():
        raise typer.BadParameter(f"{archive} is not a file", param_hint="ZIP")
    with _adapters(data_dir) as adapters, archive.open("rb") as source:
        done = adapters.import_archive(source, name, version, model)
    typer.echo(f"Imported {done.name} {done.version} ({done.id}) on {done.base_model_id}")


@models_app.command("create-tiny", cls=Command)
def create_tiny(
    directory: Annotated[Path, typer.Argument(help="Folder to write the model to.")],
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed; the same seed gives the same model.")] = 0,
) -> None:
    """Write the tiny trained MusicGen (3 MB) for tests and demos.

    It is trained on synthetic melodies the first time on a machine (about two minutes on 2 cores, with a progress
    bar), into $TUNELAB_CACHE_DIR (else $XDG_CACHE_HOME/tunelab, else ~/.cache/tunelab), and copied from there
    afterwards; another seed takes a few seconds more, once.
    """
    from tunelab.musicgen.tiny import create_tiny_musicgen

    path = create_tiny_musicgen(directory, seed=seed)
    typer.echo(f"Tiny MusicGen written to {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
