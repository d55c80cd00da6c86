"""Chart reads of long series from per-tile extremes kept in memory, so a million-point series is not scanned again
at every poll.

A tile is 64 consecutive steps of one run's key and its lowest and highest point. Decimating a series for a chart
needs only the tiles: buckets of a power of two of tiles keep exactly the extremes that the same buckets of raw
points keep. Tiles are computed from DuckDB when a series is first charted
(one scan of its points) and kept; later reads scan only the points past the last complete tile, since points are
appended at steps past the last stored one, and a write that replaces stored points forgets its run's tiles
(`forget`). Tiles live in memory only, bounded by SERIES_KEPT series: nothing on disk to keep exact, and the write
path (the metric journal's flushes) pays nothing for them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from tunelab.store.db import Connection

TILE_BITS = 6  # 64 steps a tile
SERIES_KEPT = 64  # ~1 MB each for a million-point series
_COLUMNS = ("tile", "lo_step", "lo_value", "lo_us", "hi_step", "hi_value", "hi_us")


@dataclass(frozen=True)
class Tiles:
    """Tiles in tile order, one array per column of _COLUMNS."""

    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.arrays["tile"])

    def before(self, tile: int) -> Tiles:
        keep = self.arrays["tile"] < tile
        return Tiles({name: column[keep] for name, column in self.arrays.items()})

    def then(self, more: Tiles) -> Tiles:
        return Tiles({name: np.concatenate([self.arrays[name], more.arrays[name]]) for name in _COLUMNS})


def tile_rows(con: Connection, run_id: str, key: str, from_step: int) -> Tiles:
    """The series' tiles from the one holding `from_step` (a tile's first step) on, in one scan of its points.
    Among points of equal value any one may stand for the tile's extreme."""
    found = con.execute(
        f"""
        SELECT tile, lo_value, lo.s AS lo_step, lo.u AS lo_us, hi_value, hi.s AS hi_step, hi.u AS hi_us FROM (
            SELECT step >> {TILE_BITS} AS tile, min(value) AS lo_value, max(value) AS hi_value,
                   arg_min({{'s': step, 'u': epoch_us(ts)}}, value) AS lo, arg_max({{'s': step, 'u': epoch_us(ts)}}, value) AS hi
            FROM metrics WHERE run_id = ? AND key = ? AND step >= ? GROUP BY tile
        ) ORDER BY tile
        """,  # noqa: S608 - constant text
        [run_id, key, from_step],
    ).fetchnumpy()
    return Tiles({name: np.asarray(found[name], dtype=np.float64 if "value" in name else np.int64)
                  for name in _COLUMNS})  # fmt: skip


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Where each run of equal keys begins."""
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if len(sorted_keys) else sorted_keys[:0]


def tile_shift(first_step: int, last_step: int, buckets: int) -> int | None:
    """The smallest k such that buckets of 2**k tiles, counted from the series' first tile, number at most
    `buckets`; None where single tiles already fit, as the raw points then give finer buckets and are few."""
    span = (last_step >> TILE_BITS) - (first_step >> TILE_BITS) + 1
    if span <= buckets:
        return None
    shift = 1
    while ((span - 1) >> shift) + 1 > buckets:
        shift += 1
    return shift


class TileCache:
    """Each charted series' complete tiles (every tile but its last, which may still grow), least recently used
    dropped first."""

    def __init__(self) -> None:
        self._series: OrderedDict[tuple[str, str], Tiles] = OrderedDict()
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()

    def tiles(self, con: Connection, run_id: str, key: str) -> Tiles:
        """Every tile of the series, from memory and from the points past the last complete tile kept."""
        with self._lock:
            kept = self._series.get((run_id, key))
            generation = self._generation.get(run_id, 0)
        start = int(kept.arrays["tile"][-1]) + 1 if kept is not None and len(kept) else 0
        fresh = tile_rows(con, run_id, key, start << TILE_BITS)
        every = fresh if kept is None else kept.then(fresh)
        if len(fresh):
            with self._lock:
                if self._generation.get(run_id, 0) == generation:
                    self._series[(run_id, key)] = every.before(int(fresh.arrays["tile"][-1]))
                    self._series.move_to_end((run_id, key))
                    while len(self._series) > SERIES_KEPT:
                        self._series.popitem(last=False)
        return every

    def forget(self, run_id: str) -> None:
        """Stored points of the run were replaced: its tiles are read afresh."""
        with self._lock:
            self._generation[run_id] = self._generation.get(run_id, 0) + 1
            for series in [s for s in self._series if s[0] == run_id]:
                del self._series[series]


def decimated_json(tiles: Tiles, shift: int) -> str:
    """A JSON array of each bucket's lowest and highest point ({step, value, ts}, in step order), buckets of
    2**shift tiles counted from the first."""
    a = tiles.arrays
    bucket = (a["tile"] - a["tile"][0]) >> shift
    starts = _group_starts(bucket)
    low = np.lexsort((a["lo_step"], a["lo_value"], bucket))[starts]
    high = np.lexsort((a["hi_step"], -a["hi_value"], bucket))[starts]
    steps = np.r_[a["lo_step"][low], a["hi_step"][high]]
    values = np.r_[a["lo_value"][low], a["hi_value"][high]]
    us = np.r_[a["lo_us"][low], a["hi_us"][high]]
    steps, first = np.unique(steps, return_index=True)  # a bucket whose extremes are one point gives it once
    values, us = values[first], us[first]
    times = np.where(us % 1_000_000 == 0, np.datetime_as_string(us.astype("datetime64[us]"), unit="s"),
                     np.datetime_as_string(us.astype("datetime64[us]"), unit="us"))  # fmt: skip
    body = ",".join(
        f'{{"step":{step},"value":{value!r},"ts":"{ts}Z"}}'
        for step, value, ts in zip(steps.tolist(), values.tolist(), times.tolist(), strict=True)
    )
    return "[" + body + "]"
