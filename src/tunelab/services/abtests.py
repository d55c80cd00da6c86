"""Blind A/B tests, the leaderboard, and datasets made from feedback (ratings and votes).

A test makes one pair per prompt and sample: side A's and side B's clip of the same prompt with the same seed,
queued together so the worker makes both in one batch. When both sides are the same (an adapter against itself,
or the base model against itself) B draws from the next seed, or every pair would be two identical clips. Each pair
is shown as `first` / `second` in an order drawn at random when it is made; which side was which is revealed only
once the pair is voted on. Results (scipy, `tunelab.stats`) count decisive votes for the sign test and the
intervals; ties are reported and left out. The live verdict comes from the always-valid interval, so watching the
results while votes come in does not inflate false positives.

Datasets from feedback refer to the generations' stored clips (no copies): a supervised dataset from rated
generations, and a preference dataset from a test's decisive votes (winner chosen, loser rejected). Each item's
`source` names the generation or the test and pair it came from.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from tunelab import stats
from tunelab.domain.abtests import (
    DEFAULT_DURATION_S,
    MAX_PAIRS,
    MIN_LEADERBOARD_GAMES,
    ABDatasetCreate,
    ABResults,
    ABTest,
    ABTestCreate,
    ABTestSummary,
    Choice,
    Leaderboard,
    LeaderboardEntry,
    RatingsDatasetCreate,
    VoteCreate,
    VoteResult,
    pair_view,
)
from tunelab.domain.common import Page, utcnow
from tunelab.domain.datasets import Dataset, DatasetType
from tunelab.domain.generations import MAX_SEED, AdapterRef, GenerationStatus
from tunelab.errors import Conflict, NotFound, Unprocessable
from tunelab.services.adapters import AdapterService
from tunelab.services.experiments import new_id
from tunelab.services.generations import GenerationService
from tunelab.store import adapters as adapter_store
from tunelab.store import datasets as dataset_store
from tunelab.store import generations as store
from tunelab.store.db import Connection, Database, insert_row, insert_rows

BASE = "base"  # the base model's id on the leaderboard


def abtest_not_found(abtest_id: str) -> NotFound:
    return NotFound(f"A/B test {abtest_id!r} does not exist", code="abtest_not_found",
                    details={"abtest_id": abtest_id})  # fmt: skip


class ABTestService:
    def __init__(self, db: Database, generations: GenerationService, adapters: AdapterService) -> None:
        self.db = db
        self.generations = generations
        self.adapters = adapters

    def create(self, data: ABTestCreate) -> ABTest:
        model = self.generations.current_model()
        duration = data.duration_s if data.duration_s is not None else min(DEFAULT_DURATION_S, model.max_duration_s)
        self.generations.check_duration(duration, model)
        # Inactive versions may be tested: comparing the versions of a name, of which one is active, is the point.
        a = self.adapters.usable(data.adapter_a_id, require_active=False) if data.adapter_a_id else None
        b = self.adapters.usable(data.adapter_b_id, require_active=False) if data.adapter_b_id else None
        count = len(data.prompts) * data.samples_per_prompt
        if count > MAX_PAIRS:
            raise Unprocessable(f"{count} pairs asked; a test has at most {MAX_PAIRS} (prompts × samples)",
                                code="too_many_pairs", details={"pairs": count, "max_pairs": MAX_PAIRS})  # fmt: skip
        seed = data.seed if data.seed is not None else secrets.randbelow(MAX_SEED + 1)
        same = (a.id if a else None) == (b.id if b else None)
        abtest_id, now = new_id("ab"), utcnow()
        name = data.name or f"{_label(a)} vs {_label(b)}"
        generations, pairs = [], []
        for position in range(count):
            prompt = data.prompts[position // data.samples_per_prompt]
            pair_seed = (seed + position) % (MAX_SEED + 1)
            sides = []
            for adapter, side_seed in ((a, pair_seed), (b, (pair_seed + 1) % (MAX_SEED + 1) if same else pair_seed)):
                row = self.generations.new_row(prompt, duration, side_seed, data.guidance_scale, model,
                                               adapter.id if adapter else None,
                                               adapter.storage_path if adapter else None, abtest_id)  # fmt: skip
                row["created_at"] = now
                generations.append(row)
                sides.append(row["id"])
            pairs.append({"id": f"pair-{uuid.uuid4().hex[:16]}", "abtest_id": abtest_id, "position": position,
                          "prompt": prompt, "seed": pair_seed, "generation_a_id": sides[0],
                          "generation_b_id": sides[1], "a_first": bool(secrets.randbits(1)),
                          "vote": None, "voted_at": None})  # fmt: skip
        with self.db.transaction() as con:
            store.insert_test(con, {"id": abtest_id, "name": name, "model_id": model.id,
                                    "adapter_a_id": a.id if a else None, "adapter_b_id": b.id if b else None,
                                    "prompts": list(data.prompts), "samples_per_prompt": data.samples_per_prompt,
                                    "duration_s": duration, "seed": seed, "created_at": now})  # fmt: skip
            store.insert_many(con, generations)
            store.insert_pairs(con, pairs)
        self.generations.enqueue([row["id"] for row in generations])
        return self.get(abtest_id)

    # reading

    def get(self, abtest_id: str) -> ABTest:
        with self.db.read() as con:
            test = store.get_test(con, abtest_id)
            if test is None:
                raise abtest_not_found(abtest_id)
            return self._views(con, [test], full=True)[0]  # type: ignore[return-value]

    def list_page(self, page: int, page_size: int) -> Page[ABTestSummary]:
        with self.db.read() as con:
            tests, total = store.tests_page(con, page_size, (page - 1) * page_size)
            return Page(items=self._views(con, tests, full=False), total=total, page=page, page_size=page_size)

    def _views(self, con: Connection, tests: list[dict[str, Any]], full: bool) -> list[ABTestSummary]:
        pairs = store.pairs(con, [t["id"] for t in tests]) if tests else []
        generations = store.many(con, [g for p in pairs for g in (p["generation_a_id"], p["generation_b_id"])])
        adapter_ids = sorted({i for t in tests for i in (t["adapter_a_id"], t["adapter_b_id"]) if i})
        adapters = adapter_store.many(con, adapter_ids) if adapter_ids else {}
        views: list[ABTestSummary] = []
        for test in tests:
            own = [p for p in pairs if p["abtest_id"] == test["id"]]
            shown = [pair_view(p, test["id"], *_pair_state(p, generations)) for p in own]
            ready = sum(1 for p in shown if p.status == "ready")
            failed = sum(1 for p in shown if p.status == "failed")
            votes = sum(1 for p in own if p["vote"] is not None)
            results = results_of(own)
            status = ("generating" if ready + failed < len(own) else "failed" if failed == len(own)
                      else "completed" if votes >= ready else "voting")  # fmt: skip
            summary = {"id": test["id"], "name": test["name"], "status": status, "model_id": test["model_id"],
                       "adapter_a": _ref(adapters.get(test["adapter_a_id"] or "")),
                       "adapter_b": _ref(adapters.get(test["adapter_b_id"] or "")), "pairs_total": len(own),
                       "pairs_ready": ready, "votes": votes, "verdict": results.verdict,
                       "win_rate_a": results.win_rate_a, "dataset_id": test["dataset_id"],
                       "created_at": test["created_at"]}  # fmt: skip
            if full:
                views.append(ABTest(**summary, prompts=test["prompts"], samples_per_prompt=test["samples_per_prompt"],
                                    duration_s=test["duration_s"], seed=test["seed"], pairs=shown,
                                    results=results))  # fmt: skip
            else:
                views.append(ABTestSummary(**summary))
        return views

    def pair_audio(self, abtest_id: str, pair_id: str, which: str) -> Path:
        """The clip played `first` or `second` of a pair (the generation behind it stays unnamed)."""
        with self.db.read() as con:
            pair = self._pair(con, abtest_id, pair_id)
            a_side = (which == "first") == bool(pair["a_first"])
            generation_id = pair["generation_a_id"] if a_side else pair["generation_b_id"]
            generation = store.get(con, generation_id)
        path = self.generations.audio_root / f"{generation_id}.wav"
        status = generation["status"] if generation else "missing"
        if status != GenerationStatus.COMPLETED.value or not path.is_file():
            # Not GenerationService.audio's error: its details name the generation, which names the side.
            raise Conflict(f"The {which} clip of pair {pair_id} is not made yet (it is {status})",
                           code="generation_not_completed",
                           details={"abtest_id": abtest_id, "pair_id": pair_id, "side": which,
                                    "status": status})  # fmt: skip
        return path

    def _pair(self, con: Connection, abtest_id: str, pair_id: str) -> dict[str, Any]:
        if store.get_test(con, abtest_id) is None:
            raise abtest_not_found(abtest_id)
        pair = store.pair(con, pair_id)
        if pair is None or pair["abtest_id"] != abtest_id:
            raise NotFound(f"A/B test {abtest_id} has no pair {pair_id!r}", code="pair_not_found",
                           details={"abtest_id": abtest_id, "pair_id": pair_id})  # fmt: skip
        return pair

    # voting

    def vote(self, abtest_id: str, data: VoteCreate) -> VoteResult:
        """Record (or change) the vote on a pair whose two clips are made; 409 `pair_not_ready` before."""
        with self.db.transaction() as con:
            pair = self._pair(con, abtest_id, data.pair_id)
            generations = store.many(con, [pair["generation_a_id"], pair["generation_b_id"]])
            status, _ = _pair_state(pair, generations)
            if status != "ready":
                raise Conflict(f"Pair {data.pair_id} cannot be voted on: its clips are {status}",
                               code="pair_not_ready", details={"pair_id": data.pair_id, "status": status})  # fmt: skip
            store.vote(con, data.pair_id, data.choice.value, utcnow())
            pairs = store.pairs(con, [abtest_id])
        voted = next(p for p in pairs if p["id"] == data.pair_id)
        return VoteResult(pair=pair_view(voted, abtest_id, "ready", None), results=results_of(pairs))

    # the leaderboard

    def leaderboard(self, model_id: str | None = None, bootstrap: int = 200) -> Leaderboard:
        """Every adapter of a base model (default: the current one) and the base model itself, ranked by a
        Bradley–Terry fit of every A/B vote between them (ties count half), with bootstrap intervals."""
        model = self.generations.models.get(model_id) if model_id else self.generations.current_model()
        with self.db.read() as con:
            votes = store.votes_between(con, model.id)
            comparisons = []
            for vote in votes:
                a, b = vote["adapter_a_id"] or BASE, vote["adapter_b_id"] or BASE
                if a != b:
                    comparisons.append((a, b, _outcome(vote)))
            ids = sorted({x for c in comparisons for x in c[:2] if x != BASE})
            adapters = adapter_store.many(con, ids) if ids else {}
        ranked = stats.bradley_terry(comparisons, bootstrap=bootstrap, seed=0)
        entries = [LeaderboardEntry(**{**entry, "ci": entry["ci"] if entry["games"] >= MIN_LEADERBOARD_GAMES else None},
                                    adapter=_ref(adapters.get(entry["id"]))) for entry in ranked]  # fmt: skip
        return Leaderboard(model_id=model.id, votes=len(comparisons), entries=entries)

    def feedback_between(self, adapter_ids: list[str]) -> dict[str, Any]:
        """What listeners said about adapters being compared: each one's ratings, a Mann–Whitney U test between the
        first two, and the A/B votes between the first two (from every test that pitted them against each other)."""
        ids = list(dict.fromkeys(adapter_ids))
        with self.db.read() as con:
            ratings = {i: [r for _, r in store.ratings(con, i)] for i in ids}
            ab_votes: list[dict[str, Any]] = []
            if len(ids) >= 2:
                ab_votes = [v for v in store.votes_between_adapters(con, ids[0], ids[1])]
        summaries = {i: stats.rating_summary(values) for i, values in ratings.items()}
        rating_test = stats.compare_ratings(ratings[ids[0]], ratings[ids[1]]) if len(ids) >= 2 else None
        first_wins = second_wins = ties = 0
        for vote in ab_votes:
            outcome = _outcome(vote)
            first_is_a = vote["adapter_a_id"] == ids[0]
            if outcome == "tie":
                ties += 1
            elif (outcome == "first") == first_is_a:
                first_wins += 1
            else:
                second_wins += 1
        ab = stats.ab_results(first_wins, second_wins, ties) if len(ids) >= 2 else None
        significant = []
        if rating_test and rating_test["significant"]:
            significant.append("average_rating")
        if ab and ab["significant"]:
            significant.append("ab_win_rate")
        return {"ratings": summaries, "rating_test": rating_test, "ab": ab,
                "ab_pair": ids[:2] if len(ids) >= 2 else None, "significant": significant}  # fmt: skip

    # datasets from feedback

    def dataset_from_votes(self, abtest_id: str, data: ABDatasetCreate) -> Dataset:
        """A preference dataset from the test's decisive votes: the winner's clip chosen, the loser's rejected."""
        with self.db.read() as con:
            test = store.get_test(con, abtest_id)
            if test is None:
                raise abtest_not_found(abtest_id)
            pairs = [p for p in store.pairs(con, [abtest_id]) if p["vote"] in (Choice.FIRST, Choice.SECOND)]
            generations = store.many(con, [g for p in pairs for g in (p["generation_a_id"], p["generation_b_id"])])
        items = []
        for pair in pairs:
            a_won = (pair["vote"] == Choice.FIRST) == bool(pair["a_first"])
            chosen = generations[pair["generation_a_id"] if a_won else pair["generation_b_id"]]
            rejected = generations[pair["generation_b_id"] if a_won else pair["generation_a_id"]]
            items.append({"prompt": pair["prompt"], "rating": None, "audio_id": None,
                          "chosen_audio_id": chosen["audio_id"], "rejected_audio_id": rejected["audio_id"],
                          "duration_s": round(chosen["duration_s"] + rejected["duration_s"], 6),
                          "source": f"abtest:{abtest_id}:{pair['id']}"})  # fmt: skip
        if not items:
            raise Unprocessable(f"A/B test {test['name']!r} has no decisive votes yet (ties are skipped)",
                                code="no_decisive_votes", details={"abtest_id": abtest_id})  # fmt: skip
        name = data.name or f"{test['name']} preferences"
        dataset = self._dataset(name, DatasetType.PREFERENCE, f"Votes of A/B test {test['name']} ({abtest_id})",
                                items, explicit=data.name is not None)  # fmt: skip
        with self.db.transaction() as con:
            store.set_test_dataset(con, abtest_id, dataset.id)
        return dataset

    def dataset_from_ratings(self, data: RatingsDatasetCreate) -> Dataset:
        """A supervised dataset of the completed generations rated `min_rating` or more (optionally of one adapter
        or of prompts containing some text), each item keeping its rating and its generation as source."""
        if data.adapter_id is not None:
            self.adapters.get(data.adapter_id)
        with self.db.read() as con:
            rows = store.rated(con, data.min_rating, data.adapter_id, data.prompt)
        if not rows:
            raise Unprocessable(f"No completed generation is rated {data.min_rating} or more with these filters",
                                code="no_rated_generations",
                                details={"min_rating": data.min_rating, "adapter_id": data.adapter_id,
                                         "prompt": data.prompt})  # fmt: skip
        items = [{"prompt": row["prompt"], "rating": row["rating"], "audio_id": row["audio_id"],
                  "chosen_audio_id": None, "rejected_audio_id": None, "duration_s": row["duration_s"],
                  "source": f"generation:{row['id']}"} for row in rows]  # fmt: skip
        description = data.description or f"Generations rated {data.min_rating}+"
        return self._dataset(data.name, DatasetType.SUPERVISED, description, items, explicit=True)

    def _dataset(self, name: str, kind: DatasetType, description: str, items: list[dict[str, Any]],
                 explicit: bool) -> Dataset:  # fmt: skip
        """The dataset and its items in one transaction: all or nothing. A name made up here gets a number when it
        is taken; a name the user gave is 409 `dataset_name_taken`."""
        now = utcnow()
        with self.db.transaction() as con:
            chosen = name
            for number in range(2, 1000):
                owner = dataset_store.name_owner(con, chosen)
                if owner is None:
                    break
                if explicit:
                    raise Conflict(f"A dataset is named {name!r} already", code="dataset_name_taken",
                                   details={"name": name, "dataset_id": owner})  # fmt: skip
                chosen = f"{name} {number}"
            row: dict[str, Any] = {"id": new_id("ds"), "name": chosen, "type": kind.value, "description": description,
                   "created_at": now, "updated_at": now}  # fmt: skip
            insert_row(con, "datasets", row)
            # a microsecond apart, so the items (and the export) keep the order of the pairs or generations
            insert_rows(con, "dataset_items", [{"id": f"item-{uuid.uuid4().hex[:16]}", "dataset_id": row["id"],
                                                **item, "created_at": now + timedelta(microseconds=number)}
                                               for number, item in enumerate(items)])  # fmt: skip
        total = round(sum(item["duration_s"] for item in items), 6)
        return Dataset(**row, item_count=len(items), total_duration_s=total)


def results_of(pairs: list[dict[str, Any]]) -> ABResults:
    a_wins = b_wins = ties = 0
    for pair in pairs:
        if pair["vote"] is None:
            continue
        outcome = _outcome({"vote": pair["vote"], "a_first": pair["a_first"]})
        if outcome == "tie":
            ties += 1
        elif outcome == "first":  # side A won
            a_wins += 1
        else:
            b_wins += 1
    return ABResults(**stats.ab_results(a_wins, b_wins, ties))


def _outcome(vote: dict[str, Any]) -> str:
    """'first' when side A won, 'second' when side B won, 'tie': a vote on first/second as shown, in A/B terms."""
    if vote["vote"] == Choice.TIE:
        return "tie"
    a_first = vote.get("a_first", True)
    return "first" if (vote["vote"] == Choice.FIRST) == bool(a_first) else "second"


def _pair_state(pair: dict[str, Any], generations: dict[str, dict[str, Any]]) -> tuple[str, str | None]:
    sides = [generations.get(pair["generation_a_id"]), generations.get(pair["generation_b_id"])]
    failed = [g for g in sides if g is None or g["status"] == GenerationStatus.FAILED.value]
    if failed:
        return "failed", next((g["error"] for g in failed if g is not None), "a clip is missing")
    if all(g is not None and g["status"] == GenerationStatus.COMPLETED.value for g in sides):
        return "ready", None
    return "pending", None


def _ref(adapter: Any) -> AdapterRef | None:
    return AdapterRef(id=adapter.id, name=adapter.name, version=adapter.version) if adapter else None


def _label(adapter: Any) -> str:
    return f"{adapter.name} {adapter.version}" if adapter else "Base model"
