"""The run supervisor: `python -m tunelab.executors.supervisor --run-dir DIR [--cwd DIR] -- COMMAND…`.

It runs COMMAND under a pseudo-terminal of a fixed size (ptyprocess), so progress bars and colours come out as in a
terminal, appends every byte to DIR/output.log the moment it arrives (nothing is buffered, nothing rewritten), and
when the command ends writes DIR/exit.json (exit code or signal, whether it was cancelled, when). SIGTERM, SIGINT
or SIGHUP to the supervisor is passed on as SIGTERM to the command's process group, and SIGKILL follows after
--grace seconds. It writes DIR/supervisor.json (its pid and the command's) first, so a server can find it again.
The supervisor touches no database: a server that dies and restarts loses nothing of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import select
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ptyprocess import PtyProcess

from tunelab.executors.base import EXIT_FILE, OUTPUT_LOG

COLUMNS, ROWS = 120, 32
SUPERVISOR_FILE = "supervisor.json"


def write_json(path: Path, data: dict[str, object]) -> None:
    """Written whole under another name, then renamed: a reader never sees half of it."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunelab.executors.supervisor", description=__doc__.split("\n")[2])
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--cwd", type=Path, default=Path.cwd())
    parser.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    log = os.open(run_dir / OUTPUT_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
    try:
        child = PtyProcess.spawn(command, cwd=str(args.cwd), env=env, dimensions=(ROWS, COLUMNS))
    except (OSError, FileNotFoundError) as error:
        os.write(log, f"cannot start {command[0]}: {error}\r\n".encode())
        write_json(run_dir / EXIT_FILE, {"exit_code": 127, "signal": None, "cancelled": False, "ended_at": _now()})
        return 127
    write_json(run_dir / SUPERVISOR_FILE, {"pid": os.getpid(), "child_pid": child.pid, "started_at": _now()})
    kill_at: list[float] = []  # when SIGKILL is due, once a stop was asked for

    def stop(signum: int, frame: object) -> None:
        if not kill_at:
            kill_at.append(time.monotonic() + args.grace)
            _signal_group(child.pid, signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    _copy_output(child.fd, log, kill_at, child.pid)
    child.wait()
    _signal_group(child.pid, signal.SIGKILL)  # whatever the command left behind in its group
    os.close(log)
    write_json(run_dir / EXIT_FILE, {"exit_code": child.exitstatus, "signal": child.signalstatus,
                                     "cancelled": bool(kill_at), "ended_at": _now()})  # fmt: skip
    return 0


def _copy_output(fd: int, log: int, kill_at: list[float], pid: int) -> None:
    """Every byte the pseudo-terminal gives, appended to the log as it comes, until the command closes it."""
    while True:
        if kill_at and time.monotonic() > kill_at[0]:
            _signal_group(pid, signal.SIGKILL)
        try:
            ready, _, _ = select.select([fd], [], [], 0.25)
        except InterruptedError:
            continue
        if not ready:
            continue
        try:
            data = os.read(fd, 65_536)
        except OSError as error:  # EIO: every process holding the terminal has gone
            if error.errno in (errno.EIO, errno.EBADF):
                return
            raise
        if not data:
            return
        view = memoryview(data)
        while view:
            view = view[os.write(log, view) :]


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)  # the command leads its own session and process group (ptyprocess setsid)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


if __name__ == "__main__":
    sys.exit(main())
