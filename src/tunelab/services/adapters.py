"""Adapter records. A run that trained successfully registers its adapter here (`register_run`); the registry
(validation of adapters from outside, listing, lifecycle, comparison) builds on the same table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.domain.adapters import Adapter
from tunelab.domain.common import utcnow
from tunelab.domain.experiments import Experiment
from tunelab.domain.runs import Run
from tunelab.errors import NotFound
from tunelab.services.experiments import new_id
from tunelab.store import adapters as store
from tunelab.store.db import Database

NAME_MAX = 100


class AdapterService:
    def __init__(self, db: Database):
        self.db = db

    def get(self, adapter_id: str) -> Adapter:
        with self.db.read() as con:
            adapter = store.get(con, adapter_id)
        if adapter is None or adapter.deleted_at is not None:
            raise NotFound(f"Adapter {adapter_id!r} does not exist", code="adapter_not_found",
                           details={"adapter_id": adapter_id})  # fmt: skip
        return adapter

    def register_run(self, run: Run, experiment: Experiment, metrics: dict[str, Any]) -> Adapter:
        """The adapter a run wrote to {output_dir}/final, named `{experiment}-{run}` with the next version of the
        day (YYYY.MM.DD.N); registering the same run again gives the same record (a restart may finish a run twice).
        Raises ValueError when the run left no adapter to register."""
        assert run.output_dir is not None
        output = Path(run.output_dir)
        final = output / "final"
        if not (final / "adapter_config.json").is_file() or not (final / "adapter_model.safetensors").is_file():
            raise ValueError(f"the run wrote no adapter to {final}")
        try:
            training_config = json.loads((output / "training_config.json").read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"training_config.json cannot be read: {error}") from None
        name = f"{experiment.name}-{run.name}"[:NAME_MAX]
        now = utcnow()
        day = now.strftime("%Y.%m.%d")
        with self.db.transaction() as con:
            existing = store.of_run(con, run.id)
            if existing is not None:
                return existing
            taken = {v for v in store.versions_like(con, name, day + ".")}
            number = 1 + max((int(v.rsplit(".", 1)[1]) for v in taken if v.rsplit(".", 1)[1].isdigit()), default=0)
            adapter_id = new_id("adp")
            row: dict[str, Any] = {
                "id": adapter_id, "name": name, "version": f"{day}.{number}",
                "base_model_id": run.provenance.get("base_model_id"), "storage_path": str(final), "active": False,
                "description": f"Trained by run {run.name} of experiment {experiment.name}",
                "training_config": training_config if isinstance(training_config, dict) else {},
                "training_dataset_id": experiment.dataset_id, "experiment_id": experiment.id, "run_id": run.id,
                "metrics": metrics, "created_at": now, "updated_at": now,
            }  # fmt: skip
            store.insert(con, row)
            adapter = store.get(con, adapter_id)
        assert adapter is not None
        return adapter
