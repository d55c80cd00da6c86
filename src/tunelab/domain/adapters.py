"""Adapter records: a LoRA adapter on disk with its provenance (made by runs now; the registry grows from here)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tunelab.domain.common import JSONDict, UTCDateTime


class Adapter(BaseModel):
    id: str
    name: str
    version: str = Field(description="YYYY.MM.DD.N for adapters trained here: unique per name.")
    base_model_id: str | None
    storage_path: str = Field(description="The PEFT adapter folder (a run's final/).")
    active: bool
    deleted_at: UTCDateTime | None
    description: str | None
    training_config: JSONDict
    training_dataset_id: str | None
    experiment_id: str | None
    run_id: str | None
    metrics: JSONDict = Field(description="The run's final metrics (final_loss, best_eval_loss, …).")
    usage_count: int
    created_at: UTCDateTime
    updated_at: UTCDateTime
