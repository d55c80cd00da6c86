"""The adapter registry: registration (validated without loading a model), listing with the base models'
capabilities and compatibility with the current model, activation (one active version per name) with its history
and roll back, rename, soft delete, the version timeline, comparison and diff.

Adapters trained by runs here (`register_run`) go through the same validation as folders registered by hand.
Compatibility: an adapter is compatible when it was trained on the current base model; activating it (and, from the
next issue, loading it for generation) also checks that its LoRA shapes still fit that model's modules on disk.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from tunelab.config import Settings
from tunelab.domain.adapters import (
    COMPARED_METRICS,
    NAME_MAX,
    ActivePeriod,
    Adapter,
    AdapterComparison,
    AdapterCreate,
    AdapterDetail,
    AdapterDiff,
    AdapterEvent,
    AdapterEventKind,
    AdapterGroup,
    AdapterItem,
    AdapterProvenance,
    AdapterSource,
    AdapterUpdate,
    AdapterVersions,
    BaseModelBrief,
    Compatibility,
    DiffSide,
    MetricComparison,
    MetricDiff,
    Usage,
    VersionEntry,
    next_version,
    training_options,
)
from tunelab.domain.common import Page, as_naive_utc, utcnow
from tunelab.domain.config_display import present
from tunelab.domain.experiments import Experiment
from tunelab.domain.metrics import MetricGoal, default_goal, ranked
from tunelab.domain.models import BaseModelInfo
from tunelab.domain.runs import Run
from tunelab.errors import BadRequest, Conflict, NotFound, Unprocessable
from tunelab.musicgen.lora import AdapterError, AdapterFacts, base_tensors, misfits, read_adapter
from tunelab.musicgen.weights import ModelError
from tunelab.services.adapter_archive import TRAINING_CONFIG, ArchiveError, archive_name, unpack_archive, write_archive
from tunelab.services.experiments import new_id
from tunelab.services.models import ModelService
from tunelab.services.paths import confined
from tunelab.store import adapters as store
from tunelab.store import datasets as dataset_store
from tunelab.store.db import Connection, Database

log = logging.getLogger(__name__)
MAX_COMPARE = 10
SUGGESTIONS = 10
PAGE_SIZE = 50


def adapter_not_found(adapter_id: str) -> NotFound:
    return NotFound(f"Adapter {adapter_id!r} does not exist", code="adapter_not_found",
                    details={"adapter_id": adapter_id})  # fmt: skip


@dataclass(frozen=True)
class Validated:
    facts: AdapterFacts
    base_model: BaseModelInfo


class AdapterService:
    def __init__(self, db: Database, settings: Settings, models: ModelService):
        self.db = db
        self.settings = settings
        self.models = models
        self._tensors: dict[str, tuple[Any, dict[str, list[int]]]] = {}  # model id -> (files' stamp, shapes)
        self._lock = threading.Lock()
        self.activated: list[Callable[[str], None]] = []

    # --- registration -------------------------------------------------------------------------------------------

    def validate(self, folder: Path, base_model_id: str | None) -> Validated:
        """The adapter in `folder` checked against its base model (the one given, else the one its config names):
        422 `invalid_adapter` with the reason, or `base_model_required` when neither names a registered model."""
        try:
            facts = read_adapter(folder)
        except AdapterError as error:
            raise _invalid(folder, str(error)) from None
        base = self._base_model(base_model_id, facts, folder)
        reasons = misfits(facts, self._base_tensors(base))
        if reasons:
            raise _invalid(folder, f"it does not fit base model {base.display_name}: " + "; ".join(reasons))
        return Validated(facts, base)

    def register(self, data: AdapterCreate, source: AdapterSource = AdapterSource.REGISTERED,
                 metrics: dict[str, Any] | None = None) -> AdapterDetail:  # fmt: skip
        """Register an adapter folder already on disk (inside the data dir or an import root)."""
        folder = confined(data.path, self.settings, "Adapter folder")
        checked = self.validate(folder, data.base_model_id)
        now = utcnow()
        with self.db.transaction() as con:
            self._check_free(con, data.name, data.version)
            if data.training_dataset_id is not None and dataset_store.get(con, data.training_dataset_id) is None:
                raise Unprocessable(f"Dataset {data.training_dataset_id!r} does not exist", code="dataset_not_found",
                                    details={"dataset_id": data.training_dataset_id})  # fmt: skip
            adapter_id = new_id("adp")
            self._insert(con, {
                "id": adapter_id, "name": data.name, "version": data.version,
                "base_model_id": checked.base_model.id, "storage_path": str(folder), "active": False,
                "description": data.description, "training_config": data.training_config or {},
                "training_dataset_id": data.training_dataset_id, "experiment_id": None, "run_id": None,
                "metrics": metrics or {}, "lora": checked.facts.summary(), "source": source.value,
                "created_at": now, "updated_at": now,
            })  # fmt: skip
        log.info("registered adapter %s %s %s from %s", adapter_id, data.name, data.version, folder)
        return self.detail(adapter_id)

    def register_run(self, run: Run, experiment: Experiment, metrics: dict[str, Any]) -> Adapter:
        """The adapter a run wrote to {output_dir}/final, validated as any other, named `{experiment}-{run}` with the
        next version of the day (YYYY.MM.DD.N); registering the same run again gives the same record (a restart may
        finish a run twice). Raises ValueError or a TuneLabError when the run left no adapter that can be used."""
        assert run.output_dir is not None
        output = Path(run.output_dir)
        final = output / "final"
        try:
            training_config = json.loads((output / "training_config.json").read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"training_config.json cannot be read: {error}") from None
        with self.db.read() as con:
            existing = store.of_run(con, run.id)
        if existing is not None:
            return existing
        checked = self.validate(final, run.provenance.get("base_model_id"))
        name = f"{experiment.name}-{run.name}"[:NAME_MAX].strip()
        now = utcnow()
        day = now.strftime("%Y.%m.%d")
        with self.db.transaction() as con:
            existing = store.of_run(con, run.id)
            if existing is not None:
                return existing
            taken = {adapter.version for adapter in store.versions_of(con, name)}
            number = 1 + max((int(v.rsplit(".", 1)[1]) for v in taken
                              if v.startswith(day + ".") and v.rsplit(".", 1)[1].isdigit()), default=0)  # fmt: skip
            adapter_id = new_id("adp")
            self._insert(con, {
                "id": adapter_id, "name": name, "version": f"{day}.{number}",
                "base_model_id": checked.base_model.id, "storage_path": str(final), "active": False,
                "description": f"Trained by run {run.name} of experiment {experiment.name}",
                "training_config": training_config if isinstance(training_config, dict) else {},
                "training_dataset_id": experiment.dataset_id, "experiment_id": experiment.id, "run_id": run.id,
                "metrics": metrics, "lora": checked.facts.summary(), "source": AdapterSource.RUN.value,
                "created_at": now, "updated_at": now,
            })  # fmt: skip
            adapter = store.get(con, adapter_id)
        assert adapter is not None
        return adapter

    def _insert(self, con: Connection, row: dict[str, Any]) -> None:
        store.insert(con, row)
        store.insert_events(con, [_event(row["id"], row["name"], row["version"], AdapterEventKind.REGISTERED,
                                         row["created_at"], {"source": row["source"]})])  # fmt: skip

    def _check_free(self, con: Connection, name: str, version: str) -> None:
        if store.version_taken(con, name, version):
            suggested = next_version(version, {a.version for a in store.versions_of(con, name)})
            raise Conflict(f"Adapter {name!r} has a version {version!r} already; try {suggested!r}",
                           code="adapter_version_exists",
                           details={"name": name, "version": version, "suggested_version": suggested})  # fmt: skip

    def _base_model(self, base_model_id: str | None, facts: AdapterFacts, folder: Path) -> BaseModelInfo:
        models = self.models.list()
        if base_model_id is not None:
            for model in models:
                if model.id == base_model_id:
                    return model
            raise Unprocessable(f"Base model {base_model_id!r} is not registered", code="model_not_found",
                                details={"model_id": base_model_id})  # fmt: skip
        named = facts.base_model_name
        if named:
            for model in models:
                if named in (model.id, model.path) or _same_path(named, model.path, folder):
                    return model
        said = f"adapter_config.json names {named!r}, which is not a registered base model" if named else (
            "adapter_config.json names no base model")  # fmt: skip
        raise Unprocessable(f"Which base model was this adapter trained on? {said}; give base_model_id",
                            code="base_model_required", details={"path": str(folder), "named": named,
                                                                 "models": [m.id for m in models]})  # fmt: skip

    def _base_tensors(self, model: BaseModelInfo) -> dict[str, list[int]]:
        """The base model's tensor shapes, read from its safetensors headers once per change of its files."""
        folder = Path(model.path)
        try:
            stamp = tuple(
                (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.glob("*.safetensors"))
            )
        except OSError:
            stamp = ()
        with self._lock:
            cached = self._tensors.get(model.id)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        try:
            tensors = base_tensors(folder)
        except ModelError as error:
            raise Unprocessable(f"Base model {model.id} cannot be read: {error}", code="invalid_model",
                                details={"model_id": model.id, "reason": str(error)}) from None  # fmt: skip
        with self._lock:
            self._tensors[model.id] = (stamp, tensors)
        return tensors

    # --- reading ------------------------------------------------------------------------------------------------

    def get(self, adapter_id: str) -> Adapter:
        """The adapter record; 404 `adapter_not_found` when it is missing or deleted."""
        with self.db.read() as con:
            adapter = store.get(con, adapter_id)
        if adapter is None or adapter.deleted_at is not None:
            raise adapter_not_found(adapter_id)
        return adapter

    def detail(self, adapter_id: str) -> AdapterDetail:
        adapter = self.get(adapter_id)
        models = {model.id: model for model in self.models.list()}
        current = next((model for model in models.values() if model.current), None)
        verdict = self.compatibility(adapter, current)
        return AdapterDetail(
            **adapter.model_dump(), base_model=_brief(models.get(adapter.base_model_id or "")),
            compatible=verdict.compatible, compatibility=verdict, provenance=_provenance(adapter),
            usage=Usage(generations=adapter.usage_count, average_rating=None),
            configuration=present(adapter.training_config),
        )  # fmt: skip

    def compatibility(self, adapter: Adapter, current: BaseModelInfo | None) -> Compatibility:
        """Whether `adapter` can be used with the current model: trained on it, and its files still fit it."""
        if current is None:
            return Compatibility(compatible=False, reason="No base model is current; choose one in Settings.",
                                 current_model_id=None)  # fmt: skip
        if adapter.base_model_id != current.id:
            trained_on = self._model_name(adapter.base_model_id)
            return Compatibility(compatible=False, current_model_id=current.id,
                                 reason=f"Requires {trained_on}; the current model is {current.display_name}.")  # fmt: skip
        try:
            facts = read_adapter(Path(adapter.storage_path))
            reasons = misfits(facts, self._base_tensors(current))
        except AdapterError as error:
            reasons = [f"its files at {adapter.storage_path} are no longer a usable adapter: {error}"]
        except Unprocessable as error:
            reasons = [error.message]
        if reasons:
            return Compatibility(compatible=False, reason="Its LoRA does not fit the current model: " +
                                 "; ".join(reasons), current_model_id=current.id)  # fmt: skip
        return Compatibility(compatible=True, reason=None, current_model_id=current.id)

    def list_page(self, active: bool | None = None, base_model_id: str | None = None, q: str | None = None,
                  group_by_name: bool = False, page: int = 1, page_size: int = PAGE_SIZE) -> Page[Any]:  # fmt: skip
        """Adapters not deleted, newest first; grouped by name (a page of names, their versions oldest first)."""
        offset = (page - 1) * page_size
        with self.db.read() as con:
            if group_by_name:
                adapters, total = store.name_page(con, active, base_model_id, q, page_size, offset)
            else:
                adapters, total = store.page(con, active, base_model_id, q, page_size, offset)
        items = self._items(adapters)
        if not group_by_name:
            return Page[AdapterItem](items=items, total=total, page=page, page_size=page_size)
        groups: dict[str, list[AdapterItem]] = {}
        for item in items:
            groups.setdefault(item.name, []).append(item)
        ordered = sorted(groups.items(), key=lambda group: max(i.created_at for i in group[1]), reverse=True)
        return Page[AdapterGroup](items=[AdapterGroup(name=name, versions=versions) for name, versions in ordered],
                                  total=total, page=page, page_size=page_size)  # fmt: skip

    def _items(self, adapters: Iterable[Adapter]) -> list[AdapterItem]:
        models = {model.id: model for model in self.models.list()}
        current = next((model.id for model in models.values() if model.current), None)
        return [_item(adapter, models, current) for adapter in adapters]

    def versions(self, name: str) -> AdapterVersions:
        """The version timeline of `name`: each version's losses, provenance and the periods it was active, the
        name's history of events, and what a roll back would activate."""
        with self.db.read() as con:
            adapters = store.versions_of(con, name)
            events = store.events_named(con, name)
        if not adapters:
            raise NotFound(f"No adapter is named {name!r}", code="adapter_not_found", details={"name": name})
        periods: dict[str, list[ActivePeriod]] = {}
        for event in events:
            spans = periods.setdefault(event.adapter_id, [])
            if event.event is AdapterEventKind.ACTIVATED and (not spans or spans[-1].end is not None):
                spans.append(ActivePeriod(start=event.at, end=None))
            elif spans and spans[-1].end is None and _ends_activity(event, name):
                spans[-1] = ActivePeriod(start=spans[-1].start, end=event.at)
        entries = [VersionEntry(
            id=a.id, version=a.version, created_at=a.created_at, trained_at=_trained_at(a), active=a.active,
            status="active" if a.active else "inactive", final_loss=_number(a.metrics.get("final_loss")),
            best_eval_loss=_number(a.metrics.get("best_eval_loss")), experiment_id=a.experiment_id, run_id=a.run_id,
            training_dataset_id=a.training_dataset_id, base_model_id=a.base_model_id,
            active_periods=periods.get(a.id, []),
        ) for a in adapters]  # fmt: skip
        target = _roll_back_target(adapters, events)
        return AdapterVersions(name=name, versions=entries, history=list(reversed(events)),
                               roll_back_to=target.id if target else None)  # fmt: skip

    def compare(self, adapter_ids: list[str]) -> AdapterComparison:
        """Side by side: training metrics with the better adapter per metric, and the training configs."""
        adapters = self._several(list(dict.fromkeys(adapter_ids)))
        keys = [k for k in COMPARED_METRICS if any(k in a.metrics for a in adapters)]
        keys += sorted(
            {k for a in adapters for k in a.metrics if k not in keys and default_goal(k) is not MetricGoal.NONE}
        )
        metrics = {}
        for key in keys:
            values = {a.id: _number(a.metrics.get(key)) for a in adapters}
            goal = default_goal(key)
            best = ranked(values, goal)
            metrics[key] = MetricComparison(values=values, best_id=best[0] if len(best) == 1 else None, goal=goal)
        flat = {a.id: training_options(a.training_config) for a in adapters}
        config_keys = sorted({k for values in flat.values() for k in values})
        config = {k: {a.id: flat[a.id].get(k) for a in adapters} for k in config_keys}
        differing = [
            k for k, values in config.items() if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1
        ]
        return AdapterComparison(adapters=self._items(adapters), metrics=metrics, config=config, differing=differing)

    def diff(self, a_id: str, b_id: str) -> AdapterDiff:
        """What differs between two adapters (two versions of a name, usually): training config keys, dataset, base
        model and metrics (delta is b - a; `better` follows the metric's goal)."""
        a, b = self._several([a_id, b_id])
        flat_a, flat_b = training_options(a.training_config), training_options(b.training_config)
        keys = sorted(set(flat_a) | set(flat_b))
        changed = {k: DiffSide(a=flat_a.get(k), b=flat_b.get(k)) for k in keys if flat_a.get(k) != flat_b.get(k)}
        metrics = {}
        for key in [k for k in COMPARED_METRICS if k in a.metrics or k in b.metrics]:
            va, vb = _number(a.metrics.get(key)), _number(b.metrics.get(key))
            best = ranked({"a": va, "b": vb}, default_goal(key))
            better = best[0] if len(best) == 1 else None
            metrics[key] = MetricDiff(a=va, b=vb, delta=None if va is None or vb is None else vb - va,
                                      better="a" if better == "a" else "b" if better == "b" else None)  # fmt: skip
        item_a, item_b = self._items([a, b])
        return AdapterDiff(
            a=item_a, b=item_b, config=changed, same_config_keys=len(keys) - len(changed),
            dataset=DiffSide(a=a.training_dataset_id, b=b.training_dataset_id),
            base_model=DiffSide(a=a.base_model_id, b=b.base_model_id), metrics=metrics,
        )  # fmt: skip

    def _several(self, adapter_ids: list[str]) -> list[Adapter]:
        """The adapters of these ids (repeats as given), 422 `invalid_compare` for more than MAX_COMPARE different
        ones, 404 `adapter_not_found` naming those missing or deleted."""
        ids = list(dict.fromkeys(adapter_ids))
        if not 1 <= len(ids) <= MAX_COMPARE:
            raise Unprocessable(f"Give 1 to {MAX_COMPARE} different adapter ids", code="invalid_compare",
                                details={"ids": ids})  # fmt: skip
        with self.db.read() as con:
            found = store.many(con, ids)
        missing = [i for i in ids if i not in found or found[i].deleted_at is not None]
        if missing:
            raise NotFound(f"Unknown adapter ids: {', '.join(missing)}", code="adapter_not_found",
                           details={"missing": missing})  # fmt: skip
        return [found[i] for i in adapter_ids if i in found]

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def activate(self, adapter_id: str) -> AdapterDetail:
        """Make the adapter available for generation: it must be compatible with the current model (409
        `adapter_incompatible` with compatible suggestions). Other versions of its name become inactive: one
        version per name is active, so the history says which was active when."""
        adapter = self.get(adapter_id)
        current = self.models.current()
        verdict = self.compatibility(adapter, current)
        if not verdict.compatible:
            suggestions = self.compatible_adapters(current)
            raise Conflict(f"Adapter {adapter.name} {adapter.version} cannot be activated: {verdict.reason}",
                           code="adapter_incompatible",
                           details={"adapter_id": adapter_id, "reason": verdict.reason,
                                    "current_model_id": verdict.current_model_id,
                                    "compatible_adapters": suggestions})  # fmt: skip
        self._set_active(adapter_id, True)
        for listener in self.activated:  # the generation worker pre-loads it
            listener(adapter_id)
        return self.detail(adapter_id)

    def deactivate(self, adapter_id: str) -> AdapterDetail:
        """No new generation request may use it; jobs that already did finish."""
        self.get(adapter_id)
        self._set_active(adapter_id, False)
        return self.detail(adapter_id)

    def _set_active(self, adapter_id: str, active: bool, detail: dict[str, Any] | None = None) -> None:
        now = utcnow()
        with self.db.transaction() as con:
            adapter = store.get(con, adapter_id)
            if adapter is None or adapter.deleted_at is not None:
                raise adapter_not_found(adapter_id)
            if adapter.active == active:
                return
            events = []
            if active:
                for other in store.active_ids_named(con, adapter.name):
                    replaced = store.get(con, other)
                    assert replaced is not None
                    store.update(con, other, {"active": False, "updated_at": now})
                    events.append(_event(other, replaced.name, replaced.version, AdapterEventKind.DEACTIVATED, now,
                                         {"replaced_by": adapter_id, "replaced_by_version": adapter.version}))  # fmt: skip
            store.update(con, adapter_id, {"active": active, "updated_at": now})
            kind = AdapterEventKind.ACTIVATED if active else AdapterEventKind.DEACTIVATED
            events.append(_event(adapter_id, adapter.name, adapter.version, kind, now, detail or {}))
            store.insert_events(con, events)

    def roll_back(self, name: str) -> AdapterDetail:
        """Activate again the version of `name` that was active before the one active now (409
        `nothing_to_roll_back` when no other version of the name was ever active)."""
        with self.db.read() as con:
            adapters = store.versions_of(con, name)
            events = store.events_named(con, name)
        if not adapters:
            raise NotFound(f"No adapter is named {name!r}", code="adapter_not_found", details={"name": name})
        target = _roll_back_target(adapters, events)
        if target is None:
            raise Conflict(f"No earlier active version of {name!r} to roll back to", code="nothing_to_roll_back",
                           details={"name": name})  # fmt: skip
        return self.activate(target.id)

    def usable(self, adapter_id: str, require_active: bool = True) -> Adapter:
        """The adapter a generation request names, checked as the generation worker loads it: 404 when it never
        existed; 400 `adapter_deleted`, `adapter_inactive`, or `adapter_incompatible` (with compatible suggestions)
        when its files do not fit the current model (checked again here: files and the current model change)."""
        with self.db.read() as con:
            adapter = store.get(con, adapter_id)
        if adapter is None:
            raise adapter_not_found(adapter_id)
        facts = {"adapter_id": adapter_id, "name": adapter.name, "version": adapter.version}
        if adapter.deleted_at is not None:
            raise BadRequest(f"Adapter {adapter.name} {adapter.version} has been deleted", code="adapter_deleted",
                             details=facts)  # fmt: skip
        if require_active and not adapter.active:
            raise BadRequest(f"Adapter {adapter.name} {adapter.version} is not active; activate it first",
                             code="adapter_inactive", details=facts)  # fmt: skip
        current = self.models.current()
        verdict = self.compatibility(adapter, current)
        if not verdict.compatible:
            raise BadRequest(f"Adapter {adapter.name} {adapter.version} cannot be used: {verdict.reason}",
                             code="adapter_incompatible", details={**facts, "reason": verdict.reason,
                                                                   "compatible_adapters": self.compatible_adapters(current)})  # fmt: skip
        return adapter

    def compatible_adapters(self, current: BaseModelInfo | None) -> list[dict[str, Any]]:
        """A few adapters that the current model can use (id, name, version, active), active ones first."""
        if current is None:
            return []
        with self.db.read() as con:
            adapters = store.with_base_model(con, current.id, SUGGESTIONS)
        return [{"id": a.id, "name": a.name, "version": a.version, "active": a.active} for a in adapters]

    def update(self, adapter_id: str, data: AdapterUpdate) -> AdapterDetail:
        """Rename (1–100 characters once stripped; the (name, version) must be free) or describe an adapter.
        An active adapter renamed into a name with an active version of its own becomes inactive."""
        now = utcnow()
        with self.db.transaction() as con:
            adapter = store.get(con, adapter_id)
            if adapter is None or adapter.deleted_at is not None:
                raise adapter_not_found(adapter_id)
            fields: dict[str, Any] = {"updated_at": now}
            if data.description is not None:
                fields["description"] = data.description
            events = []
            if data.name is not None and data.name != adapter.name:
                self._check_free(con, data.name, adapter.version)
                fields["name"] = data.name
                moved = {"from": adapter.name, "to": data.name}
                events += [_event(adapter_id, old_or_new, adapter.version, AdapterEventKind.RENAMED, now, moved)
                           for old_or_new in (adapter.name, data.name)]  # fmt: skip
                if adapter.active and store.active_ids_named(con, data.name):
                    fields["active"] = False
                    events.append(_event(adapter_id, data.name, adapter.version, AdapterEventKind.DEACTIVATED, now,
                                         {"reason": f"{data.name} has an active version already"}))  # fmt: skip
            store.update(con, adapter_id, fields)
            store.insert_events(con, events)
        return self.detail(adapter_id)

    def delete(self, adapter_id: str) -> Adapter:
        """Soft delete: `deleted_at` is set, the adapter leaves listings and can't be activated; its files stay."""
        now = utcnow()
        with self.db.transaction() as con:
            adapter = store.get(con, adapter_id)
            if adapter is None or adapter.deleted_at is not None:
                raise adapter_not_found(adapter_id)
            store.update(con, adapter_id, {"deleted_at": now, "active": False, "updated_at": now})
            store.insert_events(con, [_event(adapter_id, adapter.name, adapter.version, AdapterEventKind.DELETED, now,
                                             {"was_active": adapter.active})])  # fmt: skip
            deleted = store.get(con, adapter_id)
        assert deleted is not None
        return deleted

    # --- export and import --------------------------------------------------------------------------------------

    def export(self, adapter_id: str) -> tuple[Path, str]:
        """The adapter as a zip (PEFT folder, model card, training config, registry record) under
        exports/adapters/, and the file name to download it as."""
        adapter = self.get(adapter_id)
        if not (Path(adapter.storage_path) / "adapter_model.safetensors").is_file():
            raise Conflict(f"The files of adapter {adapter.name} {adapter.version} are gone from "
                           f"{adapter.storage_path}", code="adapter_files_missing",
                           details={"adapter_id": adapter_id, "path": adapter.storage_path})  # fmt: skip
        model = next((m for m in self.models.list() if m.id == adapter.base_model_id), None)
        name = archive_name(adapter)
        target = self.settings.data_dir / "exports" / "adapters" / adapter.id / f"{name}.zip"
        return write_archive(adapter, model, target), f"{name}.zip"

    def import_archive(self, source: IO[bytes], name: str | None = None, version: str | None = None,
                       base_model_id: str | None = None) -> AdapterDetail:  # fmt: skip
        """Register an exported adapter zip: unpacked under adapters/imported/, named as its tunelab.json says unless
        `name`/`version` are given, validated as any registration. Nothing is kept when it fails."""
        folder = self.settings.data_dir / "adapters" / "imported" / new_id("imp")
        try:
            found = unpack_archive(source, folder)
        except ArchiveError as error:
            raise Unprocessable(f"Not an exported adapter: {error}", code="invalid_archive",
                                details={"reason": str(error)}) from None  # fmt: skip
        try:
            base: dict[str, Any] = found["base_model"] if isinstance(found.get("base_model"), dict) else {}
            fields: dict[str, Any] = {
                "name": name or found.get("name"), "version": version or found.get("version"),
                "path": str(folder), "description": found.get("description"),
                "base_model_id": base_model_id or self._known_model(base.get("id")),
                "training_config": _object_file(folder / TRAINING_CONFIG),
            }  # fmt: skip
            if not fields["name"] or not fields["version"]:
                raise Unprocessable("The archive has no tunelab.json naming the adapter; give a name and a version",
                                    code="name_required", details={})  # fmt: skip
            try:
                data = AdapterCreate(**{k: v for k, v in fields.items() if v is not None and v != {}})
            except ValidationError as error:
                problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
                raise Unprocessable(f"The archive's record is not valid: {problem}", code="invalid_archive",
                                    details={"reason": problem}) from None  # fmt: skip
            metrics: dict[str, Any] = found["metrics"] if isinstance(found.get("metrics"), dict) else {}
            return self.register(data, AdapterSource.IMPORTED, {k: v for k, v in metrics.items()
                                                                if _number(v) is not None})  # fmt: skip
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _known_model(self, model_id: Any) -> str | None:
        """`model_id` if a base model of that id is registered (else the adapter config decides)."""
        if isinstance(model_id, str) and any(model.id == model_id for model in self.models.list()):
            return model_id
        return None

    def _model_name(self, model_id: str | None) -> str:
        if model_id is None:
            return "an unknown base model"
        try:
            return self.models.get(model_id).display_name
        except NotFound:
            return model_id


def _object_file(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return found if isinstance(found, dict) else None


def _invalid(folder: Path, reason: str) -> Unprocessable:
    return Unprocessable(f"{folder} is not an adapter TuneLab can use: {reason}", code="invalid_adapter",
                         details={"path": str(folder), "reason": reason})  # fmt: skip


def _same_path(named: str, model_path: str, adapter_folder: Path) -> bool:
    """Whether a base_model_name_or_path (absolute, or relative to where training ran) is the model's folder."""
    try:
        candidate = Path(named).expanduser()
        if candidate.is_absolute():
            return candidate.resolve() == Path(model_path).resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return False


def _event(adapter_id: str, name: str, version: str, kind: AdapterEventKind, at: datetime,
           detail: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {"id": new_id("aev"), "adapter_id": adapter_id, "name": name, "version": version, "event": kind.value,
            "at": at, "detail": detail}  # fmt: skip


def _ends_activity(event: AdapterEvent, name: str) -> bool:
    """Whether `event` ends a period in which its adapter was the active version of `name`."""
    if event.event is AdapterEventKind.RENAMED:
        return event.detail.get("from") == name  # it left the name
    return event.event in (AdapterEventKind.DEACTIVATED, AdapterEventKind.DELETED)


def _roll_back_target(adapters: list[Adapter], events: list[AdapterEvent]) -> Adapter | None:
    """The version of a name activated most recently other than the one active now (and not deleted since)."""
    by_id = {adapter.id: adapter for adapter in adapters}
    active = next((adapter.id for adapter in adapters if adapter.active), None)
    for event in reversed(events):
        if event.event is AdapterEventKind.ACTIVATED and event.adapter_id != active and event.adapter_id in by_id:
            return by_id[event.adapter_id]
    return None


def _brief(model: BaseModelInfo | None) -> BaseModelBrief | None:
    if model is None:
        return None
    return BaseModelBrief(id=model.id, display_name=model.display_name, max_duration_s=model.max_duration_s,
                          sample_rate=model.sample_rate)  # fmt: skip


def _item(adapter: Adapter, models: dict[str, BaseModelInfo], current: str | None) -> AdapterItem:
    return AdapterItem(
        id=adapter.id, name=adapter.name, version=adapter.version, active=adapter.active,
        description=adapter.description, base_model_id=adapter.base_model_id,
        base_model=_brief(models.get(adapter.base_model_id or "")),
        compatible=current is not None and adapter.base_model_id == current, source=adapter.source,
        experiment_id=adapter.experiment_id, run_id=adapter.run_id, metrics=adapter.metrics,
        created_at=adapter.created_at, updated_at=adapter.updated_at,
    )  # fmt: skip


def _provenance(adapter: Adapter) -> AdapterProvenance:
    if adapter.source is AdapterSource.RUN:
        note = "Trained here: linked to its experiment, run, dataset and training config."
    else:
        how = "Imported from an exported archive" if adapter.source is AdapterSource.IMPORTED else "Registered by hand"
        note = f"{how}; trained outside TuneLab, so it has no experiment or run here" + (
            ", and its dataset was named at registration." if adapter.training_dataset_id else " and no dataset."
        )
    return AdapterProvenance(source=adapter.source, experiment_id=adapter.experiment_id, run_id=adapter.run_id,
                             training_dataset_id=adapter.training_dataset_id, note=note)  # fmt: skip


def _trained_at(adapter: Adapter) -> datetime | None:
    if adapter.source is AdapterSource.RUN:
        return adapter.created_at
    stamp = adapter.training_config.get("created_at")
    if isinstance(stamp, str):
        try:
            return as_naive_utc(datetime.fromisoformat(stamp))
        except ValueError:
            return None
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
