"""Experiments and runs as stored, kept in memory by id, so that reading one asks DuckDB nothing.

A DuckDB point query costs about a millisecond here, and the small writes read before they write (a run's status
before ending it, its siblings' to settle the experiment), so every answer paid for several. Only this process
writes the database, and every write goes through the services, which tell this cache once it has committed:
`put_run` with the run as now stored, `experiment_changed` to drop an experiment that must be read again.
An entry is loaded from the database on first use; a load that raced with a write to the same row could keep a
stale row, so each write bumps the row's generation and a loaded row is kept only if it did not move meanwhile.
Under the write lock the cache is exactly the database: writes are serialised there and tell it before letting go.

Each experiment's run ids are known too, loaded whole when the database opens and added to as runs are created
(runs are never deleted or moved): list pages need them for run counts and best metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tunelab.domain.experiments import Experiment
from tunelab.domain.runs import Run


class Rows:
    def __init__(self, runs_by_experiment: dict[str, list[str]]) -> None:
        self._experiments: dict[str, Experiment] = {}
        self._runs: dict[str, Run] = {}
        self._runs_of = runs_by_experiment
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()

    def experiment(self, experiment_id: str, load: Callable[[str], Experiment | None]) -> Experiment | None:
        with self._lock:
            if experiment_id in self._experiments:
                return self._experiments[experiment_id]
            generation = self._generation.get(experiment_id, 0)
        found = load(experiment_id)
        if found is not None:
            with self._lock:
                if self._generation.get(experiment_id, 0) == generation:
                    self._experiments[experiment_id] = found
        return found

    def runs(self, run_ids: list[str], load: Callable[[list[str]], list[Run]]) -> dict[str, Run]:
        """The existing ones of `run_ids`; `load` reads those not in memory, in one call."""
        with self._lock:
            found = {rid: self._runs[rid] for rid in run_ids if rid in self._runs}
            missing = [rid for rid in dict.fromkeys(run_ids) if rid not in found]
            generations = {rid: self._generation.get(rid, 0) for rid in missing}
        if missing:
            loaded = load(missing)
            with self._lock:
                for run in loaded:
                    found[run.id] = run
                    if self._generation.get(run.id, 0) == generations[run.id]:
                        self._runs[run.id] = run
        return found

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
        self.put_run(run)

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
