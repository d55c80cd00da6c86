"""Runs: status, metrics and comparison."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from tunelab.api.deps import RunId, ServicesDep
from tunelab.api.openapi import COMMON, WRITES, errors
from tunelab.api.routing import StrictJSONRoute, blocking
from tunelab.domain.common import ID_REGEX
from tunelab.domain.metrics import (
    MAX_CHART_POINTS,
    MAX_POINTS_PER_BATCH,
    MAX_SERIES_LIMIT,
    MAX_STEP,
    MetricBatch,
    MetricColumns,
    MetricHistory,
    RunMetrics,
    parse_metric_batch,
)
from tunelab.domain.runs import Run, RunComparison, RunStatusUpdate
from tunelab.services.runs import DEFAULT_SERIES_LIMIT, MAX_COMPARE, MAX_HISTORY_RUNS, batch_too_large

router = APIRouter(prefix="/api/runs", tags=["runs"], route_class=StrictJSONRoute)


def _one_or_many_keys(schema: dict[str, Any]) -> None:
    """`key=a` and `key=a&key=b` are one query: a single key is a list of one, so the schema says a key or a list
    (a checker that sends one string must not read it as a value of the wrong type)."""
    one = {"type": "string", "minLength": 1, "maxLength": 200}
    schema.pop("anyOf", None)
    schema["anyOf"] = [one, {"type": "array", "items": one, "maxItems": 100}]


MetricKeys = Annotated[
    list[Annotated[str, Query(min_length=1, max_length=200)]] | None,
    Query(max_length=100, json_schema_extra=_one_or_many_keys),
]
AfterStep = Annotated[int | None, Query(ge=0, le=MAX_STEP, description="Only points after this step.")]
MaxPoints = Annotated[
    int | None,
    Query(ge=2, le=MAX_CHART_POINTS, description="Decimate each series to at most this many points (min and max "
          "per step range), keeping its shape; for charts."),
]  # fmt: skip


def id_list(most: int) -> str:
    """The documented form of `ids`: 1 to `most` ids, comma-separated. The server takes more than it states (spaces
    around ids, empty parts, repeats counted once) and answers the rest with 404 or 422 `invalid_compare`."""
    one = ID_REGEX.removeprefix("^").removesuffix("$")
    return f"^{one}(,{one}){{0,{most - 1}}}$"


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get("/compare", responses=errors(*COMMON, 404))
async def compare_runs(
    services: ServicesDep,
    ids: Annotated[
        str,
        Query(
            min_length=1,
            max_length=3000,
            description="Comma-separated run ids (at most 20).",
            json_schema_extra={"pattern": id_list(MAX_COMPARE)},
        ),
    ],
) -> RunComparison:
    """Side-by-side final values and the best runs per ranked metric (every run tied for the best)."""
    return await blocking(services.runs.compare, [part.strip() for part in ids.split(",") if part.strip()])


@router.get("/metrics", response_model=MetricHistory, responses=errors(*COMMON, 404))
async def metric_history(
    services: ServicesDep,
    ids: Annotated[
        str,
        Query(
            min_length=1,
            max_length=15000,
            description="Comma-separated run ids (at most 100).",
            json_schema_extra={"pattern": id_list(MAX_HISTORY_RUNS)},
        ),
    ],
    key: Annotated[str, Query(min_length=1, max_length=200)],
    max_points: MaxPoints = None,
) -> Response:
    """One key's history for many runs in one answer, as step and value columns per run (for compare charts)."""
    run_ids = [part.strip() for part in ids.split(",") if part.strip()]
    return _json(await blocking(services.runs.history, run_ids, key, max_points))


@router.get("/{run_id}", responses=errors(*COMMON, 404))
async def get_run(run_id: RunId, services: ServicesDep) -> Run:
    """One run with its metrics summary."""
    return await blocking(services.runs.get, run_id)


@router.post("/{run_id}/cancel", responses=errors(*WRITES, 404, 409))
async def cancel_run(run_id: RunId, services: ServicesDep) -> Run:
    """Cancel a run that has not ended: a queued run leaves the queue; a training process is stopped (SIGTERM,
    then SIGKILL after a grace period) and the run ends `cancelled` with its partial outputs and log."""
    return await blocking(services.training.cancel, run_id)


@router.post("/{run_id}/status", responses=errors(*WRITES, 404, 409))
async def set_run_status(run_id: RunId, body: RunStatusUpdate, services: ServicesDep) -> Run:
    """End (or start) a run reported by an outside engine; a run TuneLab started answers 409 `run_not_external`."""
    return await blocking(services.runs.report_status, run_id, body)


@router.get("/{run_id}/metrics", response_model=RunMetrics, responses=errors(*COMMON, 404))
async def get_metrics(
    run_id: RunId,
    services: ServicesDep,
    key: MetricKeys = None,
    after_step: AfterStep = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SERIES_LIMIT, description="Points per series at most.")] = (
        DEFAULT_SERIES_LIMIT
    ),
    max_points: MaxPoints = None,
) -> Response:
    """The run's series (every key, or those named by `key`), with final and best values per key.

    Each series holds the points after `after_step`, at most `limit`; `next_after_step` names, for each series cut
    short, the `after_step` of its next page. With `max_points` each series is decimated for a chart instead.
    """
    return _json(await blocking(services.runs.metrics, run_id, key, after_step, limit, max_points))


def _inline_schema(model: type[MetricBatch]) -> dict[str, Any]:
    """The model's JSON schema with its $defs inlined, to stand on its own inside the OpenAPI document."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        return [resolve(item) for item in node] if isinstance(node, list) else node

    resolved: dict[str, Any] = resolve(schema)
    resolved["properties"]["points"]["maxItems"] = MAX_POINTS_PER_BATCH
    return resolved


_BATCH_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _inline_schema(MetricBatch)}}}
}


async def _read_batch(request: Request) -> MetricColumns:
    """The body validated straight from its bytes (no json.loads, no model per point); errors as FastAPI's."""
    try:
        return parse_metric_batch(await request.body())
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for error in errors:
            if error["type"] == "too_long" and error["loc"] == ("points",):
                raise batch_too_large(int(error.get("ctx", {}).get("actual_length", 0))) from None
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in errors]) from None


@router.post(
    "/{run_id}/metrics", openapi_extra=_BATCH_BODY, responses=errors(*WRITES, 404, 409)
)  # the body limit is 16 MiB: api/limits.py
async def ingest_metrics(run_id: RunId, request: Request, services: ServicesDep) -> dict[str, int]:
    """Ingest up to 10,000 points at once; a rejected batch stores nothing.

    A point is unique per run, key and step: one sent again replaces the stored one, so a client can always resend.
    A run that has ended takes no more points (409 `run_finished`).
    """
    batch = await _read_batch(request)
    return {"ingested": await blocking(services.runs.ingest, run_id, batch)}
