"""Experiments and runs as stored, kept in memory by id, so that reading one asks DuckDB nothing.

A DuckDB point query costs about a millisecond here, and the small writes read before they write (a run's status
before ending it, its siblings' to settle the experiment), so every answer paid for several. Only this process
writes the database, and every write goes through the services, which tell this cache once it has committed:
`put_run` with the run as now stored, `experiment_changed` to drop an experiment that must be read again.
An entry is loaded from the database on first use; a load that raced with a write to the same row could keep a
stale row, so each write bumps the row's generation and a loaded row is kept only if it did not move meanwhile.
Under the write lock the cache is exactly the database: writes are serialised there and tell it before letting go.

Each experiment's run ids are known too, loaded whole when the database opens and added to as runs are created
(runs are never deleted or moved): list pages need them for run counts and best metrics. So are every experiment's
name (names are unique) and, once asked for, each experiment's run names (unique per experiment): the small writes
that go through the row journal (store/row_journal.py) check them here, without asking DuckDB.
A row written through the row journal is put here whole when it is journaled (`put_experiment`, `put_run`), and
nothing is ever evicted, so a row that DuckDB does not have yet is always found here.

List pages keep the ids they found (and the count) for each filter until any experiment row is written
(`listing` and `keep_listing`): the SQL of a page reads only the experiments table, and every write of it tells
this cache (after its commit, or after its row journal line is written), so a page polled while training runs log
metrics asks DuckDB nothing. A page read while a write lands may be kept under the generation before that write;
it is never answered, as the write moves the generation on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

from tunelab.domain.experiments import Experiment
from tunelab.domain.runs import Run

T = TypeVar("T", Experiment, Run)
LISTINGS_KEPT = 64


class Rows:
    def __init__(self, runs_by_experiment: dict[str, list[str]], experiment_names: dict[str, str]) -> None:
        self._experiments: dict[str, Experiment] = {}
        self._names = dict(experiment_names)  # experiment id -> name
        self._owners = {name: eid for eid, name in experiment_names.items()}
        self._run_names: dict[str, set[str]] = {}  # experiment id -> its runs' names, once asked for
        self._runs: dict[str, Run] = {}
        self._runs_of = runs_by_experiment
        self._generation: dict[str, int] = {}
        self._listing_generation = 0  # moves on with every write of an experiment row
        self._listings: OrderedDict[Hashable, tuple[int, list[str], int]] = OrderedDict()
        self._lock = threading.Lock()

    def experiment(self, experiment_id: str, load: Callable[[str], Experiment | None]) -> Experiment | None:
        def load_one(ids: list[str]) -> list[Experiment]:
            found = load(ids[0])
            return [] if found is None else [found]

        return self._many(self._experiments, [experiment_id], load_one).get(experiment_id)

    def runs(self, run_ids: list[str], load: Callable[[list[str]], list[Run]]) -> dict[str, Run]:
        """The existing ones of `run_ids`; `load` reads those not in memory, in one call."""
        return self._many(self._runs, run_ids, load)

    def experiments(
        self, experiment_ids: list[str], load: Callable[[list[str]], list[Experiment]]
    ) -> dict[str, Experiment]:
        """The existing ones of `experiment_ids`; `load` reads those not in memory, in one call."""
        return self._many(self._experiments, experiment_ids, load)

    def _many(self, kept: dict[str, T], ids: list[str], load: Callable[[list[str]], list[T]]) -> dict[str, T]:
        with self._lock:
            found = {rid: kept[rid] for rid in ids if rid in kept}
            missing = [rid for rid in dict.fromkeys(ids) if rid not in found]
            generations = {rid: self._generation.get(rid, 0) for rid in missing}
        if missing:
            loaded = load(missing)
            with self._lock:
                for row in loaded:
                    found[row.id] = row
                    if self._generation.get(row.id, 0) == generations[row.id]:
                        kept[row.id] = row
        return found

    def listing(self, query: Hashable) -> tuple[int, tuple[list[str], int] | None]:
        """The generation of the experiments table now, and the ids and count a list query found in it, if kept."""
        with self._lock:
            kept = self._listings.get(query)
            if kept is not None and kept[0] == self._listing_generation:
                self._listings.move_to_end(query)
                return kept[0], (list(kept[1]), kept[2])
            return self._listing_generation, None

    def keep_listing(self, query: Hashable, generation: int, ids: list[str], total: int) -> None:
        """What a list query found, read after `listing` answered `generation`."""
        with self._lock:
            if generation != self._listing_generation:
                return
            self._listings[query] = (generation, list(ids), total)
            self._listings.move_to_end(query)
            while len(self._listings) > LISTINGS_KEPT:
                self._listings.popitem(last=False)

    def run(self, run_id: str, load: Callable[[list[str]], list[Run]]) -> Run | None:
        return self.runs([run_id], load).get(run_id)

    def runs_of(self, experiment_ids: list[str]) -> dict[str, list[str]]:
        """Each experiment's run ids, oldest first (experiments without runs are absent)."""
        with self._lock:
            return {eid: list(self._runs_of[eid]) for eid in experiment_ids if eid in self._runs_of}

    def created(self, run: Run) -> None:
        """A run was inserted and committed."""
        with self._lock:
            self._runs_of.setdefault(run.experiment_id, []).append(run.id)
            if run.experiment_id in self._run_names:
                self._run_names[run.experiment_id].add(run.name)
        self.put_run(run)

    def run_names(self, experiment_id: str, load: Callable[[], set[str]]) -> set[str]:
        """The names of the experiment's runs; `load` reads them the first time. Callers hold the write lock."""
        with self._lock:
            names = self._run_names.get(experiment_id)
        if names is None:
            names = load()
            with self._lock:
                self._run_names[experiment_id] = names
        return set(names)

    def experiment_named(self, name: str) -> str | None:
        """The id of the experiment that has this name."""
        with self._lock:
            return self._owners.get(name)

    def experiment_exists(self, experiment_id: str) -> bool:
        with self._lock:
            return experiment_id in self._names

    def named(self, experiment_id: str, name: str) -> None:
        """An experiment was created with this name, or renamed to it."""
        with self._lock:
            old = self._names.get(experiment_id)
            if old is not None and self._owners.get(old) == experiment_id:
                del self._owners[old]
            self._names[experiment_id] = name
            self._owners[name] = experiment_id
            self._listing_generation += 1

    def experiment_created(self, experiment: Experiment) -> None:
        """A new experiment (so without runs) was written."""
        self.named(experiment.id, experiment.name)
        with self._lock:
            self._run_names[experiment.id] = set()
        self.put_experiment(experiment)

    def put_experiment(self, experiment: Experiment) -> None:
        """The experiment as it is stored now (or as the row journal will store it)."""
        with self._lock:
            self._generation[experiment.id] = self._generation.get(experiment.id, 0) + 1
            self._experiments[experiment.id] = experiment
            self._listing_generation += 1

    def put_run(self, run: Run) -> None:
        """The run as it is stored now (its metric summary is not kept: reads add it)."""
        plain = run.model_copy(update={"metrics_summary": {}, "final_loss": None})
        with self._lock:
            self._generation[run.id] = self._generation.get(run.id, 0) + 1
            self._runs[run.id] = plain

    def experiment_changed(self, experiment_id: str) -> None:
        """The experiment's row was written: read it again when next needed."""
        with self._lock:
            self._generation[experiment_id] = self._generation.get(experiment_id, 0) + 1
            self._experiments.pop(experiment_id, None)
            self._listing_generation += 1
