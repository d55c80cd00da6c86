"""SQL for metric points: batched in through Arrow, read back by run and key."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from tunelab.domain.runs import SeriesPoint
from tunelab.store.db import Connection

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


def insert_run_points(
    con: Connection,
    run_id: str,
    keys: list[str],
    steps: list[int],
    values: list[float],
    stamps: list[datetime | None],
    default_ts: datetime,
) -> int:
    """One run's points in one statement (row-by-row inserts run ~1000x slower in DuckDB); the run id and the
    time of stampless points go in as parameters, not as 10,000-element columns (that Arrow conversion cost more
    than the insert's index work)."""
    import pyarrow as pa  # imported here: the ops script and CLI start faster without it

    ts_type = pa.timestamp("us")
    ts = pa.nulls(len(keys), ts_type) if stamps.count(None) == len(stamps) else pa.array(stamps, ts_type)
    table = pa.Table.from_arrays(
        [pa.array(keys, pa.string()), pa.array(steps, pa.int64()), pa.array(values, pa.float64()), ts],
        names=["key", "step", "value", "ts"],
    )
    with _registered(con, table):
        con.execute(
            "INSERT INTO metrics SELECT ?, key, step, value, coalesce(ts, ?) FROM _metric_batch", [run_id, default_ts]
        )
    return int(table.num_rows)


def insert_table(con: Connection, table: pa.Table) -> int:
    with _registered(con, table):
        con.execute("INSERT INTO metrics SELECT run_id, key, step, value, ts FROM _metric_batch")
    return int(table.num_rows)


@contextmanager
def _registered(con: Connection, table: pa.Table) -> Iterator[None]:
    """`table` visible to SQL as _metric_batch for the block; a failed unregister never hides the block's error."""
    con.register("_metric_batch", table)
    try:
        yield
    except BaseException:
        try:
            con.unregister("_metric_batch")
        except Exception:
            log.exception("could not unregister _metric_batch after an error; the error follows")
        raise
    con.unregister("_metric_batch")


def series(con: Connection, run_id: str, keys: list[str] | None = None) -> dict[str, list[SeriesPoint]]:
    sql = "SELECT key, step, value, ts FROM metrics WHERE run_id = ?"
    params: list[object] = [run_id]
    if keys:
        sql += " AND list_contains(?, key)"
        params.append(keys)
    out: dict[str, list[SeriesPoint]] = defaultdict(list)
    for key, step, value, ts in con.execute(sql + " ORDER BY key, step, ts", params).fetchall():
        out[key].append(SeriesPoint(step=step, value=value, ts=ts))
    return dict(out)


def history(con: Connection, run_ids: list[str], key: str) -> dict[str, tuple[list[int], list[float]]]:
    """One key's full history for many runs, as columns (what a loss chart needs)."""
    table = con.sql(
        "SELECT run_id, step, value FROM metrics WHERE list_contains(?, run_id) AND key = ? ORDER BY run_id, step",
        params=[run_ids, key],
    ).to_arrow_table()
    out: dict[str, tuple[list[int], list[float]]] = {}
    runs, steps, values = (table.column(i).to_pylist() for i in range(3))
    for run_id, step, value in zip(runs, steps, values, strict=True):
        entry = out.setdefault(run_id, ([], []))
        entry[0].append(step)
        entry[1].append(value)
    return out


def delete_for_run(con: Connection, run_id: str) -> None:
    con.execute("DELETE FROM metrics WHERE run_id = ?", [run_id])
