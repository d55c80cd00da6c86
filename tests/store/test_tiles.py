"""Chart reads from tiles: each bucket keeps exactly the extremes its raw points have, as the series grows and when
stored points are sent again."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from tunelab.config import Settings
from tunelab.domain.experiments import ExperimentCreate
from tunelab.domain.metrics import MetricColumns
from tunelab.domain.runs import RunCreate
from tunelab.services import Services
from tunelab.store import Database
from tunelab.store.tiles import TILE_BITS, tile_shift

BASE = datetime(2026, 1, 1)
MAX_POINTS = 100


def batch(rng: random.Random, steps: range, spike: int | None = None) -> MetricColumns:
    """Values without ties (which point stands for equal extremes is left open); some stamped to the microsecond,
    some left to the server's time."""
    values = [rng.random() for _ in steps]
    if spike is not None:
        values[spike - steps.start] = 1000.0
    stamps: list[datetime | None] = [BASE + timedelta(seconds=s, microseconds=s % 7) if s % 5 else None for s in steps]
    return MetricColumns(["loss"] * len(steps), list(steps), values, stamps)


def raw_extremes(db: Database, run_id: str) -> set[tuple[int, float]]:
    """Each bucket's lowest and highest point, from the raw points, in the buckets of a power of two of tiles that
    the chart read uses."""
    with db.read() as con:
        first, last = con.execute("SELECT min(step), max(step) FROM metrics WHERE run_id = ?", [run_id]).fetchone()
        shift = tile_shift(first, last, MAX_POINTS // 2)
        assert shift is not None
        rows = con.execute(
            f"""
            SELECT arg_min(step, value), min(value), arg_max(step, value), max(value)
            FROM metrics WHERE run_id = ? GROUP BY ((step >> {TILE_BITS}) - ({first} >> {TILE_BITS})) >> {shift}
            """,  # noqa: S608 - numbers
            [run_id],
        ).fetchall()
    return {(s, v) for lo, lo_v, hi, hi_v in rows for s, v in ((lo, lo_v), (hi, hi_v))}


def charted(services: Services, run_id: str) -> list[dict[str, object]]:
    return json.loads(services.runs.metrics(run_id, keys=["loss"], max_points=MAX_POINTS))["series"]["loss"]


def test_a_chart_read_keeps_each_buckets_extremes_as_the_series_grows_and_is_sent_again(settings: Settings) -> None:
    db = Database(settings.db_path)
    services = Services.build(db)
    run_id = services.runs.create(services.experiments.create(ExperimentCreate(name="tiles")).id,
                                  RunCreate(external=True)).id  # fmt: skip
    rng = random.Random(3)
    for start in range(0, 8000, 1000):
        services.runs.ingest(run_id, batch(rng, range(start, start + 1000), spike=4321 if start == 4000 else None))

    first = charted(services, run_id)
    for start in range(8000, 9000, 250):  # appended after the tiles were kept: read as the tail
        services.runs.ingest(run_id, batch(rng, range(start, start + 250)))
    grown = charted(services, run_id)
    grown_expected = raw_extremes(db, run_id)
    services.runs.ingest(run_id, batch(rng, range(100, 200), spike=150))  # a resend of stored steps
    resent = charted(services, run_id)

    assert len(first) <= MAX_POINTS and {"step": 4321, "value": 1000.0} in [
        {"step": p["step"], "value": p["value"]} for p in first
    ]
    assert [p["step"] for p in grown] == sorted(p["step"] for p in grown)  # type: ignore[type-var]
    assert {(p["step"], p["value"]) for p in grown} == grown_expected
    assert {(p["step"], p["value"]) for p in resent} == raw_extremes(db, run_id)
    assert max(int(p["step"]) for p in grown) >= 8900  # type: ignore[call-overload]
    assert (150, 1000.0) in {(p["step"], p["value"]) for p in resent}
    whole = {p["step"]: p for p in json.loads(services.runs.metrics(run_id, keys=["loss"]))["series"]["loss"]}
    assert all(whole[p["step"]] == p for p in resent)  # the same points, times written the same way
    db.close()


def test_only_long_series_read_whole_use_tiles(settings: Settings) -> None:
    assert tile_shift(0, 64 * 50 - 1, 50) is None  # 50 tiles fit 50 buckets: raw points give finer ones
    assert tile_shift(0, 64 * 51 - 1, 50) == 1
    assert tile_shift(0, 999_999, 500) == 5  # 15,625 tiles in 489 buckets of 32
    assert tile_shift(2**62, 2**63 - 1, 500) is not None
