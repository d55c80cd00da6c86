"""Runs: status, metrics and comparison."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from tunelab.api.deps import ServicesDep
from tunelab.domain.runs import (
    MAX_POINTS_PER_BATCH,
    MetricBatch,
    MetricColumns,
    Run,
    RunComparison,
    RunMetrics,
    RunStatusUpdate,
    parse_metric_batch,
)
from tunelab.errors import PayloadTooLarge
from tunelab.services.runs import batch_too_large

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.get("/compare")
def compare_runs(services: ServicesDep, ids: Annotated[str, Query(min_length=1)]) -> RunComparison:
    """Side-by-side summaries and the best run per metric (loss/error minimised, others maximised)."""
    return services.runs.compare([part.strip() for part in ids.split(",") if part.strip()])


@router.get("/{run_id}")
def get_run(run_id: str, services: ServicesDep) -> Run:
    """One run with its metrics summary."""
    return services.runs.get(run_id)


@router.post("/{run_id}/cancel")
def cancel_run(run_id: str, services: ServicesDep) -> Run:
    """Cancel a run that has not ended."""
    return services.runs.cancel(run_id)


@router.post("/{run_id}/status")
def set_run_status(run_id: str, body: RunStatusUpdate, services: ServicesDep) -> Run:
    """End (or start) a run reported by an outside engine."""
    return services.runs.set_status(run_id, body)


@router.get("/{run_id}/metrics")
def get_metrics(run_id: str, services: ServicesDep, key: Annotated[list[str] | None, Query()] = None) -> RunMetrics:
    """Every series of the run (or only `key`), with final and best values per key."""
    return services.runs.metrics(run_id, key)


# 10,000 points with the longest keys and timestamps come to about 4 MB; anything far past that is refused unread.
MAX_BATCH_BYTES = 16 * 1024 * 1024


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
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BATCH_BYTES:
        raise _too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BATCH_BYTES:
            raise _too_large()
        chunks.append(chunk)
    try:
        return parse_metric_batch(b"".join(chunks))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for error in errors:
            if error["type"] == "too_long" and error["loc"] == ("points",):
                raise batch_too_large(int(error.get("ctx", {}).get("actual_length", 0))) from None
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in errors]) from None


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"A metrics batch body holds at most {MAX_BATCH_BYTES} bytes",
                           details={"max_bytes": MAX_BATCH_BYTES})  # fmt: skip


@router.post("/{run_id}/metrics", openapi_extra=_BATCH_BODY)
async def ingest_metrics(run_id: str, request: Request, services: ServicesDep) -> dict[str, int]:
    """Ingest up to 10,000 points at once; a rejected batch stores nothing."""
    batch = await _read_batch(request)
    return {"ingested": await run_in_threadpool(services.runs.ingest, run_id, batch)}
