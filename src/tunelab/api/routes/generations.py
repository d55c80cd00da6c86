"""Generation jobs (made by the generation worker), their audio and ratings; the worker's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse

from tunelab.api.deps import ServicesDep
from tunelab.api.openapi import COMMON, WRITES, errors, links
from tunelab.api.routing import StrictJSONRoute, blocking
from tunelab.domain.common import ID_REGEX, Page, PageNumber
from tunelab.domain.generations import (
    Generation,
    GenerationCreate,
    GenerationStatus,
    Performance,
    RatingCreate,
    WorkerStatus,
)

router = APIRouter(prefix="/api", tags=["generations"], route_class=StrictJSONRoute)
GenerationId = Annotated[str, Path(pattern=ID_REGEX, description="A generation id (gen-…).")]
QUEUED = links("generation_id", {"get": ("GET", "/api/generations/{generation_id}"),
                                 "audio": ("GET", "/api/generations/{generation_id}/audio"),
                                 "rate": ("POST", "/api/generations/{generation_id}/rating")})  # fmt: skip


@router.post("/generations", status_code=202, responses={**errors(*WRITES, 409), 202: QUEUED})
async def create_generation(body: GenerationCreate, services: ServicesDep) -> Generation:
    """Queue a clip for the generation worker: `pending` until it runs. Refused before queuing: 400
    `adapter_deleted`, `adapter_inactive`, `adapter_incompatible` (with `details.compatible_adapters`), 404
    `adapter_not_found`, 422 `duration_too_long` (past the current model's limit), 409 `no_current_model`."""
    return await blocking(services.generations.create, body)


@router.get("/generations", responses=errors(*COMMON))
async def list_generations(
    services: ServicesDep,
    status: Annotated[GenerationStatus | None, Query(description="Only jobs in this state.")] = None,
    adapter_id: Annotated[str | None, Query(max_length=128, description="Only jobs of this adapter.")] = None,
    page: Annotated[PageNumber, Query()] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[Generation]:
    """Jobs made in the studio, newest first, each with its `adapter` {id, name, version} (null for the base model)
    and `adapter_deleted`. Clips of A/B tests are listed by their test, which keeps the sides hidden."""
    return await blocking(services.generations.list_page, status, adapter_id, page, page_size)


@router.get("/generations/{generation_id}", responses=errors(*COMMON, 404))
async def get_generation(generation_id: GenerationId, services: ServicesDep) -> Generation:
    """A job: status (pending, running, completed, failed), its error, timings, audio link and rating."""
    return await blocking(services.generations.get, generation_id)


@router.get("/generations/{generation_id}/audio", response_class=FileResponse,
            responses={**errors(*COMMON, 404, 409), 200: {"content": {"audio/wav": {}}}})  # fmt: skip
async def generation_audio(generation_id: GenerationId, services: ServicesDep) -> FileResponse:
    """The clip as 16-bit WAV; 409 `generation_not_completed` before it is made."""
    path = await blocking(services.generations.audio, generation_id)
    return FileResponse(path, media_type="audio/wav", filename=f"{generation_id}.wav")


@router.post("/generations/{generation_id}/rating", responses=errors(*WRITES, 404, 409))
async def rate_generation(generation_id: GenerationId, body: RatingCreate, services: ServicesDep) -> Generation:
    """Rate a completed clip from 1 to 5 (a new rating replaces the old); 409 `generation_not_completed`."""
    return await blocking(services.generations.rate, generation_id, body.rating)


@router.get("/generation-worker", responses=errors(*COMMON))
async def worker_status(services: ServicesDep) -> WorkerStatus:
    """The generation worker: its state, model, device, queue, restarts and the adapters it holds loaded."""
    return await blocking(services.generations.worker_status)


@router.get("/adapters/{adapter_id}/performance", responses=errors(*COMMON, 404))
async def adapter_performance(
    adapter_id: Annotated[str, Path(pattern=ID_REGEX, description="An adapter id (adp-…).")], services: ServicesDep
) -> Performance:
    """How an adapter is used and liked: its generations, the average rating with a 95% interval and the rating
    distribution, beside the base model's ratings on the same prompts with a Mann–Whitney U test between them."""
    return await blocking(services.generations.performance, adapter_id)
