"""Base models (MusicGen checkpoints TuneLab trains and generates with) and the studio's settings."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, field_validator

from tunelab.domain.common import Model, ResourceId, UTCDateTime, ValidUnicode, not_nullable

ModelPath = Annotated[str, StringConstraints(min_length=1, max_length=4096), ValidUnicode]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), ValidUnicode]
TINY_MODEL_ID = "tiny-musicgen"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # a Hugging Face hub id: org/name


class BaseModelCreate(Model):
    path: ModelPath = Field(description="A local MusicGen folder in Hugging Face format (inside the data dir or an "
                            "import root), or a hub id such as facebook/musicgen-small where a network allows.")  # fmt: skip
    id: ResourceId | None = Field(default=None, json_schema_extra=not_nullable)
    display_name: DisplayName | None = Field(default=None, json_schema_extra=not_nullable)
    max_duration_s: float | None = Field(default=None, gt=0, le=600, json_schema_extra=not_nullable)

    @field_validator("id", "display_name", "max_duration_s")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return _sent(value)


class BaseModelInfo(BaseModel):
    id: str
    display_name: str
    path: str
    sample_rate: int
    frame_rate: int
    num_codebooks: int
    max_duration_s: float
    fingerprint: str = Field(description="sha256 of the decoder's settings and tensor shapes: what adapters must fit.")
    artifact_id: str = Field(description="The base_model artifact that runs name as their input.")
    current: bool
    created_at: UTCDateTime


class StudioSettings(BaseModel):
    current_model_id: str | None = Field(description="The base model that generation uses and runs train on.")


class SettingsUpdate(Model):
    current_model_id: ResourceId | None = Field(default=None, json_schema_extra=not_nullable)

    @field_validator("current_model_id")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return _sent(value)


def _sent(value: Any) -> Any:
    # Validators run only on fields that were sent: such a field may be left out, but not sent as null.
    if value is None:
        raise ValueError("may be left out but not null")
    return value
