"""The executor port: small enough that a Ray executor (a Ray job writing the same two files) can be added without
touching the scheduler, the follower or the API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

OUTPUT_LOG = "output.log"
EXIT_FILE = "exit.json"


@dataclass(frozen=True)
class Command:
    argv: list[str]  # an argument list, never a shell line
    env: dict[str, str]
    cwd: Path


@dataclass(frozen=True)
class ExitStatus:
    """How a command ended: its exit code, or the signal that killed it; `cancelled` when cancel() asked."""

    exit_code: int | None
    signal: int | None
    cancelled: bool
    ended_at: str

    @property
    def code(self) -> int:
        """One number, as a shell shows it: the exit code, or 128 + the signal."""
        return self.exit_code if self.exit_code is not None else 128 + (self.signal or 0)

    @classmethod
    def read(cls, path: Path) -> ExitStatus | None:
        """The exit file at `path`, or None while there is none (a torn file reads as none: it is written whole
        under another name and renamed)."""
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls(data.get("exit_code"), data.get("signal"), bool(data.get("cancelled")), str(data.get("ended_at")))


class Handle(Protocol):
    """One command started (or found again after a restart)."""

    run_id: str
    log_path: Path  # every byte of output, appended as it comes

    def exit_status(self) -> ExitStatus | None:
        """How the command ended; None while it runs."""

    def alive(self) -> bool:
        """Whether whatever runs the command is still there; not alive and no exit status: the run was lost."""

    def cancel(self) -> None:
        """Stop the command: SIGTERM to its process group, SIGKILL after a grace period."""


class Executor(Protocol):
    def start(self, run_id: str, command: Command) -> Handle:
        """Start `command`; returns at once."""

    def attach(self, run_id: str) -> Handle:
        """The handle of a command started before (by this server or one before it)."""
