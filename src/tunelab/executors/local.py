"""The local executor: each command under a supervisor process of its own (supervisor.py), in a session of its
own, so neither a Ctrl-C in the server's terminal nor the server's death reaches it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tunelab.executors.base import EXIT_FILE, OUTPUT_LOG, Command, ExitStatus
from tunelab.executors.supervisor import SUPERVISOR_FILE


class LocalHandle:
    def __init__(self, run_id: str, run_dir: Path, process: subprocess.Popen[bytes] | None = None):
        self.run_id = run_id
        self.run_dir = run_dir
        self.log_path = run_dir / OUTPUT_LOG
        self._process = process  # the supervisor, when this server started it (to reap it)

    def exit_status(self) -> ExitStatus | None:
        return ExitStatus.read(self.run_dir / EXIT_FILE)

    def alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        pid = self._supervisor_pid()
        if pid is None:
            return False
        try:  # the pid is the supervisor of this run, not a process that got its number later
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"tunelab.executors.supervisor" in cmdline and str(self.run_dir).encode() in cmdline

    def cancel(self) -> None:
        pid = self._process.pid if self._process is not None else self._supervisor_pid()
        if pid is not None and self.alive():
            os.kill(pid, signal.SIGTERM)  # the supervisor passes it on, and SIGKILLs after its grace period

    def _supervisor_pid(self) -> int | None:
        try:
            return int(json.loads((self.run_dir / SUPERVISOR_FILE).read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None


class LocalExecutor:
    def __init__(self, runs_dir: Path, grace_s: float = 10.0):
        self.runs_dir = runs_dir
        self.grace_s = grace_s

    def start(self, run_id: str, command: Command) -> LocalHandle:
        run_dir = self.runs_dir / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "tunelab.executors.supervisor", "--run-dir", str(run_dir), "--cwd",
                str(command.cwd), "--grace", str(self.grace_s), "--", *command.argv]  # fmt: skip
        with (run_dir / "supervisor.err").open("ab") as errors:
            process = subprocess.Popen(argv, env=command.env, cwd=command.cwd, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)  # fmt: skip
        return LocalHandle(run_id, run_dir, process)

    def attach(self, run_id: str) -> LocalHandle:
        return LocalHandle(run_id, self.runs_dir / run_id)
