"""Blind A/B tests (two adapters, or an adapter and the base model, on the same prompts), the leaderboard, and the
datasets made from feedback."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from tunelab.domain.common import JSONFloat, Model, ResourceId, UTCDateTime, ValidUnicode, not_nullable
from tunelab.domain.datasets import DatasetName
from tunelab.domain.generations import MAX_SEED, AdapterRef, Prompt, Rating

MAX_PROMPTS = 50
MAX_SAMPLES = 20
MAX_PAIRS = 200
MIN_LEADERBOARD_GAMES = 5
DEFAULT_DURATION_S = 5.0
TestName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), ValidUnicode]


class Choice(StrEnum):
    FIRST = "first"
    SECOND = "second"
    TIE = "tie"


class ABTestCreate(Model):
    name: TestName | None = Field(default=None, json_schema_extra=not_nullable)
    adapter_a_id: ResourceId | None = Field(description="Side A: an adapter of the current model (inactive "
                                            "versions too), or null for the base model.")  # fmt: skip
    adapter_b_id: ResourceId | None = Field(default=None, description="Side B: an adapter of the current model "
                                            "(inactive versions too); null (the default) for the base model.")  # fmt: skip
    prompts: list[Prompt] = Field(min_length=1, max_length=MAX_PROMPTS)
    samples_per_prompt: int = Field(default=1, ge=1, le=MAX_SAMPLES)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, json_schema_extra=not_nullable)
    duration_s: JSONFloat | None = Field(default=None, gt=0, le=600, json_schema_extra=not_nullable,
                                         description=f"Seconds per clip; {DEFAULT_DURATION_S:g} s or the "
                                         "model's limit if shorter.")  # fmt: skip
    guidance_scale: JSONFloat | None = Field(default=None, ge=1, le=20, json_schema_extra=not_nullable)


class VoteCreate(Model):
    pair_id: ResourceId
    choice: Choice


class Side(BaseModel):
    audio_url: str | None = Field(description="The clip, once both sides of the pair are made.")


class Pair(BaseModel):
    id: str
    position: int
    prompt: str
    status: str = Field(description="pending (clips being made), ready, or failed (with error)")
    error: str | None
    first: Side
    second: Side
    vote: Choice | None
    voted_at: UTCDateTime | None
    first_is: str | None = Field(description="'a' or 'b': which side played first, revealed once voted on.")


class ABResults(BaseModel):
    a_wins: int
    b_wins: int
    ties: int
    decisive: int
    win_rate_a: float | None = Field(description="A's share of the decisive votes (ties left out).")
    win_rate_ci: list[float] | None = Field(description="95% Wilson interval of win_rate_a (one look).")
    p_value: float | None = Field(description="Two-sided exact binomial (sign) test of the decisive votes.")
    significant: bool
    enough_votes: bool = Field(description="Whether the decisive votes are enough for the test to reach p < 0.05.")
    sequential_ci: list[float] | None = Field(
        description="Always-valid 95% interval (a confidence sequence): safe to watch while votes come in."
    )
    verdict: str = Field(description="a_better, b_better or undecided, from the always-valid interval.")
    warning: str | None


class ABTestSummary(BaseModel):
    id: str
    name: str
    status: str = Field(description="generating, voting, completed (every ready pair voted), or failed")
    model_id: str
    adapter_a: AdapterRef | None
    adapter_b: AdapterRef | None
    pairs_total: int
    pairs_ready: int
    votes: int
    verdict: str = Field(description="a_better, b_better or undecided (the results' live verdict).")
    win_rate_a: float | None
    dataset_id: str | None
    created_at: UTCDateTime


class ABTest(ABTestSummary):
    prompts: list[str]
    samples_per_prompt: int
    duration_s: float
    seed: int
    pairs: list[Pair]
    results: ABResults


class VoteResult(BaseModel):
    pair: Pair
    results: ABResults


class LeaderboardEntry(BaseModel):
    id: str = Field(description="An adapter id, or 'base' for the base model.")
    adapter: AdapterRef | None
    score: float = Field(description="Elo-like Bradley–Terry score (mean 1000; +100 ≈ 64% expected wins).")
    ci: list[float] | None = Field(
        description=f"95% bootstrap interval; null below {MIN_LEADERBOARD_GAMES} games, "
        "where resampling a handful of votes would look falsely certain."
    )
    wins: float
    losses: float
    ties: float
    games: float
    rank: int


class Leaderboard(BaseModel):
    model_id: str
    votes: int
    entries: list[LeaderboardEntry]


class RatingsDatasetCreate(Model):
    name: DatasetName
    min_rating: Rating = Field(description="Rated generations at or above this rating become items.")
    adapter_id: ResourceId | None = Field(default=None, json_schema_extra=not_nullable,
                                          description="Only generations of this adapter.")  # fmt: skip
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=1000), ValidUnicode] | None = Field(
        default=None, json_schema_extra=not_nullable, description="Only prompts containing this text."
    )
    description: Annotated[str, StringConstraints(max_length=10_000), ValidUnicode] | None = Field(
        default=None, json_schema_extra=not_nullable
    )


class ABDatasetCreate(Model):
    name: DatasetName | None = Field(default=None, json_schema_extra=not_nullable)


def pair_view(row: dict[str, Any], abtest_id: str, status: str, error: str | None) -> Pair:
    """A pair as a voter sees it: which side played first stays hidden until the pair is voted on."""
    ready = status == "ready"

    def side(which: str) -> Side:
        return Side(audio_url=f"/api/abtests/{abtest_id}/pairs/{row['id']}/audio?side={which}" if ready else None)

    voted = row["vote"] is not None
    return Pair(id=row["id"], position=row["position"], prompt=row["prompt"], status=status, error=error,
                first=side("first"), second=side("second"), vote=row["vote"], voted_at=row["voted_at"],
                first_is=("a" if row["a_first"] else "b") if voted else None)  # fmt: skip
