"""Blind A/B tests and their votes, the leaderboard, and datasets made from feedback (votes and ratings)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import FileResponse

from tunelab.api.deps import ServicesDep
from tunelab.api.openapi import COMMON, WRITES, errors, links
from tunelab.api.routing import StrictJSONRoute, blocking
from tunelab.domain.abtests import (
    ABDatasetCreate,
    ABTest,
    ABTestCreate,
    ABTestSummary,
    Leaderboard,
    RatingsDatasetCreate,
    VoteCreate,
    VoteResult,
)
from tunelab.domain.common import ID_REGEX, Page, PageNumber
from tunelab.domain.datasets import Dataset

router = APIRouter(prefix="/api", tags=["abtests"], route_class=StrictJSONRoute)
ABTestId = Annotated[str, Path(pattern=ID_REGEX, description="An A/B test id (ab-…).")]
PairId = Annotated[str, Path(pattern=ID_REGEX, description="A pair id (pair-…).")]
CREATED = links("abtest_id", {"get": ("GET", "/api/abtests/{abtest_id}"),
                              "vote": ("POST", "/api/abtests/{abtest_id}/votes"),
                              "dataset": ("POST", "/api/abtests/{abtest_id}/dataset")})  # fmt: skip
CREATED["links"]["play"] = {
    "operationRef": "#/paths/~1api~1abtests~1{abtest_id}~1pairs~1{pair_id}~1audio/get",
    "parameters": {"abtest_id": "$response.body#/id", "pair_id": "$response.body#/pairs/0/id"},
}


@router.post("/abtests", status_code=201, responses={**errors(*WRITES, 409), 201: CREATED})
async def create_abtest(body: ABTestCreate, services: ServicesDep) -> ABTest:
    """A blind test of side A against side B (an adapter, or null for the base model) on the prompts: one pair per
    prompt and sample, both sides from the same seed in one batch of the worker. Adapters may be inactive (to compare
    the versions of a name) but not deleted or unfit for the current model (400 `adapter_deleted`,
    `adapter_incompatible`); 422 `duration_too_long`, `too_many_pairs`."""
    return await blocking(services.abtests.create, body)


@router.get("/abtests", responses=errors(*COMMON))
async def list_abtests(
    services: ServicesDep, page: Annotated[PageNumber, Query()] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[ABTestSummary]:  # fmt: skip
    """A/B tests, newest first, with their progress."""
    return await blocking(services.abtests.list_page, page, page_size)


@router.get("/abtests/{abtest_id}", responses=errors(*COMMON, 404))
async def get_abtest(abtest_id: ABTestId, services: ServicesDep) -> ABTest:
    """The test with its pairs as `first` / `second` (which one is A stays hidden until the pair is voted on) and
    its results: wins, ties, A's win rate with its Wilson interval, the sign test, and the always-valid interval
    that the live verdict reads."""
    return await blocking(services.abtests.get, abtest_id)


@router.get("/abtests/{abtest_id}/pairs/{pair_id}/audio", response_class=FileResponse,
            responses={**errors(*COMMON, 404, 409), 200: {"content": {"audio/wav": {}}}})  # fmt: skip
async def pair_audio(
    abtest_id: ABTestId, pair_id: PairId, services: ServicesDep,
    side: Annotated[Literal["first", "second"], Query(description="The clip played first or second.")] = "first",
) -> FileResponse:  # fmt: skip
    """One clip of a pair, by the order it is played in; 409 `generation_not_completed` before it is made."""
    path = await blocking(services.abtests.pair_audio, abtest_id, pair_id, side)
    return FileResponse(path, media_type="audio/wav", filename=f"{pair_id}-{side}.wav")


@router.post("/abtests/{abtest_id}/votes", responses=errors(*WRITES, 404, 409))
async def vote(abtest_id: ABTestId, body: VoteCreate, services: ServicesDep) -> VoteResult:
    """Vote on a pair: `first`, `second` or `tie` (a new vote replaces the old). The answer reveals which side
    played first, with the updated results. 404 `pair_not_found`; 409 `pair_not_ready` before both clips exist."""
    return await blocking(services.abtests.vote, abtest_id, body)


@router.post("/abtests/{abtest_id}/dataset", status_code=201, responses=errors(*WRITES, 404, 409))
async def dataset_from_votes(
    abtest_id: ABTestId, services: ServicesDep, body: Annotated[ABDatasetCreate | None, Body()] = None
) -> Dataset:
    """A preference dataset from the decisive votes: the winner's clip `chosen`, the loser's `rejected`, ties
    skipped; each item's source names the test and pair. 422 `no_decisive_votes`; 409 `dataset_name_taken` for a
    name given that is taken (a default name gets a number)."""
    return await blocking(services.abtests.dataset_from_votes, abtest_id, body or ABDatasetCreate())


@router.post("/datasets/from-ratings", status_code=201, responses=errors(*WRITES, 404, 409))
async def dataset_from_ratings(body: RatingsDatasetCreate, services: ServicesDep) -> Dataset:
    """A supervised dataset of the completed generations rated `min_rating` or more (optionally of one adapter, or
    of prompts containing `prompt`), each item with its rating and its generation as source. 422
    `no_rated_generations`; 404 `adapter_not_found`; 409 `dataset_name_taken`."""
    return await blocking(services.abtests.dataset_from_ratings, body)


@router.get("/leaderboard", responses=errors(*COMMON, 404, 409))
async def leaderboard(
    services: ServicesDep,
    model_id: Annotated[str | None, Query(max_length=128, description="Default: the current model.")] = None,
) -> Leaderboard:
    """Every adapter of a base model and the base model itself, ranked by a Bradley–Terry fit of every A/B vote
    between them (ties count half), with 95% bootstrap intervals; scores are Elo-like (mean 1000)."""
    return await blocking(services.abtests.leaderboard, model_id)
