"""`tunelab ops`, the tracker's JSON stdin/stdout script, as a real subprocess.

Every tracker test runs twice: against a data dir no server holds (the script opens the DuckDB file) and
against a real `tunelab serve` process that holds the file (the script must go through HTTP).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

import tunelab
from tunelab import ops
from tunelab.config import Settings
from tunelab.domain.artifacts import ArtifactCreate
from tunelab.services.artifacts import ArtifactService
from tunelab.store import Database

CHECKOUT = Path(tunelab.__file__).resolve().parent
DB_NAME = "tunelab.duckdb"


def clean_env(**extra: str) -> dict[str, str]:
    """The test environment (tests/conftest.py removed every TuneLab setting), so only --data-dir decides."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def run_ops(
    data_dir: Path, request: dict[str, Any] | str | bytes, env: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(exit code, parsed answer) of one `tunelab ops` call; the answer must be exactly one JSON line."""
    exit_code, answer, _ = ops_call(["--data-dir", str(data_dir)], request, env)
    return exit_code, answer


def ops_call(
    options: list[str],
    request: dict[str, Any] | str | bytes,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int, Any, str]:
    """(exit code, parsed answer, stderr) of `tunelab ops OPTIONS`; the answer must be exactly one JSON line."""
    raw = request if isinstance(request, bytes) else (request if isinstance(request, str) else json.dumps(request))
    done = subprocess.run(
        [sys.executable, "-m", "tunelab", "ops", *options],
        input=raw.encode() if isinstance(raw, str) else raw,
        capture_output=True,
        env=env or clean_env(),
        cwd=cwd,
        timeout=60,
    )
    stdout, stderr = done.stdout.decode(), done.stderr.decode(errors="replace")
    lines = stdout.splitlines()
    assert len(lines) == 1, f"stdout: {stdout!r}\nstderr: {stderr}"
    return done.returncode, json.loads(lines[0]), stderr


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def head_commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=CHECKOUT, capture_output=True, text=True).stdout.strip()


def assert_error(result: tuple[int, Any], code: str) -> dict[str, Any]:
    exit_code, answer = result
    assert exit_code == 1, answer
    assert list(answer) == ["error"]
    assert set(answer["error"]) == {"code", "message", "details"}
    assert answer["error"]["code"] == code, answer
    return dict(answer["error"])


def ok(result: tuple[int, Any]) -> Any:
    exit_code, answer = result
    assert exit_code == 0, answer
    return answer


# --- the server -------------------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_NAME


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"tunelab serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"tunelab serve did not answer within {timeout}s:\n{log.read_text()}")


RUNNING_AT = re.compile(r"TuneLab is running at (http://\S+)")


def start_serving(data_dir: Path, log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`tunelab serve` on a port the system picks (port 0), and the URL it printed once it had the socket."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tunelab", "serve", "--data-dir", str(data_dir), "--port", "0"],
            stdout=out, stderr=subprocess.STDOUT, env=env or clean_env(),
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (printed := RUNNING_AT.search(log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            pytest.fail(f"tunelab serve printed no URL (exit {process.returncode}):\n{log.read_text()}")
        time.sleep(0.05)
    wait_until_healthy(printed[1], process, log)
    return process, printed[1]


def stop(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("served")
    log = tmp_path_factory.mktemp("logs") / "serve.log"
    process, url = start_serving(data_dir, log)
    try:
        yield Server(url=url, data_dir=data_dir, process=process, log=log)
    finally:
        stop(process)
    assert not (data_dir / f"{DB_NAME}.server.json").exists(), "the server left its address file behind"


# --- both modes --------------------------------------------------------------------------------------------------


@dataclass
class Target:
    """Where ops go: a data dir, and the server that holds it (None: the script opens the file itself)."""

    mode: str
    data_dir: Path
    server: Server | None

    def ops(self, request: dict[str, Any] | str) -> tuple[int, Any]:
        return run_ops(self.data_dir, request)

    def ops_concurrently(self, requests: list[dict[str, Any] | str]) -> list[tuple[int, Any]]:
        """Independent requests at once: over HTTP to the one server, or each on its own fresh data dir."""
        dirs = [self.data_dir if self.server else self.data_dir / f"fresh-{i}" for i in range(len(requests))]
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(run_ops, dirs, requests))

    def artifacts(self, *types: str) -> list[str]:
        bodies = [{"type": t, "uri": f"file:///{unique(t)}"} for t in types]
        if self.server:
            responses = [httpx.post(f"{self.server.url}/api/artifacts", json=body) for body in bodies]
            assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
            return [str(r.json()["id"]) for r in responses]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(self.data_dir / DB_NAME)
        try:
            return [ArtifactService(db).create(ArtifactCreate(**body)).id for body in bodies]
        finally:
            db.close()


@pytest.fixture
def targets(tmp_path: Path, server: Server) -> list[Target]:
    return [Target("file", tmp_path / "data", None), Target("server", server.data_dir, server)]


def in_both_modes(targets: list[Target], scenario: Callable[[Target], None]) -> None:
    """Run one scenario against the file and against the server at the same time (each call is a process)."""
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        futures = {target.mode: pool.submit(scenario, target) for target in targets}
    for mode, future in futures.items():
        error = future.exception()
        if error is not None:
            raise AssertionError(f"[{mode} mode] {error}") from error


def lifecycle(target: Target) -> None:
    alerts, trades, metrics = target.artifacts("alerts", "trades", "metrics")
    experiment_id = unique("exp")
    definition = {
        "op": "create_experiment",
        "experiment_id": experiment_id,
        "name": unique("momentum"),
        "description": "spec lifecycle",
        "inputs": {"alerts": [alerts], "ohlcv": []},
        "config": {"strategy": {"name": "momentum"}, "dateRange": {"from": "2025-01-01", "to": "2025-01-31"}},
        "provenance": {"git_commit": "abc123", "git_dirty": False, "engine_version": "1.0.0",
                       "created_at": "2025-02-01T09:30:00Z"},
    }  # fmt: skip

    created = ok(target.ops(definition))
    assert created["id"] == experiment_id
    assert created["status"] == "draft"  # the tracker's `pending`
    assert created["inputs"] == {"alerts": [alerts], "ohlcv": []}
    assert created["config"] == definition["config"]
    assert created["provenance"] == definition["provenance"]

    error = assert_error(
        target.ops({"op": "update_status", "experiment_id": experiment_id, "status": "completed"}),
        "invalid_status_transition",
    )
    assert (error["details"]["from"], error["details"]["to"]) == ("draft", "completed")

    started = ok(target.ops({"op": "update_status", "experiment_id": experiment_id, "status": "running"}))
    assert started["success"] is True
    assert started["experiment"]["status"] == "running"
    assert started["experiment"]["execution"]["started_at"] is not None

    unknown = {
        "op": "store_results",
        "experiment_id": experiment_id,
        "results": {"trades": "ghost-t", "metrics": metrics},
    }
    error = assert_error(target.ops(unknown), "unknown_artifacts")
    assert error["details"]["missing"] == ["ghost-t"]

    results = {"trades": trades, "metrics": metrics}
    stored = ok(target.ops({"op": "store_results", "experiment_id": experiment_id, "results": results}))
    assert stored["success"] is True and stored["experiment"]["outputs"] == results

    done = ok(target.ops({"op": "update_status", "experiment_id": experiment_id, "status": "completed"}))
    assert done["success"] is True

    final = ok(target.ops({"op": "get_experiment", "experiment_id": experiment_id}))
    assert final == done["experiment"]
    assert final["status"] == "completed"
    assert final["outputs"] == {"trades": trades, "metrics": metrics}
    execution = final["execution"]
    assert execution["completed_at"] >= execution["started_at"]
    assert isinstance(execution["duration_ms"], int) and execution["duration_ms"] >= 0
    assert execution["error"] is None
    for field in ("name", "description", "inputs", "config", "provenance"):
        assert final[field] == created[field]


def test_spec_lifecycle_pending_running_results_completed(targets: list[Target]) -> None:
    in_both_modes(targets, lifecycle)


def queries(target: Target) -> None:
    token = unique("query")
    (alert,) = target.artifacts("alerts")
    created = ok(target.ops({"op": "create_experiment", "name": f"{token} a", "inputs": {"alerts": [alert]}}))

    # Provenance not given is that of the checkout the script (or the server) runs from.
    assert re.fullmatch(r"[0-9a-f]{40}", created["provenance"]["git_commit"])
    assert created["provenance"]["git_commit"] == head_commit()
    assert created["provenance"]["engine_version"] == tunelab.__version__

    spec_filter = {
        "q": token,
        "status": "pending",
        "artifact_type": "alerts",
        "git_commit": head_commit(),
        "min_created_at": "2000-01-01T00:00:00Z",
        "max_created_at": "2999-01-01T00:00:00Z",
        "limit": 10,
    }
    assert ok(target.ops({"op": "list_experiments", "filter": spec_filter})) == [created]

    found = ok(target.ops({"op": "find_by_input_artifacts", "artifact_ids": [alert, "ghost"]}))
    assert found == [created]


def test_list_experiments_with_filter_and_find_by_input_artifacts(targets: list[Target]) -> None:
    in_both_modes(targets, queries)


def missing_things(target: Target) -> None:
    answers = target.ops_concurrently(
        [
            {"op": "get_experiment", "experiment_id": "exp-ghost"},
            {"op": "find_by_input_artifacts", "artifact_ids": []},
        ]
    )
    assert assert_error(answers[0], "experiment_not_found")["details"] == {"experiment_id": "exp-ghost"}
    assert ok(answers[1]) == []


def test_unknown_experiment_and_empty_artifact_list(targets: list[Target]) -> None:
    in_both_modes(targets, missing_things)


def test_malformed_requests_are_exit_1_with_a_clear_code(tmp_path: Path) -> None:
    # The script refuses these itself, whichever tracker it would have used, so one mode covers both.
    data_dir = tmp_path / "data"
    requests = [
        "{not json",
        '["not", "an object"]',
        {"op": "drop_everything"},
        {"op": "store_results", "experiment_id": "exp-1"},
        {"op": "create_experiment", "description": "no name"},
    ]
    answers = [run_ops(data_dir, request) for request in requests]

    assert "not valid JSON" in assert_error(answers[0], "invalid_json")["message"]
    assert_error(answers[1], "invalid_request")
    assert "create_experiment" in assert_error(answers[2], "unknown_op")["details"]["ops"]
    assert assert_error(answers[3], "missing_field")["details"] == {"field": "results"}
    assert assert_error(answers[4], "validation_error")["details"]["errors"][0]["loc"] == ["name"]


@pytest.mark.parametrize(
    ("raw", "says", "where"),
    [
        (b"[" * 100_000, "nested more than 200 levels deep", {"line": 1, "column": 202}),
        ('{"op": "create_experiment", "name": "café"}'.encode("latin-1"), "not UTF-8 text (byte 40 is 0xe9)",
         {"byte": 40}),
        (b'{"op": "get_experiment", "experiment_id": "\\udc00"}', "surrogate", {"line": 1, "column": 49}),
        (b'{"op": "get_experiment", "experiment_id": "\\ud800"}', "surrogate", {"line": 1, "column": 50}),
        (b'{"op": "list_experiments"} {"op": "list_experiments"}', "trailing characters", {"line": 1, "column": 28}),
        (b'{"op": "list_experiments", "filter": {"limit": NaN}}', "expected value", {"line": 1, "column": 48}),
        (b"\n", "The request is empty", {}),
    ],
    ids=["too deep", "not utf-8", "lone low surrogate", "lone high surrogate", "trailing", "NaN", "empty"],
)  # fmt: skip
def test_stdin_that_is_not_strict_json_is_invalid_json(
    tmp_path: Path, raw: bytes, says: str, where: dict[str, int]
) -> None:
    error = assert_error(run_ops(tmp_path / "data", raw), "invalid_json")

    assert says in error["message"]
    assert error["details"] == where
    assert not (tmp_path / "data").exists()  # refused before anything was opened


# --- file mode only ----------------------------------------------------------------------------------------------


def test_a_stale_server_file_is_ignored(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    stale = {"url": f"http://127.0.0.1:{free_port()}", "pid": 999999, "db": str(data_dir / DB_NAME)}
    (data_dir / f"{DB_NAME}.server.json").write_text(json.dumps(stale))

    created = ok(run_ops(data_dir, {"op": "create_experiment", "name": "despite stale file"}))

    # The script opened the file itself: the experiment is in it.
    con = duckdb.connect(str(data_dir / DB_NAME), read_only=True)
    try:
        assert con.execute("SELECT name FROM experiments WHERE id = ?", [created["id"]]).fetchone() == (
            created["name"],
        )
    finally:
        con.close()


def test_ops_say_on_stderr_which_database_they_opened_and_only_create_makes_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    db = data_dir / DB_NAME
    here = ["--data-dir", str(data_dir)]

    for read in ({"op": "list_experiments"}, {"op": "find_by_input_artifacts", "artifact_ids": ["art-1"]}):
        code, answer, said = ops_call(here, read)
        assert (code, answer) == (0, [])
        assert f"There is no TuneLab database at {db}; nothing was created." in said
    code, answer, said = ops_call(here, {"op": "update_status", "experiment_id": "exp-1", "status": "running"})
    assert answer["error"]["code"] == "experiment_not_found" and "There is no TuneLab database" in said
    assert not data_dir.exists()

    code, created, said = ops_call(here, {"op": "create_experiment", "name": "first"})
    assert code == 0, created
    assert f"Created a new TuneLab database at {db}" in said and "TUNELAB_DATA_DIR" in said
    code, listed, said = ops_call(here, {"op": "list_experiments"})
    assert listed == [created]
    assert said == f"tunelab: Opened {db} (no server holds it).\n"


def test_experiment_db_env_var_is_honoured(tmp_path: Path) -> None:
    legacy_db = tmp_path / "legacy" / "experiments.duckdb"
    data_dir = tmp_path / "data"
    with_legacy = clean_env(EXPERIMENT_DB=str(legacy_db))

    created = ok(run_ops(data_dir, {"op": "create_experiment", "name": "legacy"}, env=with_legacy))

    assert not (data_dir / DB_NAME).exists()
    con = duckdb.connect(str(legacy_db), read_only=True)
    try:
        assert con.execute("SELECT id FROM experiments").fetchall() == [(created["id"],)]
    finally:
        con.close()
    # Without the variable the data dir's own database is used: there is none, and a read does not create it.
    assert ok(run_ops(data_dir, {"op": "list_experiments", "filter": {}})) == []
    assert not (data_dir / DB_NAME).exists()


# --- server mode only -------------------------------------------------------------------------------------------


def test_serve_prints_its_url_and_leaves_its_address_in_the_data_dir(server: Server) -> None:
    assert server.url in server.log.read_text()
    info = json.loads((server.data_dir / f"{DB_NAME}.server.json").read_text())
    assert info["url"] == server.url
    assert info["pid"] == server.process.pid
    assert Path(info["db"]) == server.db_path.resolve()


def test_serve_on_port_0_prints_the_port_it_got_and_removes_its_address_on_exit(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process, url = start_serving(data_dir, tmp_path / "serve.log")
    try:
        assert not url.endswith(":0")
        assert json.loads((data_dir / f"{DB_NAME}.server.json").read_text())["url"] == url
    finally:
        exit_code = stop(process)
    assert exit_code == 128 + signal.SIGTERM
    assert not (data_dir / f"{DB_NAME}.server.json").exists()


def test_serve_on_a_port_in_use_says_so_and_how_to_choose_another(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "tunelab", "serve", "--data-dir", str(data_dir), "--port", str(port)],
            capture_output=True, text=True, env=clean_env(), timeout=60,
        )  # fmt: skip

    assert done.returncode == 1, done.stdout + done.stderr
    assert "TuneLab is running" not in done.stdout
    assert f"127.0.0.1:{port} is already in use" in done.stderr
    assert re.search(r"`make run PORT=\d+` or `tunelab serve --port \d+`", done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    assert not data_dir.exists()  # neither a database nor an address file


@pytest.mark.parametrize(
    ("env", "says"),
    [({"TUNELAB_HOST": "nosuchhost.invalid"}, "cannot listen on nosuchhost.invalid:0: "),
     ({"TUNELAB_PORT": "70000"}, "cannot listen on 127.0.0.1:70000: ")],
)  # fmt: skip
def test_serve_where_it_cannot_listen_says_why(tmp_path: Path, env: dict[str, str], says: str) -> None:
    port = [] if "TUNELAB_PORT" in env else ["--port", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "tunelab", "serve", "--data-dir", str(tmp_path / "data"), *port],
        capture_output=True, text=True, env=clean_env(**env), timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(f"error: {says}"), done.stderr
    assert not (tmp_path / "data").exists()


def test_a_second_server_on_the_same_port_leaves_the_first_ones_address(server: Server) -> None:
    port = server.url.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "tunelab", "serve", "--data-dir", str(server.data_dir), "--port", port],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip

    assert done.returncode == 1 and "already in use" in done.stderr, done.stdout + done.stderr
    assert json.loads((server.data_dir / f"{DB_NAME}.server.json").read_text())["url"] == server.url
    assert httpx.get(f"{server.url}/api/health").status_code == 200


def test_with_a_server_running_ops_go_through_http(server: Server) -> None:
    # The server holds the DuckDB file: nothing else can open it, so a successful op went over HTTP.
    with pytest.raises(duckdb.IOException, match="(?i)lock"):
        duckdb.connect(str(server.db_path), read_only=True)

    name = unique("via http")
    created = ok(run_ops(server.data_dir, {"op": "create_experiment", "name": name}))
    listed = ok(run_ops(server.data_dir, {"op": "list_experiments", "filter": {"q": name}}))

    api = httpx.get(f"{server.url}/api/experiments/{created['id']}").json()
    api_list = httpx.get(f"{server.url}/api/experiments", params={"q": name}).json()
    assert api.pop("runs") == []
    assert created == api
    assert listed == api_list["items"] == [api]


# --- the data dir of a source checkout ---------------------------------------------------------------------------


def source_checkout_copy(tmp_path: Path) -> Path:
    """A checkout as `make setup` leaves one: src/tunelab beside a pyproject.toml that names tunelab."""
    checkout = tmp_path / "checkout"
    shutil.copytree(CHECKOUT, checkout / "src" / "tunelab", ignore=shutil.ignore_patterns("__pycache__"))
    (checkout / "pyproject.toml").write_text('[project]\nname = "tunelab"\n')
    return checkout


def test_in_a_source_checkout_the_cli_and_ops_reach_the_server_make_run_started(tmp_path: Path) -> None:
    """The reported case: `make run` serves <checkout>/data; `tunelab experiments list` and `tunelab ops` in the same
    checkout, without --data-dir, must reach that server and create no second database in the home folder."""
    checkout = source_checkout_copy(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(PYTHONPATH=str(checkout / "src"), HOME=str(home))
    process, url = start_serving(checkout / "data", tmp_path / "serve.log", env=env)  # as `make run` does
    try:
        code, created, said = ops_call([], {"op": "create_experiment", "name": "via make run"}, env=env, cwd=checkout)
        listed = subprocess.run(
            [sys.executable, "-m", "tunelab", "experiments", "list"],
            cwd=checkout, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        served = httpx.get(f"{url}/api/experiments", params={"name": "via make run"}).json()
    finally:
        stop(process)

    assert (code, said) == (0, ""), created
    assert served["items"][0]["id"] == created["id"]
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert created["id"] in listed.stdout
    assert list(home.iterdir()) == []


# --- every failure is one JSON answer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"op": "list_experiments", "filter": "status=running"}, "filter"),
        ({"op": "list_experiments", "filter": ["running"]}, "filter"),
        ({"op": "store_results", "experiment_id": "exp-1", "results": ["art-1"]}, "results"),
        ({"op": "store_results", "experiment_id": "exp-1", "results": {"trades": 5}}, "results"),
        ({"op": "find_by_input_artifacts", "artifact_ids": "art-1"}, "artifact_ids"),
        ({"op": "find_by_input_artifacts", "artifact_ids": ["art-1", 2]}, "artifact_ids"),
        ({"op": "get_experiment", "experiment_id": 7}, "experiment_id"),
        ({"op": "update_status", "experiment_id": "exp-1", "status": ["running"]}, "status"),
        ({"op": "update_status", "experiment_id": "exp-1", "status": "failed", "error": {"x": 1}}, "error"),
    ],
)
def test_ill_typed_fields_are_validation_errors(tmp_path: Path, request_: dict[str, Any], field: str) -> None:
    # In process: these checks sit in dispatch, before the tracker is called, whichever tracker it is.
    answer, exit_code = ops.run(json.dumps(request_), Settings(data_dir=tmp_path / "data"))

    assert exit_code == 1, answer
    error = assert_error((exit_code, answer), "validation_error")
    assert error["details"]["field"] == field


def test_a_non_string_op_is_unknown_op(tmp_path: Path) -> None:
    answer, exit_code = ops.run('{"op": ["list_experiments"]}', Settings(data_dir=tmp_path / "data"))
    assert_error((exit_code, answer), "unknown_op")


def test_an_unexpected_failure_is_internal_error_on_one_json_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("a file where the data dir should be")

    error = assert_error(run_ops(not_a_dir, {"op": "create_experiment", "name": "x"}), "internal_error")

    assert "FileExistsError" in error["message"]


def test_a_server_that_holds_the_db_but_does_not_answer_is_server_unavailable(
    tmp_path: Path, hold_db: Callable[[Path], None]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = f"http://127.0.0.1:{free_port()}"
    (data_dir / f"{DB_NAME}.server.json").write_text(json.dumps({"url": url, "pid": 1, "db": "x"}))
    hold_db(data_dir / DB_NAME)
    error = assert_error(run_ops(data_dir, {"op": "list_experiments"}), "server_unavailable")
    assert error["details"]["url"] == url


class FakeServer(BaseHTTPRequestHandler):
    """Answers /api/health as the TuneLab server of `db` would; every other request per `mode`."""

    db = ""
    mode = "html"

    def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
        if self.path == "/api/health":
            self._send(200, "application/json", json.dumps({"status": "ok", "db": self.db}))
        elif self.mode == "html":
            self._send(502, "text/html", "<html><body>Bad gateway</body></html>")
        else:  # "drop": the server goes away in the middle of the request
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, status: int, content_type: str, body: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server signature
        pass


@pytest.mark.parametrize(("mode", "code"), [("html", "bad_server_response"), ("drop", "server_unavailable")])
def test_a_broken_server_answer_has_its_own_code(tmp_path: Path, mode: str, code: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    handler = type("Handler", (FakeServer,), {"db": str((data_dir / DB_NAME).resolve()), "mode": mode})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    (data_dir / f"{DB_NAME}.server.json").write_text(json.dumps({"url": url, "pid": 1, "db": "x"}))
    try:
        error = assert_error(run_ops(data_dir, {"op": "get_experiment", "experiment_id": "exp-1"}), code)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert error["details"]["url"] == url
    if mode == "html":
        assert error["details"]["status"] == 502 and "Bad gateway" in error["details"]["body"]
