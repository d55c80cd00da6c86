"""Runs' metric summaries, from the store's in-memory stats, under their experiment's goals."""

from __future__ import annotations

import threading
from collections import OrderedDict

from tunelab.domain.metrics import KeySummary, MetricGoal, RunStats, final_loss, summarise
from tunelab.domain.runs import Run
from tunelab.store import metrics as metric_store
from tunelab.store.db import Connection, Database

_MEMO_SIZE = 20_000


class _Summaries:
    """summarise() of each run, kept while its stats and goals stay the same: a page of 50 runs with 20 metrics
    each would otherwise build a thousand KeySummary objects on every poll. The store's stats of a run are a new
    object whenever they change, so holding the object and comparing identity says whether an entry still holds."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[RunStats, tuple[tuple[str, MetricGoal], ...], dict[str, KeySummary]]]
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    def of(self, run_id: str, stats: RunStats, goals: dict[str, MetricGoal]) -> dict[str, KeySummary]:
        key = tuple(sorted(goals.items()))
        with self._lock:
            entry = self._entries.get(run_id)
            if entry is not None and entry[0] is stats and entry[1] == key:
                self._entries.move_to_end(run_id)
                return entry[2]
        summary = summarise(stats, goals)
        with self._lock:
            self._entries[run_id] = (stats, key, summary)
            if len(self._entries) > _MEMO_SIZE:
                self._entries.popitem(last=False)
        return summary


_summaries = _Summaries()


def run_stats(db: Database, con: Connection, run_ids: list[str]) -> dict[str, RunStats]:
    """Stats per existing run among `run_ids`, computed through `con` for runs not yet in memory."""
    if not run_ids:
        return {}

    def load(missing: list[str]) -> dict[str, RunStats]:
        db.flush_rows()  # the stats join the runs table: rows still in the row journal must be there
        return metric_store.run_stats(con, missing)

    return db.summaries.get_many(run_ids, load)


def with_summary(run: Run, stats: RunStats, goals: dict[str, MetricGoal]) -> Run:
    summary = _summaries.of(run.id, stats, goals)
    return run.model_copy(update={"metrics_summary": summary, "final_loss": final_loss(stats)})


def with_summaries(runs: list[Run], stats: dict[str, RunStats], goals: dict[str, MetricGoal]) -> list[Run]:
    return [with_summary(run, stats.get(run.id, {}), goals) for run in runs]
