"""Per-run metric stats kept in memory, so that neither ingest nor reads aggregate the metrics table each time.

The stats are derived data: the metrics table is the truth, and a run's entry is computed from it on first use.
Only this process writes the database, so after that the entry is kept current by the writes themselves
(`appended`), or dropped when a write replaces stored points (`forget`) and computed again when next needed.
A read that computes an entry while a write to the same run commits could store stale stats; each write bumps
the run's generation, and a computed entry is kept only if the generation did not move meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tunelab.domain.metrics import RunStats, append_stats


class SummaryCache:
    def __init__(self) -> None:
        self._stats: dict[str, RunStats] = {}
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()

    def get_many(self, run_ids: list[str], compute: Callable[[list[str]], dict[str, RunStats]]) -> dict[str, RunStats]:
        """Stats of each existing run (empty for a run without points); `compute` fills those not cached in one call,
        leaving out unknown runs, which are neither answered nor kept."""
        with self._lock:
            found = {rid: self._stats[rid] for rid in run_ids if rid in self._stats}
            missing = [rid for rid in dict.fromkeys(run_ids) if rid not in found]
            generations = {rid: self._generation.get(rid, 0) for rid in missing}
        if not missing:
            return found
        computed = compute(missing)
        with self._lock:
            for rid, stats in computed.items():
                found[rid] = stats
                if self._generation.get(rid, 0) == generations[rid]:
                    self._stats[rid] = stats
        return found

    def generation(self, run_id: str) -> int:
        """How many writes of the run's points this process has seen: equal generations, equal points."""
        with self._lock:
            return self._generation.get(run_id, 0)

    def created(self, run_id: str) -> None:
        """A new run (committed), which has no points yet: no need to look for them."""
        with self._lock:
            self._stats.setdefault(run_id, {})

    def appended(self, run_id: str, fresh: RunStats) -> None:
        """Points that all come after the run's stored ones were committed."""
        with self._lock:
            self._generation[run_id] = self._generation.get(run_id, 0) + 1
            if run_id in self._stats:
                self._stats[run_id] = append_stats(self._stats[run_id], fresh)

    def forget(self, run_id: str) -> None:
        """Stored points of the run were replaced or removed: compute its stats afresh when next asked."""
        with self._lock:
            self._generation[run_id] = self._generation.get(run_id, 0) + 1
            self._stats.pop(run_id, None)
