"""What a person watching the run sees: a header, coloured info/warning lines, progress bars, a summary.

Everything goes to stdout (with the invisible metric events), except the failure reason, which goes to
stderr after stdout is flushed, so it is the last line of the combined output and of stderr alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import IO, Any

from tqdm import tqdm

from tunelab.training.events import format_event

_RESET = "\x1b[0m"
_COLOURS = {"info": "\x1b[36m", "ok": "\x1b[32m", "warn": "\x1b[33m", "error": "\x1b[31m", "bold": "\x1b[1m"}


class Console:
    """Writes the human-readable log and the machine-readable events to the same terminal."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.colour = _wants_colour(self.out)

    def header(self, title: str, settings: Mapping[str, Any]) -> None:
        width = max(len(key) for key in settings)
        self._line(self._paint("bold", title))
        for key, value in settings.items():
            self._line(f"  {key:<{width}}  {value}")

    def info(self, message: str) -> None:
        self._line(self._paint("info", "info ") + message)

    def ok(self, message: str) -> None:
        self._line(self._paint("ok", "done ") + message)

    def warn(self, message: str) -> None:
        self._line(self._paint("warn", "warn ") + message)

    def event(self, obj: dict[str, Any]) -> None:
        """A metric event: invisible in a terminal, so it needs no line of its own."""
        self.out.write(format_event(obj))
        self.out.flush()

    def progress(self, total: int, description: str, initial: int = 0) -> tqdm:  # type: ignore[type-arg]
        return tqdm(total=total, initial=initial, desc=description, file=self.out, leave=True, dynamic_ncols=True)

    def fail(self, reason: str) -> None:
        """The last thing a failed run prints: one line with the reason."""
        self.out.flush()
        self.err.write(self._paint("error", "error: ") + " ".join(reason.split()) + "\n")
        self.err.flush()

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _paint(self, style: str, text: str) -> str:
        return f"{_COLOURS[style]}{text}{_RESET}" if self.colour else text


def _wants_colour(stream: IO[str]) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()
