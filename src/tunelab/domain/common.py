"""Shapes shared by every resource, and the bounds every value the API takes must keep."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

T = TypeVar("T")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
ID_REGEX = ID_PATTERN.pattern

# Free-form JSON (configs, inputs, metadata): deep enough for any real config, far below pydantic-core's
# serialisation recursion limit (~255), so whatever is accepted can always be answered.
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 256 * 1024
MAX_INT = 2**63 - 1  # BIGINT, the widest integer column
MAX_PAGE = 1_000_000
# Dates the API takes, as written (whatever the offset): a day inside Python's datetime range, so that converting
# to UTC never overflows. Stated as written, the schema can say it too (TIME_PATTERN), and every RFC 3339 time that
# matches it is taken.
MIN_DATE = date(1, 1, 2)
MAX_DATE = date(9999, 12, 30)
TIME_PATTERN = "^(?!0001-01-01|9999-12-31)"


def utcnow() -> datetime:
    """Naive UTC, the form DuckDB TIMESTAMP columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_naive_utc(value: datetime) -> datetime:
    """What the store compares against: aware times converted to UTC, naive ones taken as UTC."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _iso_utc(value: datetime) -> str:
    return as_naive_utc(value).isoformat() + "Z"


def _bounded_time(value: datetime) -> datetime:
    if not MIN_DATE <= value.date() <= MAX_DATE:
        raise PydanticCustomError(
            "datetime_out_of_range",
            "times must lie between {min} and {max}",
            {"min": MIN_DATE.isoformat(), "max": MAX_DATE.isoformat() + "T23:59:59"},
        )
    return value


def _not_a_number(value: Any) -> Any:
    # pydantic reads a number, or text that looks like one ("0.5", "1700000000"), as Unix time; the schema says
    # ISO 8601 text, and a number sent by mistake would land in 1970.
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        raise PydanticCustomError("datetime_type", "times are ISO 8601 text, e.g. 2024-05-01T12:00:00Z")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_TIME_SCHEMA = {
    "type": "string",
    "format": "date-time",
    "pattern": TIME_PATTERN,
    "description": f"ISO 8601; dated {MIN_DATE} to {MAX_DATE} (as written).",
}
# Every timestamp leaves TuneLab as ISO 8601 with an explicit Z: browsers read naive strings as local time.
UTCDateTime = Annotated[datetime, PlainSerializer(_iso_utc, return_type=str, when_used="json")]
# A time the API takes: UTCDateTime within bounds (out-of-range times are 422, never an overflow inside).
InputDateTime = Annotated[
    datetime,
    BeforeValidator(_not_a_number),
    AfterValidator(_bounded_time),
    PlainSerializer(_iso_utc, return_type=str, when_used="json"),
    WithJsonSchema(_TIME_SCHEMA, mode="validation"),
]
PageNumber = Annotated[int, Field(ge=1, le=MAX_PAGE)]


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# Values of JSON bodies take JSON's own types only: pydantic's lax mode would take "1.5" or true for a number and
# 1 or "yes" for a boolean, which the schema says are not. (Query parameters are text and stay lax.)
JSONBool = Annotated[bool, Strict()]
JSONFloat = Annotated[float, Strict()]  # strict floats still take integers, as JSON numbers do
# For ints, not Strict(): JSON Schema counts 5.0 as an integer, and lax ints take it (and refuse 5.5). Like
# ValidUnicode, put it after the bounds (Annotated[int, Field(ge=0), JSONInteger]), which then stay checks of the
# int itself, in Rust and in the JSON schema as minimum and maximum.
JSONInteger = BeforeValidator(_json_integer)
BigInt = Annotated[int, Field(ge=0, le=MAX_INT), JSONInteger]


def _check_text(value: str) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PydanticCustomError(
                "invalid_unicode", "text must be valid Unicode (a lone surrogate at position {position})",
                {"position": exc.start},
            ) from None  # fmt: skip
    return value


# Any text the API stores is valid Unicode, so that an answer holding it can always be encoded as UTF-8 JSON.
# Put it after a type's length constraints (Annotated[str, StringConstraints(...), ValidUnicode]): constraints
# written after a validator are checked on its output, where stripping no longer counts.
ValidUnicode = AfterValidator(_check_text)
Text = Annotated[str, ValidUnicode]
# What StringConstraints(strip_whitespace=True) strips: Rust's str::trim, Unicode White_Space (not \x1c-\x1f, which
# Python's isspace and regex \s count).
_TRIMMED = "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"


def trimmed_text(max_length: int) -> WithJsonSchema:
    """The JSON schema of text that is stripped, then 1 to `max_length` characters long: minLength and maxLength
    would count the stripped whitespace, so a pattern states it."""
    space, text = f"[{_TRIMMED}]", f"[^{_TRIMMED}]"
    kept = f"(?:{text}|{text}[\\s\\S]{{0,{max_length - 2}}}{text})"
    description = f"1 to {max_length} characters once surrounding whitespace is stripped."
    return WithJsonSchema({"type": "string", "pattern": f"^{space}*{kept}{space}*$", "description": description})


def check_json_value(value: Any) -> Any:
    """`value` if it can be stored and answered as JSON: not nested past MAX_JSON_DEPTH, at most MAX_JSON_BYTES
    encoded, valid Unicode throughout, finite numbers; else a PydanticCustomError naming the problem."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise PydanticCustomError(
                    "json_too_deep", "JSON nested deeper than {max_depth} levels", {"max_depth": MAX_JSON_DEPTH}
                )
            if isinstance(node, dict):
                for key, item in node.items():
                    _check_text(key) if isinstance(key, str) else None
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            _check_text(node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise PydanticCustomError("json_not_finite", "JSON numbers must be finite (no NaN or Infinity)")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_JSON_BYTES:
        raise PydanticCustomError(
            "json_too_large", "JSON of {size} bytes; at most {max_bytes}", {"size": size, "max_bytes": MAX_JSON_BYTES}
        )
    return value


# Error types of check_json_value and _check_text; the API answers them with their own code.
JSON_VALUE_ERRORS = {"json_too_deep", "json_not_finite", "json_too_large", "invalid_unicode"}
JSONObject = Annotated[dict[str, Any], AfterValidator(check_json_value)]


def _check_id(value: str) -> str:
    if not ID_PATTERN.fullmatch(value):  # match() would let "$" pass a trailing newline
        raise ValueError("ids are 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
    return value


ResourceId = Annotated[str, AfterValidator(_check_id), WithJsonSchema({"type": "string", "pattern": ID_REGEX})]


def not_nullable(schema: dict[str, Any]) -> None:
    """`json_schema_extra` for an optional field that may be left out but not sent as null (`X | None = None` in
    Python, so that the model can tell it was not sent): its schema drops the null that pydantic adds."""
    branches = [branch for branch in schema.pop("anyOf", []) if branch != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    schema.pop("default", None)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


JSONDict = dict[str, Any]
