"""What a training run can be told: the training command's options, their defaults and what they do."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from tunelab.api.openapi import COMMON, errors
from tunelab.api.routing import StrictJSONRoute
from tunelab.training.args import Hyperparameters, field_docs

router = APIRouter(prefix="/api/training", tags=["runs"], route_class=StrictJSONRoute)


class TrainingOption(BaseModel):
    name: str
    default: Any
    kind: str  # integer, number or list
    help: str


@router.get("/options", responses=errors(*COMMON))
async def training_options() -> list[TrainingOption]:
    """Every option a run's `config` may set (the training command's, in snake_case), with its default."""
    defaults = Hyperparameters()
    docs = field_docs()
    options = []
    for field in dataclasses.fields(Hyperparameters):
        value = getattr(defaults, field.name)
        kind = "list" if isinstance(value, tuple) else "integer" if isinstance(value, int) else "number"
        options.append(TrainingOption(name=field.name, default=list(value) if isinstance(value, tuple) else value,
                                      kind=kind, help=docs.get(field.name, "")))  # fmt: skip
    return options
