"""Generation jobs (a prompt made into a clip by the worker, with the base model or one adapter) and their ratings."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from tunelab.domain.common import (
    JSONFloat,
    JSONInteger,
    Model,
    ResourceId,
    UTCDateTime,
    ValidUnicode,
    not_nullable,
    trimmed_text,
)
from tunelab.domain.runs import AdapterRef

PROMPT_MAX = 1000
MAX_SEED = 2**31 - 1
MAX_GUIDANCE = 20.0
Prompt = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=PROMPT_MAX), ValidUnicode,
    trimmed_text(PROMPT_MAX),
]  # fmt: skip
Rating = Annotated[int, Field(ge=1, le=5), JSONInteger]  # JSON integers only: not "5", not true
Seed = Annotated[int, Field(ge=0, le=MAX_SEED), JSONInteger]


class GenerationStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class GenerationCreate(Model):
    prompt: Prompt = Field(description="What the clip should sound like.")
    duration_s: JSONFloat = Field(gt=0, le=600, description="Seconds of audio; at most the current model's limit.")
    adapter_id: ResourceId | None = Field(default=None, description="An active adapter; none for the base model.")
    seed: Seed | None = Field(default=None, json_schema_extra=not_nullable,
                              description="The same seed, prompt, length and adapter give the same clip; "
                              "a random one is drawn (and kept) when none is given.")  # fmt: skip
    guidance_scale: JSONFloat | None = Field(default=None, ge=1, le=MAX_GUIDANCE, json_schema_extra=not_nullable,
                                             description="Classifier-free guidance (MusicGen uses 3); 1 is off.")  # fmt: skip


class RatingCreate(Model):
    rating: Rating = Field(description="1 (worst) to 5 (best); a new rating replaces the old.")


class Generation(BaseModel):
    id: str
    status: GenerationStatus
    prompt: str
    duration_s: float
    seed: int
    guidance_scale: float | None
    model_id: str
    adapter: AdapterRef | None = Field(description="The adapter it was made with; null for the base model.")
    adapter_deleted: bool = Field(description="Its adapter has been deleted since (the UI shows Deleted Adapter).")
    abtest_id: str | None
    error: str | None
    audio_url: str | None = Field(description="The clip as WAV, once completed.")
    audio_id: str | None = Field(description="The stored audio file (datasets made from ratings refer to it).")
    rating: int | None
    rated_at: UTCDateTime | None
    timings: dict[str, Any] = Field(description="queued_s, load_s, generate_s, total_s, batch_size, once completed.")
    created_at: UTCDateTime
    started_at: UTCDateTime | None
    completed_at: UTCDateTime | None


class WorkerStatus(BaseModel):
    state: str = Field(description="stopped, starting, ready or failed")
    model_id: str | None
    pid: int | None
    device: str | None
    error: str | None
    queued: int
    held: int = Field(description="Jobs sent to the worker and not yet finished.")
    restarts: int
    cache: dict[str, Any] = Field(description="Adapters loaded (most recently used first), bytes used and budget.")


class RatingSummary(BaseModel):
    count: int
    average: float | None
    ci: list[float] | None = Field(description="95% t interval of the average; null below two ratings.")
    distribution: dict[str, int]


class Performance(BaseModel):
    adapter_id: str
    total_generations: int
    completed_generations: int
    ratings: RatingSummary
    base_model: RatingSummary | None = Field(
        description="Ratings of base-model generations of the same prompts; null when there are none."
    )
    prompts_compared: int
    difference: dict[str, Any] | None = Field(
        description="Mann–Whitney U test between the adapter's and the base model's ratings on those prompts."
    )
