"""The metric journal: appending batches are acknowledged once they are on disk here, and reach DuckDB in groups.

A DuckDB commit of even three points costs about a millisecond, so a training loop that logs every step and waits
for each answer would spend most of its time there. Instead an appending batch is written to this append-only
file and synced (tens of microseconds), kept in memory, and inserted into DuckDB together with the batches that
followed it, one transaction for all of them, within FLUSH_AFTER seconds — or at once when a read, a status
change or a batch that replaces points needs the table to be complete. After the commit the file is emptied.

Nothing acknowledged is lost: a batch is acknowledged only after its line is synced, and when the server opens the
database it first applies every line the file still holds. A line may be applied twice (the server may die after
the commit, before the file is emptied); points are unique per (run, key, step) and applying replaces, so twice is
the same as once. A last line cut short by a crash belongs to a batch that was never acknowledged: it is skipped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from tunelab.domain.metrics import MetricColumns

log = logging.getLogger(__name__)
T = TypeVar("T")

FLUSH_AFTER = 0.05  # seconds a batch may wait in the journal
FLUSH_POINTS = 20_000  # or this many points


@dataclass(frozen=True)
class Entry:
    run_id: str
    batch: MetricColumns
    default_ts: datetime


def _line(entry: Entry) -> bytes:
    batch = entry.batch
    record = {
        "run_id": entry.run_id, "keys": batch.keys, "steps": batch.steps, "values": batch.values,
        "stamps": [stamp.isoformat() if stamp else None for stamp in batch.stamps],
        "default_ts": entry.default_ts.isoformat(),
    }  # fmt: skip
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode()


def _entry(line: bytes) -> Entry:
    record = json.loads(line)
    stamps = [datetime.fromisoformat(stamp) if stamp else None for stamp in record["stamps"]]
    batch = MetricColumns(record["keys"], record["steps"], record["values"], stamps)
    return Entry(record["run_id"], batch, datetime.fromisoformat(record["default_ts"]))


class SyncedLines:
    """An append-only file of lines, each durable once `append` returns; emptied once what it held is applied."""

    def __init__(self, path: Path):
        self.path = path
        self.lines = self._read()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _read(self) -> list[bytes]:
        try:
            lines = self.path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return []
        if lines[-1]:  # the part after the last newline was never synced, so never acknowledged
            log.warning("journal %s: a write cut short by a crash (never acknowledged) is skipped", self.path)
        return lines[:-1]

    def append(self, line: bytes) -> None:
        os.write(self._fd, line + b"\n")
        os.fdatasync(self._fd)

    def truncate(self) -> None:
        os.ftruncate(self._fd, 0)
        os.fdatasync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def parsed(file: SyncedLines, parse: Callable[[bytes], T]) -> list[T]:
    """The file's lines as entries; a line that is not one is logged and skipped."""
    entries = []
    for number, line in enumerate(file.lines, start=1):
        try:
            entries.append(parse(line))
        except (ValueError, KeyError, TypeError):
            log.error("journal %s: line %d is not an entry; skipped", file.path, number)
    return entries


class MetricJournal:
    """The file and the entries it holds that DuckDB does not have yet. Callers hold the write lock."""

    def __init__(self, path: Path):
        self.file = SyncedLines(path)
        self.pending = parsed(self.file, _entry)
        self.points = sum(len(entry.batch) for entry in self.pending)
        self.since = time.monotonic()  # when the oldest pending entry came

    def append(self, entry: Entry) -> None:
        """Write and sync the entry; once this returns, the batch is durable."""
        self.file.append(_line(entry))
        if not self.pending:
            self.since = time.monotonic()
        self.pending = [*self.pending, entry]  # a new list: readers look at it without the lock
        self.points += len(entry.batch)

    def applied(self) -> None:
        """Every pending entry is committed to DuckDB: empty the file."""
        self.file.truncate()
        self.pending = []
        self.points = 0

    def close(self) -> None:
        self.file.close()
