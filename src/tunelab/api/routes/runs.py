"""Runs: status, metrics and comparison."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tunelab.api.deps import ServicesDep
from tunelab.domain.runs import MetricBatch, Run, RunComparison, RunMetrics, RunStatusUpdate

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


@router.post("/{run_id}/metrics")
def ingest_metrics(run_id: str, body: MetricBatch, services: ServicesDep) -> dict[str, int]:
    """Ingest up to 10,000 points at once; a rejected batch stores nothing."""
    return {"ingested": services.runs.ingest(run_id, body)}
