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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tunelab.domain.metrics import MetricColumns

log = logging.getLogger(__name__)

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
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _entry(line: bytes) -> Entry:
    record = json.loads(line)
    stamps = [datetime.fromisoformat(stamp) if stamp else None for stamp in record["stamps"]]
    batch = MetricColumns(record["keys"], record["steps"], record["values"], stamps)
    return Entry(record["run_id"], batch, datetime.fromisoformat(record["default_ts"]))


class MetricJournal:
    """The file and the entries it holds that DuckDB does not have yet. Callers hold the write lock."""

    def __init__(self, path: Path):
        self.path = path
        self.pending = self._read()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.points = sum(len(entry.batch) for entry in self.pending)
        self.since = time.monotonic()  # when the oldest pending entry came

    def _read(self) -> list[Entry]:
        try:
            lines = self.path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return []
        entries = []
        for number, line in enumerate(lines[:-1], start=1):  # the part after the last newline was never synced
            try:
                entries.append(_entry(line))
            except (ValueError, KeyError, TypeError):
                log.error("metric journal %s: line %d is not an entry; skipped", self.path, number)
        if lines[-1]:
            log.warning("metric journal %s: a batch cut short by a crash (never acknowledged) is skipped", self.path)
        return entries

    def append(self, entry: Entry) -> None:
        """Write and sync the entry; once this returns, the batch is durable."""
        os.write(self._fd, _line(entry))
        os.fdatasync(self._fd)
        if not self.pending:
            self.since = time.monotonic()
        self.pending = [*self.pending, entry]  # a new list: readers look at it without the lock
        self.points += len(entry.batch)

    def applied(self) -> None:
        """Every pending entry is committed to DuckDB: empty the file."""
        os.ftruncate(self._fd, 0)
        os.fdatasync(self._fd)
        self.pending = []
        self.points = 0

    def close(self) -> None:
        os.close(self._fd)
