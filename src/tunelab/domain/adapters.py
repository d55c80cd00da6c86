"""The adapter registry's entities and rules: LoRA adapters on disk with their provenance, versions, activation
history, compatibility with the current base model, and how two adapters compare. No I/O here."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from tunelab.domain.common import (
    JSONDict,
    JSONObject,
    Model,
    ResourceId,
    UTCDateTime,
    ValidUnicode,
    not_nullable,
    trimmed_text,
)
from tunelab.domain.metrics import MetricGoal

NAME_MAX = 100
AdapterName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX), ValidUnicode,
    trimmed_text(NAME_MAX),
]  # fmt: skip
VERSION_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
AdapterVersion = Annotated[str, StringConstraints(pattern=VERSION_REGEX)]
Description = Annotated[str, StringConstraints(max_length=2000), ValidUnicode]
AdapterPath = Annotated[str, StringConstraints(min_length=1, max_length=4096), ValidUnicode]
MAX_ARCHIVE_BYTES = 1024**3  # an adapter zip to import; an r=64 LoRA on every projection of musicgen-large is ~0.3 GB
RESERVED_ADAPTER_IDS = ("import", "rollback", "compare", "diff", "versions")  # /api/adapters/… routes of their own
# The training metrics the registry compares, in this order, each with its goal.
COMPARED_METRICS = ("final_loss", "best_eval_loss", "reward_accuracy", "reward_margin")


class AdapterSource(StrEnum):
    RUN = "run"  # trained by a run here: linked to its experiment, run and dataset
    REGISTERED = "registered"  # a folder on disk registered by hand
    IMPORTED = "imported"  # an exported adapter (zip) imported back


class AdapterEventKind(StrEnum):
    REGISTERED = "registered"
    ACTIVATED = "activated"
    DEACTIVATED = "deactivated"
    RENAMED = "renamed"
    DELETED = "deleted"


class AdapterCreate(Model):
    name: AdapterName
    version: AdapterVersion = Field(description="Unique per name among adapters not deleted, e.g. 1.2 or 2026.11.22.1.")
    path: AdapterPath = Field(description="The PEFT adapter folder, inside the data dir or an import root.")
    base_model_id: ResourceId | None = Field(default=None, json_schema_extra=not_nullable,
                                             description="Default: the model adapter_config.json names.")  # fmt: skip
    description: Description | None = Field(default=None, json_schema_extra=not_nullable)
    training_config: JSONObject | None = Field(default=None, json_schema_extra=not_nullable)
    training_dataset_id: ResourceId | None = Field(default=None, json_schema_extra=not_nullable)

    @field_validator("base_model_id", "description", "training_config", "training_dataset_id")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return _sent(value)


class AdapterUpdate(Model):
    name: AdapterName | None = Field(default=None, json_schema_extra=not_nullable)
    description: Description | None = Field(default=None, json_schema_extra=not_nullable)

    @field_validator("name", "description")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return _sent(value)


class RollBack(Model):
    name: AdapterName = Field(description="The adapter name whose previously active version is activated again.")


class Adapter(BaseModel):
    """An adapter record as stored."""

    id: str
    name: str
    version: str = Field(description="Unique per name among adapters not deleted (YYYY.MM.DD.N for runs' adapters).")
    base_model_id: str | None
    storage_path: str = Field(description="The PEFT adapter folder (a run's final/).")
    active: bool
    deleted_at: UTCDateTime | None
    description: str | None
    training_config: JSONDict
    training_dataset_id: str | None
    experiment_id: str | None
    run_id: str | None
    metrics: JSONDict = Field(description="The training's final metrics (final_loss, best_eval_loss, …).")
    lora: JSONDict = Field(description="r, lora_alpha, target_modules, modules, parameters, size_bytes.")
    source: AdapterSource
    usage_count: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class BaseModelBrief(BaseModel):
    id: str
    display_name: str
    max_duration_s: float
    sample_rate: int


class AdapterItem(BaseModel):
    """An adapter in a listing."""

    id: str
    name: str
    version: str
    active: bool
    description: str | None
    base_model_id: str | None
    base_model: BaseModelBrief | None
    compatible: bool = Field(description="Whether it was trained on the current model.")
    source: AdapterSource
    experiment_id: str | None
    run_id: str | None
    metrics: JSONDict
    created_at: UTCDateTime
    updated_at: UTCDateTime


class AdapterGroup(BaseModel):
    name: str
    versions: list[AdapterItem] = Field(description="Oldest first.")


class Compatibility(BaseModel):
    compatible: bool
    reason: str | None = Field(description="Why not, when it is not compatible.")
    current_model_id: str | None


class AdapterProvenance(BaseModel):
    source: AdapterSource
    experiment_id: str | None
    run_id: str | None
    training_dataset_id: str | None
    note: str = Field(description="Where the adapter came from, in words.")


class Usage(BaseModel):
    generations: int
    average_rating: float | None


class ConfigEntry(BaseModel):
    key: str
    label: str
    value: Any
    display: str = Field(description="The value as shown: 1e-4, Yes/No, a comma-separated list, Not set.")
    help: str


class ConfigGroup(BaseModel):
    name: str
    entries: list[ConfigEntry]


class AdapterDetail(Adapter):
    base_model: BaseModelBrief | None
    compatible: bool
    compatibility: Compatibility
    provenance: AdapterProvenance
    usage: Usage
    configuration: list[ConfigGroup] | None = Field(
        description="The training config grouped for display (Model, LoRA, Training, Hardware, Checkpointing and, "
        "for preference training, DPO); null when the adapter has none."
    )


class ActivePeriod(BaseModel):
    start: UTCDateTime
    end: UTCDateTime | None = Field(description="null while it is still active.")


class AdapterEvent(BaseModel):
    at: UTCDateTime
    event: AdapterEventKind
    adapter_id: str
    version: str
    detail: JSONDict


class VersionEntry(BaseModel):
    id: str
    version: str
    created_at: UTCDateTime
    trained_at: UTCDateTime | None = Field(description="When its training run ended (runs' adapters).")
    active: bool
    status: Literal["active", "inactive"]
    final_loss: float | None
    best_eval_loss: float | None
    experiment_id: str | None
    run_id: str | None
    training_dataset_id: str | None
    base_model_id: str | None
    active_periods: list[ActivePeriod]


class AdapterVersions(BaseModel):
    name: str
    versions: list[VersionEntry] = Field(description="Oldest first.")
    history: list[AdapterEvent] = Field(description="Registrations, activations and deactivations, newest first.")
    roll_back_to: str | None = Field(description="The version a roll back would activate (its id), if any.")


class MetricComparison(BaseModel):
    values: dict[str, float | None]
    best_id: str | None = Field(description="The adapter with the better value (null on a tie or goal none).")
    goal: MetricGoal
    significant: bool | None = Field(default=None, description="Filled in once ratings and A/B tests exist.")
    p_value: float | None = None


class AdapterComparison(BaseModel):
    adapters: list[AdapterItem]
    metrics: dict[str, MetricComparison]
    config: dict[str, dict[str, Any]] = Field(description="Training config key (dotted) -> adapter id -> value.")
    differing: list[str] = Field(description="The config keys whose values differ between the adapters.")
    feedback: dict[str, Any] | None = Field(
        default=None,
        description=(
            "What listeners said: `ratings` (adapter id -> count, average, ci, distribution), `rating_test` (Mann–Whitney "
            "U between the first two adapters' ratings), `ab` (A/B results of every test between the first two, the "
            "first as A), and `significant` (which of average_rating and ab_win_rate differ significantly)."
        ),
    )


class DiffSide(BaseModel):
    a: Any
    b: Any


class MetricDiff(BaseModel):
    a: float | None
    b: float | None
    delta: float | None = Field(description="b - a")
    better: Literal["a", "b"] | None


class AdapterDiff(BaseModel):
    a: AdapterItem
    b: AdapterItem
    config: dict[str, DiffSide] = Field(description="Only the training config keys (dotted) that differ.")
    same_config_keys: int
    dataset: DiffSide
    base_model: DiffSide
    metrics: dict[str, MetricDiff]


def next_version(version: str, taken: set[str]) -> str:
    """The next free version in `version`'s scheme: its last number counts up (1.2 -> 1.3, 2026.11.22.1 ->
    2026.11.22.2, v3 -> v4); a version without a number gets `.2`."""
    match = re.search(r"(\d+)(\D*)$", version)
    if match is None:
        head, number, tail = version + ".", 1, ""
    else:
        head, number, tail = version[: match.start(1)], int(match.group(1)), match.group(2)
    while True:
        number += 1
        candidate = f"{head}{number}{tail}"
        if candidate not in taken:
            return candidate


# Keys of a run's training_config.json that record where and when rather than how it trained: two runs always
# differ on them, so comparisons leave them out (the dataset and base model are compared as such).
BOOKKEEPING = ("created_at", "dataset.", "library_versions.", "base_model.id")


def training_options(config: dict[str, Any]) -> dict[str, Any]:
    """The training config flattened to dotted keys, bookkeeping left out: what comparisons set side by side."""
    return {k: v for k, v in flatten(config).items() if not k.startswith(BOOKKEEPING)}


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested training config -> dotted keys (hyperparameters.learning_rate); lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten(value, name + ".")
        else:
            flat[name] = value
    return flat


def _sent(value: Any) -> Any:
    if value is None:
        raise ValueError("may be left out but not null")
    return value
