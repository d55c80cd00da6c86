"""The `tunelab` command: help texts, and `experiments list|show|archive|unarchive` with and without a server."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main
import uvicorn
from fastapi import Request, Response
from typer.testing import CliRunner

from tunelab.app import create_app
from tunelab.cli import app
from tunelab.client import remove_server_file, write_server_file
from tunelab.config import Settings
from tunelab.domain.experiments import ExperimentCreate, Provenance
from tunelab.domain.metrics import MetricBatch, MetricPoint
from tunelab.domain.runs import RunCreate, RunStatus, RunStatusUpdate
from tunelab.services import Services
from tunelab.store import Database

runner = CliRunner()


def tunelab(*args: str) -> tuple[int, str]:
    """(exit code, what the terminal shows: stdout and stderr)."""
    result = runner.invoke(app, list(args), prog_name="tunelab")
    return result.exit_code, result.output


def streams(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr)."""
    result = runner.invoke(app, list(args), prog_name="tunelab")
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def seeded(data_dir: Path) -> dict[str, str]:
    """Three experiments (one archived, one with two runs and metrics) written straight into the data dir."""
    settings = Settings(data_dir=data_dir)
    settings.ensure_dirs()
    db = Database(settings.db_path)
    try:
        services = Services.build(db)
        day = "2026-05-0{}T08:00:00Z"
        piano = services.experiments.create(
            ExperimentCreate(
                name="piano lora", description="soft piano", provenance=Provenance(created_at=day.format(1))
            )
        )
        old = services.runs.create(piano.id, RunCreate(external=True, name="first"))
        new = services.runs.create(piano.id, RunCreate(external=True, name="second"))
        services.runs.ingest(old.id, MetricBatch(points=[MetricPoint(key="loss", value=0.5, step=1)]))
        services.runs.ingest(new.id, MetricBatch(points=[MetricPoint(key="loss", value=0.25, step=1)]))
        services.runs.set_status(old.id, RunStatusUpdate(status=RunStatus.COMPLETED))
        drums = services.experiments.create(
            ExperimentCreate(name="drums", provenance=Provenance(created_at=day.format(2)))
        )
        old_one = services.experiments.create(
            ExperimentCreate(name="forgotten", provenance=Provenance(created_at=day.format(3)))
        )
        services.experiments.archive(old_one.id)
    finally:
        db.close()
    return {"piano": piano.id, "drums": drums.id, "forgotten": old_one.id, "first": old.id, "second": new.id}


# --- help --------------------------------------------------------------------------------------------------------


def test_help_lists_the_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "tunelab", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("serve", "ops", "experiments", "models"):
        assert re.search(rf"^\W*{command}\s", done.stdout, re.MULTILINE), done.stdout


def test_serve_help_names_host_port_and_data_dir() -> None:
    code, output = tunelab("serve", "--help")
    assert code == 0
    assert "Usage: tunelab serve" in output
    for option in ("--host", "--port", "--data-dir"):
        assert option in output


def test_experiments_help_lists_its_subcommands() -> None:
    code, output = tunelab("experiments", "--help")
    assert code == 0
    for command in ("list", "show", "archive", "unarchive"):
        assert re.search(rf"^\W*{command}\s", output, re.MULTILINE), output


def command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group of the CLI, as argument lists: ("experiments", "list"), …"""
    paths = [prefix]
    for name, command in getattr(group, "commands", {}).items():
        paths += command_paths(command, (*prefix, name))
    return paths


def test_flags_read_like_flags_in_every_help() -> None:
    paths = command_paths(typer.main.get_command(app))
    assert ("experiments", "list") in paths and ("serve",) in paths
    for path in paths:
        code, output = tunelab(*path, "--help")
        assert code == 0, output
        assert "<bool>" not in output, output
        assert re.search(r"--help\s+Show this message and exit", output), output
    _, output = tunelab("experiments", "list", "--help")
    assert re.search(r"--all\s+Include archived", output), output
    assert re.search(r"--status\s+STATUS\s+Only experiments", output), output


# --- experiments, reading the file ------------------------------------------------------------------------------------


def table_rows(output: str) -> list[list[str]]:
    """The table's rows split on its column boundaries (read off the dashes line under the header)."""
    lines = output.splitlines()
    dashes = next(i for i, line in enumerate(lines) if re.fullmatch(r"-+(  -+)*", line))
    spans = [m.span() for m in re.finditer(r"-+", lines[dashes])]
    rows = []
    for line in [lines[dashes - 1], *lines[dashes + 1 :]]:
        if not line.strip():
            break
        rows.append(
            [line[start : end + 2 if i < len(spans) - 1 else None].strip() for i, (start, end) in enumerate(spans)]
        )
    return rows


def test_list_shows_a_readable_table_newest_first_without_archived(data_dir: Path, seeded: dict[str, str]) -> None:
    code, output = tunelab("experiments", "list", "--data-dir", str(data_dir))

    assert code == 0, output
    rows = table_rows(output)
    assert rows[0] == ["ID", "NAME", "STATUS", "RUNS", "BEST METRICS", "CREATED"]
    assert rows[1] == [seeded["drums"], "drums", "draft", "0", "-", "2026-05-02 08:00"]
    assert rows[2] == [seeded["piano"], "piano lora", "running", "2", "loss=0.25", "2026-05-01 08:00"]
    assert len(rows) == 3
    assert output.splitlines()[-1] == "2 of 2 experiment(s), page 1 of 1"


def test_list_all_includes_archived_and_filters_work(data_dir: Path, seeded: dict[str, str]) -> None:
    code, output = tunelab("experiments", "list", "--all", "--data-dir", str(data_dir))
    assert code == 0
    assert [row[1] for row in table_rows(output)[1:]] == ["forgotten", "drums", "piano lora"]
    assert table_rows(output)[1][2] == "archived"

    code, output = tunelab("experiments", "list", "--status", "running", "--data-dir", str(data_dir))
    assert [row[1] for row in table_rows(output)[1:]] == ["piano lora"]

    code, output = tunelab("experiments", "list", "--search", "DRU", "--data-dir", str(data_dir))
    assert [row[1] for row in table_rows(output)[1:]] == ["drums"]


def test_list_of_an_empty_data_dir_is_an_empty_table(data_dir: Path) -> None:
    code, output = tunelab("experiments", "list", "--data-dir", str(data_dir))
    assert code == 0
    assert table_rows(output) == [["ID", "NAME", "STATUS", "RUNS", "BEST METRICS", "CREATED"]]
    assert output.splitlines()[-1] == "0 of 0 experiment(s), page 1 of 1"


@pytest.mark.parametrize(
    ("order", "names"),
    [
        ("-created_at", ["forgotten", "drums", "piano lora"]),
        ("created_at", ["piano lora", "drums", "forgotten"]),
        ("name", ["drums", "forgotten", "piano lora"]),
        ("-name", ["piano lora", "forgotten", "drums"]),
        ("status", ["forgotten", "drums", "piano lora"]),  # archived, draft, running
        ("-status", ["piano lora", "drums", "forgotten"]),
    ],
)
def test_list_sort(data_dir: Path, seeded: dict[str, str], order: str, names: list[str]) -> None:
    # Given as a separate argument: a value starting with '-' must not be taken for an option.
    code, output = tunelab("experiments", "list", "--all", "--sort", order, "--data-dir", str(data_dir))
    assert code == 0, output
    assert [row[1] for row in table_rows(output)[1:]] == names


def test_list_with_an_unknown_sort_names_the_orders(data_dir: Path) -> None:
    code, output = tunelab("experiments", "list", "--sort", "newest", "--data-dir", str(data_dir))
    assert code == 2
    assert "'-created_at', 'created_at', 'name'" in output


def test_list_says_which_page_and_how_to_get_the_next(data_dir: Path, seeded: dict[str, str]) -> None:
    def page(number: int) -> tuple[list[str], str]:
        code, output, _ = streams(
            "experiments", "list", "--all", "--page-size", "2", "--page", str(number), "--data-dir", str(data_dir)
        )
        assert code == 0, output
        return [row[1] for row in table_rows(output)[1:]], output.splitlines()[-1]

    assert page(1) == (["forgotten", "drums"], "2 of 3 experiment(s), page 1 of 2; --page 2 for more")
    assert page(2) == (["piano lora"], "1 of 3 experiment(s), page 2 of 2")
    assert page(3) == ([], "0 of 3 experiment(s), page 3 of 2; the last page is 2")


def test_list_shows_20_a_page_by_default(data_dir: Path) -> None:
    db = Database(Settings(data_dir=data_dir).db_path)
    try:
        for i in range(25):
            Services.build(db).experiments.create(ExperimentCreate(name=f"e{i:02}"))
    finally:
        db.close()
    code, output, _ = streams("experiments", "list", "--sort", "name", "--data-dir", str(data_dir))
    assert code == 0, output
    assert [row[1] for row in table_rows(output)[1:]] == [f"e{i:02}" for i in range(20)]
    assert output.splitlines()[-1] == "20 of 25 experiment(s), page 1 of 2; --page 2 for more"


@pytest.mark.parametrize(("option", "value"), [("--page", "1000001"), ("--search", "x" * 201), ("--status", "x" * 201)])
def test_list_values_out_of_bounds_are_usage_errors_naming_the_option(data_dir: Path, option: str, value: str) -> None:
    code, output = tunelab("experiments", "list", option, value, "--data-dir", str(data_dir))
    assert code == 2, output
    assert f"Invalid value for {option}" in output


def test_list_with_an_unknown_status_is_exit_1_with_the_code(data_dir: Path) -> None:
    code, output = tunelab("experiments", "list", "--status", "bogus", "--data-dir", str(data_dir))
    assert code == 1
    assert "invalid_status" in output


def test_show_prints_the_experiment_and_its_runs_newest_first(data_dir: Path, seeded: dict[str, str]) -> None:
    code, output, errors = streams("experiments", "show", seeded["piano"], "--data-dir", str(data_dir))

    assert code == 0, output + errors
    assert output.splitlines()[0] == "piano lora  [running]"
    fields = dict(re.findall(r"^  (\w[\w ]*?)\s{2,}(.+)$", output, re.MULTILINE))
    assert fields["id"] == seeded["piano"]
    assert fields["description"] == "soft piano"
    assert fields["created"] == "2026-05-01 08:00:00"
    assert re.fullmatch(r"[0-9a-f]{40}", fields["git commit"])
    assert fields["best metrics"] == "loss=0.25"
    assert table_rows(output) == [
        ["RUN", "NAME", "STATUS", "FINAL LOSS"],
        [seeded["second"], "second", "running", "0.25"],
        [seeded["first"], "first", "completed", "0.5"],
    ]


def test_archive_and_unarchive(data_dir: Path, seeded: dict[str, str]) -> None:
    code, output = tunelab("experiments", "archive", seeded["drums"], "--data-dir", str(data_dir))
    assert code == 0, output
    assert "Archived drums" in output and f"tunelab experiments unarchive {seeded['drums']}" in output
    _, listed = tunelab("experiments", "list", "--data-dir", str(data_dir))
    assert [row[1] for row in table_rows(listed)[1:]] == ["piano lora"]

    code, output = tunelab("experiments", "unarchive", seeded["drums"], "--data-dir", str(data_dir))
    assert code == 0, output
    assert "Unarchived drums" in output and "status draft" in output
    _, listed = tunelab("experiments", "list", "--data-dir", str(data_dir))
    assert [row[1:3] for row in table_rows(listed)[1:]] == [["drums", "draft"], ["piano lora", "running"]]


def test_unarchive_of_an_active_experiment_says_it_was_not_archived(data_dir: Path, seeded: dict[str, str]) -> None:
    code, output, _ = streams("experiments", "unarchive", seeded["piano"], "--data-dir", str(data_dir))
    assert code == 0, output
    assert output == f"piano lora ({seeded['piano']}) is not archived (status running); nothing changed\n"
    _, listed = tunelab("experiments", "list", "--data-dir", str(data_dir))
    assert ["piano lora", "running"] in [row[1:3] for row in table_rows(listed)[1:]]


def test_archive_of_an_archived_experiment_says_so(data_dir: Path, seeded: dict[str, str]) -> None:
    code, output, _ = streams("experiments", "archive", seeded["forgotten"], "--data-dir", str(data_dir))
    assert code == 0, output
    assert output == f"forgotten ({seeded['forgotten']}) is already archived; nothing changed\n"
    _, listed = tunelab("experiments", "list", "--all", "--data-dir", str(data_dir))
    assert ["forgotten", "archived"] in [row[1:3] for row in table_rows(listed)[1:]]


def test_commands_take_an_exact_name_archived_ones_included(data_dir: Path, seeded: dict[str, str]) -> None:
    code, output, _ = streams("experiments", "show", "piano lora", "--data-dir", str(data_dir))
    assert code == 0 and output.splitlines()[0] == "piano lora  [running]", output

    code, output, _ = streams("experiments", "unarchive", "forgotten", "--data-dir", str(data_dir))
    assert code == 0 and output.startswith(f"Unarchived forgotten ({seeded['forgotten']})"), output
    code, output, _ = streams("experiments", "archive", "drums", "--data-dir", str(data_dir))
    assert code == 0 and output.startswith(f"Archived drums ({seeded['drums']})"), output

    for not_quite in ("piano", "Piano lora", "piano lora "):
        code, _, errors = streams("experiments", "show", not_quite, "--data-dir", str(data_dir))
        assert code == 1 and "experiment_not_found" in errors, not_quite


def test_an_id_wins_over_a_name(data_dir: Path, seeded: dict[str, str]) -> None:
    db = Database(Settings(data_dir=data_dir).db_path)
    try:
        Services.build(db).experiments.create(ExperimentCreate(name=seeded["drums"]))  # named as drums' id
    finally:
        db.close()

    code, output, _ = streams("experiments", "show", seeded["drums"], "--data-dir", str(data_dir))

    assert code == 0 and output.splitlines()[0] == "drums  [draft]", output


@pytest.mark.parametrize("command", ["show", "archive", "unarchive"])
@pytest.mark.parametrize("ref", ["exp-nope", "no such experiment"])
def test_an_unknown_name_or_id_is_exit_1_saying_where_to_look(
    data_dir: Path, seeded: dict[str, str], command: str, ref: str
) -> None:
    code, _, errors = streams("experiments", command, ref, "--data-dir", str(data_dir))

    assert code == 1
    assert f"error [experiment_not_found]: No experiment has the id or the name {ref!r}" in errors
    assert "`tunelab experiments list --all` lists them" in errors


# --- which database: said on stderr, and never created by a command that only reads ------------------------------


def test_the_cli_says_which_database_it_opened(data_dir: Path, seeded: dict[str, str]) -> None:
    code, output, errors = streams("experiments", "list", "--data-dir", str(data_dir))

    assert code == 0
    assert errors == f"tunelab: Opened {data_dir / 'tunelab.duckdb'} (no server holds it).\n"
    assert "piano lora" in output and "Opened" not in output  # stdout keeps only the table


def test_the_cli_says_when_the_database_it_opened_is_empty(data_dir: Path) -> None:
    Database(Settings(data_dir=data_dir).db_path).close()

    code, _, errors = streams("experiments", "list", "--data-dir", str(data_dir))

    assert code == 0
    assert f"Opened {data_dir / 'tunelab.duckdb'} (no server holds it): it holds no experiments." in errors
    assert "--data-dir DIR or set TUNELAB_DATA_DIR" in errors


def test_commands_on_a_missing_database_say_so_and_create_nothing(data_dir: Path) -> None:
    nothing_there = f"There is no TuneLab database at {data_dir / 'tunelab.duckdb'}; nothing was created."

    code, output, errors = streams("experiments", "list", "--data-dir", str(data_dir))
    assert code == 0 and "0 of 0 experiment(s)" in output
    assert nothing_there in errors and "--data-dir DIR or set TUNELAB_DATA_DIR" in errors
    for command in ("show", "archive", "unarchive"):
        code, _, errors = streams("experiments", command, "drums", "--data-dir", str(data_dir))
        assert code == 1 and nothing_there in errors and "experiment_not_found" in errors
    code, _, errors = streams("experiments", "list", "--status", "bogus", "--data-dir", str(data_dir))
    assert code == 1 and "invalid_status" in errors  # validated as against a real database

    assert not data_dir.exists()


# --- experiments, through a running server ------------------------------------------------------------------------


@pytest.fixture
def served(data_dir: Path) -> Iterator[tuple[str, list[str]]]:
    """A real uvicorn server on the data dir (in a thread), its address file, and the requests it received."""
    settings = Settings(data_dir=data_dir, port=0)
    application = create_app(settings)
    seen: list[str] = []

    @application.middleware("http")
    async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        seen.append(f"{request.method} {request.url.path}")
        return await call_next(request)

    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        write_server_file(settings, url)
        yield url, seen
    finally:
        remove_server_file(settings)
        server.should_exit = True
        thread.join(timeout=30)


def test_experiment_commands_go_through_a_running_server(data_dir: Path, served: tuple[str, list[str]]) -> None:
    url, seen = served
    created = httpx.post(f"{url}/api/experiments", json={"name": "remote"}).json()
    run = httpx.post(f"{url}/api/experiments/{created['id']}/runs", json={"external": True, "name": "r1"}).json()
    httpx.post(f"{url}/api/runs/{run['id']}/metrics", json={"points": [{"key": "loss", "value": 0.125, "step": 3}]})
    seen.clear()

    code, listed, errors = streams("experiments", "list", "--data-dir", str(data_dir))
    assert code == 0, listed
    assert errors == ""  # no note: the server's database is the one the data dir names
    assert table_rows(listed)[1][:5] == [created["id"], "remote", "running", "1", "loss=0.125"]

    code, shown = tunelab("experiments", "show", created["id"], "--data-dir", str(data_dir))
    assert code == 0, shown
    assert table_rows(shown)[1] == [run["id"], "r1", "running", "0.125"]
    code, shown = tunelab("experiments", "show", "remote", "--data-dir", str(data_dir))
    assert code == 0 and table_rows(shown)[1] == [run["id"], "r1", "running", "0.125"], shown

    assert tunelab("experiments", "archive", created["id"], "--data-dir", str(data_dir))[0] == 0
    code, output = tunelab("experiments", "archive", "exp-nope", "--data-dir", str(data_dir))
    assert code == 1 and "experiment_not_found" in output
    assert tunelab("experiments", "unarchive", "remote", "--data-dir", str(data_dir))[0] == 0

    assert seen == [
        "GET /api/health",
        "GET /api/experiments",
        "GET /api/health",
        f"GET /api/experiments/{created['id']}",
        "GET /api/health",
        "GET /api/experiments/remote",  # not an id: 404
        "GET /api/experiments",  # ?name=remote
        f"GET /api/experiments/{created['id']}",
        "GET /api/health",
        f"GET /api/experiments/{created['id']}",
        f"POST /api/experiments/{created['id']}/archive",
        "GET /api/health",
        "GET /api/experiments/exp-nope",
        "GET /api/experiments",
        "GET /api/health",
        "GET /api/experiments/remote",
        "GET /api/experiments",
        f"GET /api/experiments/{created['id']}",
        f"POST /api/experiments/{created['id']}/unarchive",
    ]
    assert httpx.get(f"{url}/api/experiments/{created['id']}").json()["status"] == "draft"

    httpx.post(f"{url}/api/experiments", json={"name": "another"})
    code, listed = tunelab("experiments", "list", "--sort", "name", "--page-size", "1", "--data-dir", str(data_dir))
    assert code == 0, listed
    assert [row[1] for row in table_rows(listed)[1:]] == ["another"]
    assert listed.splitlines()[-1] == "1 of 2 experiment(s), page 1 of 2; --page 2 for more"


# --- models --------------------------------------------------------------------------------------------------------


def test_models_add_and_list_directly_and_through_a_running_server(
    data_dir: Path, tiny_model: Path, served: tuple[str, list[str]]
) -> None:
    import shutil

    url, seen = served
    code, out = tunelab("models", "list", "--data-dir", str(data_dir))
    assert code == 0 and "No base models yet" in out and "tunelab models add PATH" in out
    copy = data_dir / "models" / "tiny"
    shutil.copytree(tiny_model, copy)
    code, out = tunelab("models", "add", str(copy), "--display-name", "Tiny", "--data-dir", str(data_dir))
    assert code == 0, out
    assert "Registered tiny (the current model): 32000 Hz, 4 codebooks, up to 10.24 s" in out
    assert "POST /api/models" in seen  # the server owns the database: the CLI went through it
    code, out = tunelab("models", "list", "--data-dir", str(data_dir))
    assert code == 0 and re.search(r"\* tiny\s+Tiny\s+32000 Hz\s+10.24 s\s+4\s+" + re.escape(str(copy)), out), out
    code, _, errors = streams("models", "add", str(tiny_model), "--data-dir", str(data_dir))
    assert code == 1 and "path_not_allowed" in errors and "TUNELAB_IMPORT_ROOTS" in errors


def test_models_add_without_a_server_opens_the_database(data_dir: Path, tiny_model: Path) -> None:
    import shutil

    copy = data_dir / "models" / "tiny"
    shutil.copytree(tiny_model, copy)
    code, out = tunelab("models", "add", str(copy), "--id", "mine", "--max-duration", "4", "--data-dir", str(data_dir))
    assert code == 0 and "Registered mine (the current model)" in out and "up to 4 s" in out
    code, out = tunelab("models", "list", "--data-dir", str(data_dir))
    assert code == 0 and "* mine" in out


# --- datasets ------------------------------------------------------------------------------------------------------


def write_clips(folder: Path, lines: list[dict[str, object]], names: list[str]) -> Path:
    import json as jsonlib

    import numpy as np
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        t = np.arange(8000) / 16_000
        soundfile.write(folder / name, (0.2 * np.sin(2 * np.pi * (220 + 110 * index) * t)).astype("float32"), 16_000)
    (folder / "data.jsonl").write_text("".join(jsonlib.dumps(line) + "\n" for line in lines))
    return folder


def test_datasets_create_import_list_show_export_without_a_server(data_dir: Path, tmp_path: Path) -> None:
    import json as jsonlib
    import zipfile

    code, out = tunelab("datasets", "list", "--data-dir", str(data_dir))
    assert code == 0 and "No datasets yet" in out
    code, out = tunelab("datasets", "create", "empty", "--type", "supervised", "--data-dir", str(data_dir))
    assert code == 0 and re.search(r"Created supervised dataset empty \(ds-\w+\)", out), out
    code, out = tunelab("datasets", "create", "bad", "--type", "rated", "--data-dir", str(data_dir))
    assert code == 2 and "--type" in out

    folder = write_clips(tmp_path / "lofi", [{"prompt": "warm", "audio_path": "a.wav", "rating": 5},
                                             {"prompt": "cold", "audio_path": "sub/b.wav", "rating": 2}],
                         ["a.wav", "b.wav"])  # fmt: skip
    (folder / "sub").mkdir()
    (folder / "b.wav").rename(folder / "sub" / "b.wav")
    code, out = tunelab("datasets", "import", str(folder), "--data-dir", str(data_dir))
    assert code == 0 and re.search(r"Imported 2 item\(s\) into supervised dataset lofi", out), out
    pairs = write_clips(tmp_path / "pairs", [{"prompt": "p", "chosen_path": "a.wav", "rejected_path": "b.wav"}],
                        ["a.wav", "b.wav"])  # fmt: skip
    archive = tmp_path / "pairs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in pairs.iterdir():
            z.write(path, path.name)
    code, out = tunelab("datasets", "import", str(archive), "--name", "zipped", "--data-dir", str(data_dir))
    assert code == 0 and "Imported 1 item(s) into preference dataset zipped" in out, out

    code, out = tunelab("datasets", "list", "--data-dir", str(data_dir))
    assert code == 0 and re.search(r"lofi\s+supervised\s+2\s+1.0 s", out) and "zipped" in out, out
    code, out = tunelab("datasets", "show", "lofi", "--data-dir", str(data_dir))
    assert code == 0 and re.search(r"item-\w+\s+5\s+0.50 s\s+import\s+warm", out), out
    code, out = tunelab("datasets", "export", "lofi", "--data-dir", str(data_dir))
    assert code == 0 and "Exported to" in out
    exported = Path(re.search(r"Exported to (\S+) ", out).group(1))  # type: ignore[union-attr]
    assert [jsonlib.loads(line)["prompt"] for line in exported.read_text().splitlines()] == ["warm", "cold"]
    code, _, errors = streams("datasets", "export", "empty", "--data-dir", str(data_dir))
    assert code == 1 and "dataset_empty" in errors


def test_an_import_with_a_bad_line_or_clip_makes_nothing(data_dir: Path, tmp_path: Path) -> None:
    bad_rating = write_clips(tmp_path / "a", [{"prompt": "x", "audio_path": "a.wav", "rating": 9}], ["a.wav"])
    code, _, errors = streams("datasets", "import", str(bad_rating), "--data-dir", str(data_dir))
    assert code == 1 and "invalid_item" in errors and "line 1" in errors
    broken = write_clips(tmp_path / "b", [{"prompt": "x", "audio_path": "a.wav", "rating": 3},
                                          {"prompt": "y", "audio_path": "b.wav", "rating": 3}], ["a.wav", "b.wav"])  # fmt: skip
    (broken / "b.wav").write_bytes(b"RIFF....not really a wave file")
    code, _, errors = streams("datasets", "import", str(broken), "--data-dir", str(data_dir))
    assert code == 1 and "invalid_audio" in errors and "line 2" in errors
    escape = write_clips(tmp_path / "c", [{"prompt": "x", "audio_path": "../a/a.wav", "rating": 3}], [])
    code, _, errors = streams("datasets", "import", str(escape), "--data-dir", str(data_dir))
    assert code == 1 and "outside the imported folder" in errors
    code, out = tunelab("datasets", "list", "--data-dir", str(data_dir))
    assert "No datasets yet" in out
    assert not any((data_dir / "audio").glob("aud-*"))


def test_dataset_import_goes_through_a_running_server(
    data_dir: Path, tmp_path: Path, served: tuple[str, list[str]]
) -> None:
    url, seen = served
    folder = write_clips(tmp_path / "served", [{"prompt": "a", "audio_path": "a.wav", "rating": 4},
                                               {"prompt": "b", "audio_path": "b.wav", "rating": 1}], ["a.wav", "b.wav"])  # fmt: skip
    code, out = tunelab("datasets", "import", str(folder), "--data-dir", str(data_dir))
    assert code == 0 and "Imported 2 item(s)" in out, out
    assert seen.count("POST /api/datasets") == 1 and sum("/items" in s for s in seen) == 2
    listed = httpx.get(f"{url}/api/datasets").json()["items"]
    assert [(d["name"], d["item_count"]) for d in listed] == [("served", 2)]


# --- runs ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_runs_start_logs_and_cancel_through_the_running_server(
    data_dir: Path, tiny_model: Path, served: tuple[str, list[str]]
) -> None:
    import shutil

    url, _ = served
    shutil.copytree(tiny_model, data_dir / "models" / "tiny")
    assert httpx.post(f"{url}/api/models", json={"path": str(data_dir / "models" / "tiny")}).status_code == 201
    demo = httpx.post(f"{url}/api/datasets/demo", timeout=30).json()
    httpx.post(f"{url}/api/experiments", json={"name": "cli training", "dataset_id": demo["id"]})
    code, out = tunelab("runs", "start", "cli training", "--name", "quick", "--set", "epochs=1", "--set",
                        "batch_size=4", "--set", "max_audio_seconds=1", "--set", "save_every=0",
                        "--data-dir", str(data_dir))  # fmt: skip
    assert code == 0, out
    found = re.search(r"Run quick \((run-\w+)\) is pending", out)
    assert found and f"tunelab runs logs {found.group(1)} --follow" in out
    run_id = found.group(1)
    followed = runner.invoke(app, ["runs", "logs", run_id, "--follow", "--data-dir", str(data_dir)])
    assert followed.exit_code == 0 and "[run completed, exit status 0]" in followed.stderr
    log = (data_dir / "runs" / run_id / "output.log").read_bytes()
    assert followed.stdout_bytes == log  # the raw bytes, bars and colours as they were
    printed = runner.invoke(app, ["runs", "logs", run_id, "--data-dir", str(data_dir)])
    assert printed.exit_code == 0 and printed.stdout_bytes == log
    code, _, errors = streams("runs", "cancel", run_id, "--data-dir", str(data_dir))
    assert code == 1 and "invalid_status_transition" in errors
    code, _, errors = streams("runs", "start", "cli training", "--set", "epochs", "--data-dir", str(data_dir))
    assert code == 2 and "KEY=VALUE" in errors
    code, _, errors = streams("runs", "start", "cli training", "--set", "epochs=zero", "--data-dir", str(data_dir))
    assert code == 1 and "invalid_config" in errors


def test_runs_commands_without_a_server_say_what_they_need(data_dir: Path) -> None:
    code, _, errors = streams("runs", "start", "anything", "--data-dir", str(data_dir))
    assert code == 1 and "server_unavailable" in errors and "make run" in errors
    code, _, errors = streams("runs", "cancel", "run-x", "--data-dir", str(data_dir))
    assert code == 1 and "server_unavailable" in errors
    code, _, errors = streams("runs", "logs", "run-x", "--data-dir", str(data_dir))
    assert code == 1 and "log_not_found" in errors
    (data_dir / "runs" / "run-x").mkdir(parents=True)
    (data_dir / "runs" / "run-x" / "output.log").write_bytes(b"\x1b[32mstep 1\x1b[0m\r\n")
    printed = runner.invoke(app, ["runs", "logs", "run-x", "--data-dir", str(data_dir)])
    assert printed.exit_code == 0 and printed.stdout_bytes == b"\x1b[32mstep 1\x1b[0m\r\n"


def _adapter_copies(data_dir: Path, trained_adapter: Path, *names: str) -> list[Path]:
    import shutil

    folders = []
    for name in names:
        folder = data_dir / "adapters" / "outside" / name
        shutil.copytree(trained_adapter / "final", folder)
        folders.append(folder)
    return folders


def test_adapter_commands_through_a_running_server(
    data_dir: Path, tiny_model: Path, trained_adapter: Path, served: tuple[str, list[str]]
) -> None:
    import shutil

    url, seen = served
    shutil.copytree(tiny_model, data_dir / "models" / "tiny")
    assert httpx.post(f"{url}/api/models", json={"path": str(data_dir / "models" / "tiny")}).status_code == 201
    d = ("--data-dir", str(data_dir))
    code, out = tunelab("adapters", "list", *d)
    assert code == 0 and "No adapters yet" in out and "tunelab adapters register" in out

    first, second = _adapter_copies(data_dir, trained_adapter, "one", "two")
    config = data_dir / "config.json"
    config.write_text((trained_adapter / "training_config.json").read_text())
    code, out = tunelab("adapters", "register", str(first), "--name", "lofi", "--version", "1.0", "--model", "tiny",
                        "--training-config", str(config), *d)  # fmt: skip
    assert code == 0 and "Registered lofi 1.0" in out and "r=16, 16 modules" in out, out
    assert "POST /api/adapters" in seen
    code, out = tunelab(
        "adapters", "register", str(second), "--name", "lofi", "--version", "1.0", "--model", "tiny", *d
    )
    assert code == 1 and "adapter_version_exists" in out and "'1.1'" in out
    assert (
        tunelab("adapters", "register", str(second), "--name", "lofi", "--version", "1.1", "--model", "tiny", *d)[0]
        == 0
    )

    code, out = tunelab("adapters", "activate", "lofi@1.0", *d)
    assert code == 0 and "lofi 1.0" in out and "is active" in out
    assert tunelab("adapters", "activate", "lofi@1.1", *d)[0] == 0
    code, out = tunelab("adapters", "list", "--active", *d)
    rows = table_rows(out)[1:]
    assert len(rows) == 1 and rows[0][1:3] == ["lofi", "1.1"] and rows[0][0].startswith("* adp-"), out
    code, out = tunelab("adapters", "versions", "lofi", *d)
    assert code == 0 and "would activate 1.0 again" in out
    code, out = tunelab("adapters", "rollback", "lofi", *d)
    assert code == 0 and "lofi 1.0" in out and "active again" in out

    code, out = tunelab("adapters", "show", "lofi", *d)  # a name alone: its active version
    assert code == 0 and "lofi 1.0" in out and "active" in out and "Fits the current model  yes" in out, out
    assert "Learning rate" in out and "1e-4" in out and "LoRA" in out
    code, out = tunelab("adapters", "compare", "lofi@1.0", "lofi@1.1", "--all", *d)
    assert code == 0 and "hyperparameters.learning_rate" in out and "1e-04" not in out, out
    code, out = tunelab("adapters", "rename", "lofi@1.1", "lofi tape", *d)
    assert code == 0 and "Renamed" in out and "lofi tape" in out
    code, out = tunelab("adapters", "rename", "lofi@1.0", " ", *d)
    assert code == 2 and "NEW_NAME" in out

    code, out = tunelab("adapters", "export", "lofi@1.0", "--out", str(data_dir.parent / "out"), *d)
    assert code == 0 and (data_dir.parent / "out" / "lofi-1.0.zip").is_file(), out
    (second / "adapter_model.safetensors").unlink()  # the server's refusal reaches the shell as it was answered
    code, out = tunelab("adapters", "export", "lofi tape@1.1", "--out", str(data_dir.parent / "out"), *d)
    assert code == 1 and "adapter_files_missing" in out, out
    code, out = tunelab("adapters", "import", str(data_dir.parent / "out" / "lofi-1.0.zip"), "--version", "2.0", *d)
    assert code == 0 and "Imported lofi 2.0" in out, out
    code, out = tunelab("adapters", "delete", "lofi@2.0", "--yes", *d)
    assert code == 0 and "Deleted lofi 2.0" in out and "files stay" in out
    code, out = tunelab("adapters", "show", "lofi@2.0", *d)
    assert code == 1 and "adapter_not_found" in out


def test_adapter_commands_without_a_server_open_the_database(
    data_dir: Path, tiny_model: Path, trained_adapter: Path
) -> None:
    import shutil

    shutil.copytree(tiny_model, data_dir / "models" / "tiny")
    assert tunelab("models", "add", str(data_dir / "models" / "tiny"), "--data-dir", str(data_dir))[0] == 0
    (folder,) = _adapter_copies(data_dir, trained_adapter, "one")
    d = ("--data-dir", str(data_dir))
    code, out = tunelab("adapters", "register", str(folder), "--name", "jazz", "--version", "1", "--model", "tiny", *d)
    assert code == 0, out
    code, out = tunelab("adapters", "export", "jazz", "--unzip", "--out", str(data_dir.parent / "peft"), *d)
    assert code == 0 and (data_dir.parent / "peft" / "jazz-1" / "README.md").is_file(), out
    assert "base_model_relation: adapter" in (data_dir.parent / "peft" / "jazz-1" / "README.md").read_text()
    code, out = tunelab("adapters", "list", "--group", *d)
    assert code == 0 and "jazz" in out and "tiny" in out
    result = runner.invoke(app, ["adapters", "delete", "jazz", *d], input="n\n", prog_name="tunelab")
    assert result.exit_code == 1 and "Delete jazz 1" in result.output and "Aborted" in result.output
    assert "jazz" in tunelab("adapters", "list", *d)[1]  # not deleted
