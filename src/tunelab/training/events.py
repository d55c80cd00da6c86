"""Metric events hidden in terminal output as OSC escape sequences: ``ESC ] 7711 ; {json} BEL``.

A terminal ignores them, so a person sees a clean progress bar, while the server that captured the bytes
finds every event with `parse_events`. Shapes::

    {"event": "metrics", "step": 12, "epoch": 1.5, "values": {"loss": 2.1, "learning_rate": 9e-05, ...}}
    {"event": "summary", "values": {"final_loss": 1.2, "best_eval_loss": 1.4, ...}}

Pure standard library on purpose: the server imports this module without paying for torch.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

PREFIX = "\x1b]7711;"
TERMINATOR = "\x07"
_EVENT = re.compile(rb"\x1b\]7711;(.*?)\x07", re.DOTALL)


def format_event(obj: dict[str, Any]) -> str:
    """Encode one event as an invisible escape sequence (compact JSON, no newlines inside)."""
    return PREFIX + json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False) + TERMINATOR


def parse_events(data: bytes) -> list[dict[str, Any]]:
    """Every well-formed event in `data`, in order; malformed or truncated ones are skipped."""
    events: list[dict[str, Any]] = []
    for match in _EVENT.finditer(data):
        try:
            event = json.loads(match.group(1))
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


class EventStream:
    """`parse_events` for a byte stream that arrives in pieces: an event cut between two pieces is found whole
    once its end arrives. Holds back at most the unfinished event (dropped past `limit` bytes: never valid)."""

    _START = PREFIX.encode()

    def __init__(self, limit: int = 1 << 20) -> None:
        self._held = b""
        self._limit = limit

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        data = self._held + data
        self._held = b""
        start = data.rfind(self._START)
        if start != -1 and data.find(TERMINATOR.encode(), start) == -1:
            self._held, data = data[start:], data[:start]  # an event begun and not yet ended
        else:  # the end may hold the first bytes of a prefix: ESC, ESC ], …
            for size in range(min(len(self._START) - 1, len(data)), 0, -1):
                if self._START.startswith(data[-size:]):
                    self._held, data = data[-size:], data[:-size]
                    break
        if len(self._held) > self._limit:
            self._held = b""
        return parse_events(data)


def strip_events(data: bytes) -> bytes:
    """`data` with the event sequences removed, for showing captured output as plain text."""
    return _EVENT.sub(b"", data)


def _finite(value: Any) -> Any:
    """NaN and infinities become null: they are not JSON, and a diverged loss must not crash the logger."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
