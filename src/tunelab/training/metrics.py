"""Metric events: shown (invisibly) on stdout for the server and appended to metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.training.console import Console


class MetricsLog:
    """Sends each event to the console and to `path`, one JSON object per line."""

    def __init__(self, path: Path, console: Console, append: bool = False) -> None:
        self.path = path
        self.console = console
        if not append:
            path.write_text("")

    def step(self, step: int, epoch: float, values: dict[str, float]) -> None:
        self._emit({"event": "metrics", "step": step, "epoch": round(epoch, 4), "values": values})

    def summary(self, values: dict[str, Any]) -> None:
        self._emit({"event": "summary", "values": values})

    def _emit(self, event: dict[str, Any]) -> None:
        self.console.event(event)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(event) + "\n")
