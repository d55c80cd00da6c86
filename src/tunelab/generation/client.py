"""The server's handle on one generation worker process: start it, send it JSON lines, hear its events and its end.

Events are read by a thread and handed to `on_event`; when the worker's stdout closes (it exited, crashed or was
killed) `on_exit` gets its exit code, once. The worker's stderr goes to a log file under the data dir.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


class WorkerProcess:
    def __init__(self, model_path: str, cache_mb: float, log_path: Path, on_event: Callable[[dict[str, Any]], None],
                 on_exit: Callable[[WorkerProcess, int | None], None], threads: int = 0) -> None:  # fmt: skip
        self.model_path = model_path
        self.cache_mb = cache_mb
        self.threads = threads
        self.log_path = log_path
        self._on_event = on_event
        self._on_exit = on_exit
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.stopping = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "tunelab.generation.worker", "--model", self.model_path,
                   "--cache-mb", str(self.cache_mb), "--threads", str(self.threads)]  # fmt: skip
        with self.log_path.open("ab") as stderr:
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        threading.Thread(target=self._read, name=f"generation-worker-{self._process.pid}", daemon=True).start()

    def send(self, message: dict[str, Any]) -> bool:
        """Whether the message reached the worker's stdin (a worker that died is reported by `on_exit`)."""
        process = self._process
        if process is None or process.stdin is None:
            return False
        with self._lock:
            try:
                process.stdin.write(json.dumps(message).encode() + b"\n")
                process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return False
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the worker to finish and exit; terminate it past `timeout_s`, kill it past twice that."""
        process = self._process
        if process is None:
            return
        self.stopping = True
        self.send({"op": "stop"})
        with self._lock, contextlib.suppress(OSError, ValueError):
            assert process.stdin is not None
            process.stdin.close()
        for action in (None, process.terminate, process.kill):
            if action is not None:
                action()
            try:
                process.wait(timeout=timeout_s)
                return
            except subprocess.TimeoutExpired:
                continue

    def kill(self) -> None:
        if self._process is not None:
            self.stopping = True
            with contextlib.suppress(OSError):
                self._process.kill()

    def _read(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        stdout: IO[bytes] = process.stdout
        for line in stdout:
            try:
                event = json.loads(line)
            except ValueError:
                log.warning("generation worker wrote a line that is not JSON: %r", line[:200])
                continue
            try:
                self._on_event(event)
            except Exception:  # one bad event must not stop the events that follow
                log.exception("handling generation worker event %s failed", event.get("event"))
        code = process.wait()
        self._on_exit(self, code)
