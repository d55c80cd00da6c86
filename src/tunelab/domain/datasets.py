"""Datasets of rated clips (supervised) or preference pairs, and the audio they hold."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from tunelab.domain.common import Model, UTCDateTime, ValidUnicode

MAX_AUDIO_BYTES = 50 * 1024 * 1024  # one uploaded file
MAX_CLIP_SECONDS = 120.0  # training crops clips to --max-audio-seconds; a dataset keeps the whole clip
AUDIO_FORMATS = {"WAV": ("wav", "audio/wav"), "FLAC": ("flac", "audio/flac"), "OGG": ("ogg", "audio/ogg")}
PROMPT_MAX = 2000
RESERVED_DATASET_IDS = ("demo", "from-ratings")  # /api/datasets/demo, … are routes of their own

DatasetName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), ValidUnicode]
Prompt = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=PROMPT_MAX), ValidUnicode]


class DatasetType(StrEnum):
    SUPERVISED = "supervised"
    PREFERENCE = "preference"


class DatasetCreate(Model):
    name: DatasetName
    type: DatasetType
    description: Annotated[str, StringConstraints(max_length=10_000), ValidUnicode] | None = None


class Dataset(BaseModel):
    id: str
    name: str
    type: DatasetType
    description: str | None
    item_count: int
    total_duration_s: float = Field(description="Seconds of audio over every item (both sides of a pair).")
    created_at: UTCDateTime
    updated_at: UTCDateTime


class DatasetItem(BaseModel):
    id: str
    dataset_id: str
    prompt: str
    rating: int | None = Field(description="1-5, supervised items only.")
    audio_id: str | None = Field(description="The clip of a supervised item.")
    chosen_audio_id: str | None
    rejected_audio_id: str | None
    duration_s: float
    source: str = Field(description="Where it came from: upload, import, demo (later: generation, abtest).")
    created_at: UTCDateTime


class DatasetDetail(Dataset):
    items: list[DatasetItem]


class Audio(BaseModel):
    id: str
    sha256: str
    size: int
    duration_s: float
    sample_rate: int
    channels: int
    format: str
    original_name: str | None
    created_at: UTCDateTime
