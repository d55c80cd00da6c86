"""Artifacts: immutable files or records that experiments and runs consume and produce."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from tunelab.domain.common import BigInt, JSONDict, JSONObject, Model, ResourceId, UTCDateTime, ValidUnicode


class ArtifactCreate(Model):
    id: ResourceId | None = None
    type: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")
    uri: Annotated[str, StringConstraints(min_length=1, max_length=4096), ValidUnicode]
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    size: BigInt | None = Field(default=None, description="Bytes.")
    metadata: JSONObject = Field(default_factory=dict)


class Artifact(BaseModel):
    id: str
    type: str
    uri: str
    sha256: str | None
    size: int | None
    metadata: JSONDict
    created_at: UTCDateTime
