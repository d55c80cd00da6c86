"""Shapes shared by every resource."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer

T = TypeVar("T")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def utcnow() -> datetime:
    """Naive UTC, the form DuckDB TIMESTAMP columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_naive_utc(value: datetime) -> datetime:
    """What the store compares against: aware times converted to UTC, naive ones taken as UTC."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _iso_utc(value: datetime) -> str:
    return as_naive_utc(value).isoformat() + "Z"


# Every timestamp leaves TuneLab as ISO 8601 with an explicit Z: browsers read naive strings as local time.
UTCDateTime = Annotated[datetime, PlainSerializer(_iso_utc, return_type=str, when_used="json")]


def _check_id(value: str) -> str:
    if not ID_PATTERN.match(value):
        raise ValueError("ids are 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
    return value


ResourceId = Annotated[str, AfterValidator(_check_id)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


JSONDict = dict[str, Any]
