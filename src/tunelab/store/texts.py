"""Whole series as JSON text, kept in memory until their run's points change, so that a chart polled again and
again is not rebuilt from a scan of the metrics table each time.

The metrics table is scanned whole to find one series (its zone maps cannot prune runs logged side by side): ~8 ms
for a 1,000-point series among 2M points on 2 cores, and a page polls each chart it shows. A text is kept with the
generation its run had in the summary cache (store/summaries.py) when the read began; every write of the run's
points moves that generation on (an append when it is journaled, a replacement once committed), so a text is
answered only while no point of its run has changed. The read must take the generation before it reads DuckDB:
a write landing in between then leaves the text under a generation that is already past, never answered.
Bounded by TEXT_BYTES_KEPT, least recently used dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

TEXT_BYTES_KEPT = 64 * 1024 * 1024


class SeriesTexts:
    def __init__(self, budget: int = TEXT_BYTES_KEPT) -> None:
        self._texts: OrderedDict[tuple[str, str], tuple[int, str]] = OrderedDict()
        self._bytes = 0
        self._budget = budget
        self._lock = threading.Lock()

    def get(self, run_id: str, key: str, generation: int) -> str | None:
        """The series' text if it was read at `generation`."""
        with self._lock:
            kept = self._texts.get((run_id, key))
            if kept is None or kept[0] != generation:
                return None
            self._texts.move_to_end((run_id, key))
            return kept[1]

    def keep(self, run_id: str, key: str, generation: int, text: str) -> None:
        """The series' text as read after its run was at `generation`."""
        if len(text) > self._budget // 8:
            return
        with self._lock:
            old = self._texts.pop((run_id, key), None)
            if old is not None:
                self._bytes -= len(old[1])
            self._texts[(run_id, key)] = (generation, text)
            self._bytes += len(text)
            while self._bytes > self._budget:
                _, (_, dropped) = self._texts.popitem(last=False)
                self._bytes -= len(dropped)
