"""Metric events: shown (invisibly) on stdout for the server and appended to metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.training.console import Console


class MetricsLog:
    """Sends each event to the console and to `path`, one JSON object per line."""

    def __init__(self, path: Path, console: Console, keep_until_step: int | None = None) -> None:
        """A fresh log, or with `keep_until_step` (a resumed run) the metric events of `path` up to that
        step, so that resuming where a run once went further leaves one event per step."""
        self.path = path
        self.console = console
        kept: list[str] = []
        if keep_until_step is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(event, dict) or event.get("event") != "metrics":
                    continue
                step = event.get("step")
                if isinstance(step, int) and step <= keep_until_step:
                    kept.append(line + "\n")
        path.write_text("".join(kept), encoding="utf-8")

    def step(self, step: int, epoch: float, values: dict[str, float]) -> None:
        self._emit({"event": "metrics", "step": step, "epoch": round(epoch, 4), "values": values})

    def summary(self, values: dict[str, Any]) -> None:
        self._emit({"event": "summary", "values": values})

    def _emit(self, event: dict[str, Any]) -> None:
        self.console.event(event)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(event) + "\n")
