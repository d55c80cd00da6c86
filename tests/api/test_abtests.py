"""Blind A/B tests over HTTP with a real generation worker on the tiny MusicGen: tests made of pairs whose clips are
queued together and served by play order, blind until voted on; refusals that leave nothing; votes and the results
(in A/B terms whatever the play order, the figures of `tunelab.stats`); the leaderboard; the feedback that
`/api/adapters/compare` carries; and the datasets made from votes and from ratings, down to their exports' lineage.

One studio (app, data dir, worker) serves the module, as in test_generations.py. Clips are 0.3 s. Tests count from
where they start (the leaderboard, totals) since the tests before them voted too. Which side of a pair plays first
is drawn at random; tests that need a given order set it in the database (`play_order`)."""

from __future__ import annotations

import io
import json
import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

from tunelab import stats
from tunelab.app import create_app
from tunelab.store import generations as generation_store

from .conftest import Api, Studio, make_settings

UNKNOWN_ADAPTER = "adp-0123456789abcdef"
UNKNOWN_TEST = "ab-0123456789abcdef"
UNKNOWN_PAIR = "pair-0123456789abcdef"
CLIP_S = 0.3


# --- helpers ---------------------------------------------------------------------------------------------------------


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    return Api.error(response, status, code)


def create(studio: Studio, **body: Any) -> dict[str, Any]:
    body.setdefault("adapter_a_id", None)
    body.setdefault("duration_s", CLIP_S)
    response = studio.client.post("/api/abtests", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def made(studio: Studio, **body: Any) -> dict[str, Any]:
    """A test created and waited for: every pair ready to vote on."""
    created = create(studio, **body)
    studio.wait()
    test = get(studio, created["id"])
    assert test["status"] == "voting" and all(p["status"] == "ready" for p in test["pairs"]), test
    return test


def get(studio: Studio, abtest_id: str) -> dict[str, Any]:
    return dict(studio.api.get(f"/api/abtests/{abtest_id}"))


def vote(studio: Studio, abtest_id: str, pair_id: str, choice: str) -> dict[str, Any]:
    response = studio.client.post(f"/api/abtests/{abtest_id}/votes", json={"pair_id": pair_id, "choice": choice})
    assert response.status_code == 200, response.text
    return dict(response.json())


def stored(studio: Studio, abtest_id: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The test's pairs (by position) and their generations (by id) as the database holds them."""
    with studio.services.db.read() as con:
        pairs = generation_store.pairs(con, [abtest_id])
        generations = generation_store.many(
            con, [g for p in pairs for g in (p["generation_a_id"], p["generation_b_id"])]
        )
    return pairs, generations


def play_order(studio: Studio, abtest_id: str, a_first: list[bool]) -> None:
    """Set which side of each pair plays first (drawn at random when the test is made)."""
    pairs, _ = stored(studio, abtest_id)
    assert len(pairs) == len(a_first)
    with studio.services.db.transaction() as con:
        for pair, first in zip(pairs, a_first, strict=True):
            con.execute("UPDATE abtest_pairs SET a_first = ? WHERE id = ?", [first, pair["id"]])


def choice_for(winner: str, a_first: bool) -> str:
    """The choice (as played) that votes for side `winner` ("a", "b" or "tie")."""
    if winner == "tie":
        return "tie"
    return "first" if (winner == "a") == a_first else "second"


def vote_for(studio: Studio, abtest_id: str, winners: list[str]) -> dict[str, Any]:
    """Vote on every pair, by position, for side "a", "b" or "tie" (the order read from the database)."""
    pairs, _ = stored(studio, abtest_id)
    answer: dict[str, Any] = {}
    for pair, winner in zip(pairs, winners, strict=True):
        answer = vote(studio, abtest_id, pair["id"], choice_for(winner, pair["a_first"]))
    return answer


def rate(studio: Studio, generation_id: str, rating: int) -> None:
    response = studio.client.post(f"/api/generations/{generation_id}/rating", json={"rating": rating})
    assert response.status_code == 200, response.text


def clip(studio: Studio, url: str) -> bytes:
    response = studio.client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    return response.content


def generation_audio(studio: Studio, generation_id: str) -> bytes:
    return studio.services.generations.audio(generation_id).read_bytes()


def row_counts(studio: Studio) -> tuple[int, int, int]:
    with studio.services.db.read() as con:
        found = con.execute("SELECT (SELECT count(*) FROM abtests), (SELECT count(*) FROM abtest_pairs), "
                            "(SELECT count(*) FROM generations)").fetchone()  # fmt: skip
    assert found is not None
    return int(found[0]), int(found[1]), int(found[2])


@contextmanager
def held(studio: Studio, make: bool = True) -> Iterator[list[str]]:
    """Jobs queued inside are held back from the worker (their pairs stay pending), in the order they were queued;
    on leaving they are queued for real (`make`) or left pending."""
    service = studio.services.generations
    queued: list[str] = []
    setattr(service, "enqueue", queued.extend)  # noqa: B010 (mypy: a method is not assignable)
    try:
        yield queued
    finally:
        delattr(service, "enqueue")
        if make:
            service.enqueue(list(queued))


def dataset(studio: Studio, dataset_id: str) -> dict[str, Any]:
    return dict(studio.api.get(f"/api/datasets/{dataset_id}"))


def export_lineage(studio: Studio, dataset_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The dataset exported: the lineage of its export, and the lines of its JSONL."""
    response = studio.client.post(f"/api/datasets/{dataset_id}/export")
    assert response.status_code == 201, response.text
    artifact = response.json()
    lines = [json.loads(line) for line in Path(artifact["uri"]).read_text().splitlines()]
    return dict(studio.api.get(f"/api/artifacts/{artifact['id']}/lineage")), lines


# --- making a test ---------------------------------------------------------------------------------------------------


def test_a_test_queues_both_sides_of_each_pair_together_and_serves_them_as_wavs_once_made(studio: Studio) -> None:
    adapter = studio.adapter("ab-lofi", noise_seed=11)
    listed_before = studio.total()
    with held(studio) as queued:
        created = create(studio, adapter_a_id=adapter["id"], adapter_b_id=None, seed=40,
                         prompts=["warm pad", "bright bells"], samples_per_prompt=2)  # fmt: skip
        assert created["status"] == "generating" and (created["pairs_total"], created["pairs_ready"]) == (4, 0)
        assert created["name"] == "ab-lofi 1 vs Base model" and created["model_id"] == "tiny"
        assert created["adapter_a"] == {"id": adapter["id"], "name": "ab-lofi", "version": "1"}
        assert created["adapter_b"] is None and created["votes"] == 0 and created["dataset_id"] is None
        assert (created["seed"], created["duration_s"], created["samples_per_prompt"]) == (40, CLIP_S, 2)
        assert created["results"] == stats.ab_results(0, 0, 0)
        pairs = created["pairs"]
        assert [(p["position"], p["prompt"]) for p in pairs] == [(0, "warm pad"), (1, "warm pad"),
                                                                 (2, "bright bells"), (3, "bright bells")]  # fmt: skip
        for pair in pairs:
            assert pair["status"] == "pending" and pair["first"] == pair["second"] == {"audio_url": None}
            assert pair["vote"] is None and pair["first_is"] is None

        rows, generations = stored(studio, created["id"])
        # both sides of a pair queued one after the other (one batch of the worker), pair after pair
        assert queued == [g for row in rows for g in (row["generation_a_id"], row["generation_b_id"])]
        for row in rows:
            a, b = generations[row["generation_a_id"]], generations[row["generation_b_id"]]
            assert row["seed"] == 40 + row["position"] and a["seed"] == b["seed"] == row["seed"]  # the same seed
            assert (a["adapter_id"], b["adapter_id"]) == (adapter["id"], None)  # a null side: the base model
            assert a["prompt"] == b["prompt"] == row["prompt"] and a["duration_s"] == b["duration_s"] == CLIP_S
            assert a["abtest_id"] == b["abtest_id"] == created["id"] and a["status"] == "pending"

        # nothing is playable, nor votable, before both clips exist; the refusal names no generation
        pair = pairs[0]
        for side in ("first", "second"):
            response = studio.client.get(
                f"/api/abtests/{created['id']}/pairs/{pair['id']}/audio", params={"side": side}
            )
            found = error(response, 409, "generation_not_completed")
            assert not any(g in response.text for g in generations), found
        found = error(studio.client.post(f"/api/abtests/{created['id']}/votes",
                                         json={"pair_id": pair["id"], "choice": "first"}), 409, "pair_not_ready")  # fmt: skip
        assert found["details"]["status"] == "pending"
    studio.wait()

    test = get(studio, created["id"])
    assert test["status"] == "voting" and test["pairs_ready"] == 4
    frame = 32000 / studio.model()["frame_rate"]
    for pair in test["pairs"]:
        assert pair["status"] == "ready" and pair["error"] is None
        sides = {}
        for side in ("first", "second"):
            url = pair[side]["audio_url"]
            assert url == f"/api/abtests/{test['id']}/pairs/{pair['id']}/audio?side={side}"
            audio, rate = soundfile.read(io.BytesIO(clip(studio, url)))
            assert rate == 32000 and abs(len(audio) - CLIP_S * rate) <= frame and np.abs(audio).max() > 0
            sides[side] = audio
        assert not np.array_equal(sides["first"], sides["second"])  # the adapter changes the clip
    # A/B clips are not listed among the studio's generations (they would tell the sides apart)
    assert studio.total() == listed_before
    assert not set(generations) & {item["id"] for item in studio.jobs()}
    assert studio.jobs(adapter_id=adapter["id"]) == []


def test_which_clip_plays_first_is_hidden_until_the_vote_then_told_truly(studio: Studio) -> None:
    adapter = studio.adapter("ab-blind", noise_seed=12)
    test = made(studio, adapter_a_id=adapter["id"], prompts=["soft rain", "fast drums", "slow choir"])
    rows, generations = stored(studio, test["id"])
    secrets = set(generations) | {g["audio_id"] for g in generations.values()}

    # blind: no pair says which side plays first, and nothing in the test names a clip or a generation
    assert all(pair["first_is"] is None for pair in test["pairs"])
    assert set(test["pairs"][0]) == {"id", "position", "prompt", "status", "error", "first", "second", "vote",
                                     "voted_at", "first_is"}  # fmt: skip
    text = json.dumps(test) + json.dumps(studio.api.get("/api/abtests", page_size=500))
    assert not any(secret in text for secret in secrets)
    for pair in test["pairs"]:
        for side in ("first", "second"):
            response = studio.client.get(pair[side]["audio_url"])
            assert not any(secret in str(response.headers) for secret in secrets)

    for pair, row in zip(test["pairs"], rows, strict=True):
        first, second = clip(studio, pair["first"]["audio_url"]), clip(studio, pair["second"]["audio_url"])
        answer = vote(studio, test["id"], pair["id"], "tie")
        first_is = answer["pair"]["first_is"]
        assert first_is == ("a" if row["a_first"] else "b")
        a_audio = generation_audio(studio, row["generation_a_id"])
        b_audio = generation_audio(studio, row["generation_b_id"])
        assert a_audio != b_audio
        assert (first, second) == ((a_audio, b_audio) if first_is == "a" else (b_audio, a_audio))
    voted = get(studio, test["id"])
    assert [p["first_is"] for p in voted["pairs"]] == ["a" if row["a_first"] else "b" for row in rows]


def test_base_against_base_gives_b_the_next_seed_and_defaults_apply(studio: Studio) -> None:
    test = made(studio, adapter_a_id=None, prompts=["lonely flute"], seed=7)
    assert test["name"] == "Base model vs Base model" and test["adapter_a"] is None and test["adapter_b"] is None
    rows, generations = stored(studio, test["id"])
    a, b = generations[rows[0]["generation_a_id"]], generations[rows[0]["generation_b_id"]]
    assert (a["seed"], b["seed"]) == (7, 8) and a["adapter_id"] is None and b["adapter_id"] is None
    assert generation_audio(studio, a["id"]) != generation_audio(studio, b["id"])

    # an adapter against itself: B also takes the next seed
    adapter = studio.adapter("ab-self", noise_seed=13)
    with held(studio, make=False):
        itself = create(studio, adapter_a_id=adapter["id"], adapter_b_id=adapter["id"], prompts=["x"], seed=20)
    rows, generations = stored(studio, itself["id"])
    assert [generations[rows[0][f"generation_{s}_id"]]["seed"] for s in "ab"] == [20, 21]

    # the defaults: 5 s, one sample per prompt, a drawn seed; the play order is drawn per pair
    prompts = [f"prompt {n}" for n in range(40)]
    with held(studio, make=False):  # 5 s clips are not made here: only what the test says of them is read
        response = studio.client.post("/api/abtests", json={"adapter_a_id": None, "prompts": prompts})
    assert response.status_code == 201, response.text
    defaults = response.json()
    assert defaults["duration_s"] == 5.0 and defaults["samples_per_prompt"] == 1 and defaults["pairs_total"] == 40
    assert 0 <= defaults["seed"] <= 2**31 - 1 and defaults["status"] == "generating"
    rows, generations = stored(studio, defaults["id"])
    for row in rows:
        a, b = generations[row["generation_a_id"]], generations[row["generation_b_id"]]
        assert row["seed"] == (defaults["seed"] + row["position"]) % 2**31 == a["seed"]
        assert b["seed"] == (a["seed"] + 1) % 2**31 and a["duration_s"] == 5.0
    assert {row["a_first"] for row in rows} == {True, False}  # 40 draws: both orders (all one way: p = 2^-39)


def test_a_model_shorter_than_five_seconds_makes_its_limit_the_default(tmp_path: Path, tiny_model: Path) -> None:
    """And without a current model there is no test, nor a leaderboard (a studio of its own, no worker)."""
    with TestClient(create_app(make_settings(tmp_path))) as client:
        body = {"adapter_a_id": None, "prompts": ["a"], "duration_s": CLIP_S}
        error(client.post("/api/abtests", json=body), 409, "no_current_model")
        error(client.get("/api/leaderboard"), 409, "no_current_model")
        shutil.copytree(tiny_model, tmp_path / "models" / "short")
        model = {"path": str(tmp_path / "models" / "short"), "id": "short", "max_duration_s": 2}
        assert client.post("/api/models", json=model).status_code == 201
        services = client.app.state.services  # type: ignore[attr-defined]
        setattr(services.generations, "enqueue", lambda ids: None)  # noqa: B010 (no worker: nothing is made)
        response = client.post("/api/abtests", json={"adapter_a_id": None, "prompts": ["a"]})
        assert response.status_code == 201 and response.json()["duration_s"] == 2.0, response.text
        error(client.post("/api/abtests", json={**body, "duration_s": 2.5}), 422, "duration_too_long")
        assert client.get("/api/leaderboard").json() == {"model_id": "short", "votes": 0, "entries": []}
        error(client.get("/api/leaderboard", params={"model_id": "nope"}), 404, "model_not_found")


def test_tests_that_cannot_be_made_are_refused_leaving_nothing(studio: Studio) -> None:
    before, listed = row_counts(studio), studio.api.get("/api/abtests")["total"]
    good = {"adapter_a_id": None, "prompts": ["calm"], "duration_s": CLIP_S}

    found = error(studio.client.post("/api/abtests", json={**good, "prompts": ["p"] * 11, "samples_per_prompt": 20}),
                  422, "too_many_pairs")  # fmt: skip
    assert (found["details"]["pairs"], found["details"]["max_pairs"]) == (220, 200)
    error(studio.client.post("/api/abtests", json={**good, "prompts": ["p"] * 50, "samples_per_prompt": 5}), 422,
          "too_many_pairs")  # fmt: skip
    longest = studio.model()["max_duration_s"]
    found = error(studio.client.post("/api/abtests", json={**good, "duration_s": longest + 0.5}), 422,
                  "duration_too_long")  # fmt: skip
    assert found["details"]["max_duration_s"] == longest
    for bad in ({**good, "prompts": []}, {**good, "prompts": ["p"] * 51}, {**good, "samples_per_prompt": 0},
                {**good, "samples_per_prompt": 21}, {**good, "speed": 2}, {"prompts": ["calm"]},
                {"adapter_a_id": None}, {**good, "prompts": [""]}, {**good, "seed": -1}, {**good, "duration_s": 0},
                {**good, "adapter_a_id": "not an id!"}, {**good, "name": " "}, {**good, "prompts": "calm"}):  # fmt: skip
        error(studio.client.post("/api/abtests", json=bad), 422, "validation_error")

    error(studio.client.post("/api/abtests", json={**good, "adapter_a_id": UNKNOWN_ADAPTER}), 404, "adapter_not_found")
    error(studio.client.post("/api/abtests", json={**good, "adapter_b_id": UNKNOWN_ADAPTER}), 404, "adapter_not_found")
    deleted = studio.adapter("ab-gone")
    assert studio.client.delete(f"/api/adapters/{deleted['id']}").status_code == 200
    for side in ("adapter_a_id", "adapter_b_id"):
        found = error(studio.client.post("/api/abtests", json={**good, side: deleted["id"]}), 400, "adapter_deleted")
        assert found["details"]["adapter_id"] == deleted["id"]
    studio.add_model("tiny-b")  # a second model; tiny stays current
    other = studio.adapter("ab-other-model", base_model_id="tiny-b", active=False)
    found = error(studio.client.post("/api/abtests", json={**good, "adapter_b_id": other["id"]}), 400,
                  "adapter_incompatible")  # fmt: skip
    assert "tiny-b" in found["details"]["reason"] and other["id"] not in {
        a["id"] for a in found["details"]["compatible_adapters"]
    }
    assert row_counts(studio) == before and studio.api.get("/api/abtests")["total"] == listed

    # an inactive version is accepted: comparing the versions of a name, of which one is active, is the point
    old = studio.adapter("ab-versions", "1", noise_seed=14)
    new = studio.adapter("ab-versions", "2", noise_seed=15)
    assert studio.api.get(f"/api/adapters/{old['id']}")["active"] is False
    test = made(studio, adapter_a_id=old["id"], adapter_b_id=new["id"], prompts=["calm"])
    assert test["name"] == "ab-versions 1 vs ab-versions 2" and test["adapter_a"]["id"] == old["id"]
    rows, generations = stored(studio, test["id"])
    assert generations[rows[0]["generation_a_id"]]["adapter_id"] == old["id"]
    assert row_counts(studio) == (before[0] + 1, before[1] + 1, before[2] + 2)


# --- votes and results -----------------------------------------------------------------------------------------------


def test_a_vote_reveals_the_order_and_a_new_vote_replaces_the_old(studio: Studio) -> None:
    adapter = studio.adapter("ab-votes", noise_seed=16)
    test = made(studio, adapter_a_id=adapter["id"], prompts=["calm", "loud"])
    rows, _ = stored(studio, test["id"])
    pair, row = test["pairs"][0], rows[0]

    answer = vote(studio, test["id"], pair["id"], "first")
    assert set(answer) == {"pair", "results"}
    assert answer["pair"]["id"] == pair["id"] and answer["pair"]["vote"] == "first"
    assert answer["pair"]["first_is"] == ("a" if row["a_first"] else "b") and answer["pair"]["voted_at"]
    assert answer["pair"]["first"] == pair["first"] and answer["pair"]["status"] == "ready"
    a_won = bool(row["a_first"])
    assert answer["results"] == stats.ab_results(int(a_won), int(not a_won), 0)

    answer = vote(studio, test["id"], pair["id"], "tie")  # replaces the first vote
    assert answer["pair"]["vote"] == "tie" and answer["results"] == stats.ab_results(0, 0, 1)
    now = get(studio, test["id"])
    assert (now["votes"], now["status"], now["results"]) == (1, "voting", stats.ab_results(0, 0, 1))
    assert now["pairs"][0]["vote"] == "tie" and now["pairs"][1]["first_is"] is None  # the other one stays blind

    error(studio.client.post(f"/api/abtests/{test['id']}/votes", json={"pair_id": UNKNOWN_PAIR, "choice": "first"}),
          404, "pair_not_found")  # fmt: skip
    other = made(studio, adapter_a_id=None, prompts=["other"])
    found = error(studio.client.post(f"/api/abtests/{test['id']}/votes",
                                     json={"pair_id": other["pairs"][0]["id"], "choice": "first"}), 404,
                  "pair_not_found")  # fmt: skip
    assert found["details"] == {"abtest_id": test["id"], "pair_id": other["pairs"][0]["id"]}
    error(studio.client.post(f"/api/abtests/{UNKNOWN_TEST}/votes", json={"pair_id": pair["id"], "choice": "first"}),
          404, "abtest_not_found")  # fmt: skip
    error(studio.client.get(f"/api/abtests/{UNKNOWN_TEST}"), 404, "abtest_not_found")
    error(studio.client.get(f"/api/abtests/{test['id']}/pairs/{other['pairs'][0]['id']}/audio"), 404, "pair_not_found")
    for bad in ({"pair_id": pair["id"], "choice": "left"}, {"pair_id": pair["id"], "choice": "FIRST"},
                {"pair_id": pair["id"], "choice": None}, {"pair_id": pair["id"]}, {"choice": "first"},
                {"pair_id": pair["id"], "choice": "first", "note": "x"}, {"pair_id": pair["id"], "choice": 1}):  # fmt: skip
        error(studio.client.post(f"/api/abtests/{test['id']}/votes", json=bad), 422, "validation_error")
    assert get(studio, test["id"])["results"] == stats.ab_results(0, 0, 1)


def test_results_count_votes_in_a_b_terms_whatever_the_play_order(studio: Studio) -> None:
    adapter = studio.adapter("ab-results", noise_seed=17)
    test = made(studio, adapter_a_id=adapter["id"], prompts=["p1", "p2", "p3", "p4"], samples_per_prompt=2,
                name="results")  # fmt: skip
    order = [True, False, True, False, True, False, True, False]
    play_order(studio, test["id"], order)
    pairs = test["pairs"]
    assert get(studio, test["id"])["results"] == stats.ab_results(0, 0, 0)

    # "first" on a pair that plays B first is a vote for B
    answer = vote(studio, test["id"], pairs[1]["id"], "first")
    assert answer["pair"]["first_is"] == "b" and answer["results"] == stats.ab_results(0, 1, 0)
    answer = vote(studio, test["id"], pairs[0]["id"], "first")
    assert answer["pair"]["first_is"] == "a" and answer["results"] == stats.ab_results(1, 1, 0)
    results = answer["results"]
    assert results["enough_votes"] is False and results["verdict"] == "undecided" and "Only 2" in results["warning"]

    # the others: A wins four, B one, one tie; the test is completed once every pair is voted
    winners = ["a", "b", "a", "b", "a", "tie", "a", "a"]
    for index in range(2, 8):
        answer = vote(studio, test["id"], pairs[index]["id"], choice_for(winners[index], order[index]))
        assert get(studio, test["id"])["status"] == ("completed" if index == 7 else "voting")
    assert answer["results"] == stats.ab_results(5, 2, 1)
    # pair 1's vote changes to A: six wins for A, one for B, one tie
    final = vote(studio, test["id"], pairs[1]["id"], choice_for("a", order[1]))["results"]
    assert final == stats.ab_results(6, 1, 1)
    assert (final["a_wins"], final["b_wins"], final["ties"], final["decisive"]) == (6, 1, 1, 7)
    assert final["win_rate_a"] == round(6 / 7, 4)
    z = 1.959963984540054  # the Wilson interval and the exact sign test, worked out here
    centre, half = (6 + z * z / 2) / (7 + z * z), z * math.sqrt(6 * 1 / 7 + z * z / 4) / (7 + z * z)
    assert final["win_rate_ci"] == pytest.approx([centre - half, centre + half], abs=1e-4)
    assert final["p_value"] == pytest.approx(2 * (math.comb(7, 6) + math.comb(7, 7)) / 2**7)  # 0.125
    assert final["significant"] is False and final["enough_votes"] is True

    test = get(studio, test["id"])
    assert test["status"] == "completed" and test["votes"] == 8 and test["results"] == final
    listed = next(t for t in studio.api.get("/api/abtests", page_size=500)["items"] if t["id"] == test["id"])
    assert (listed["votes"], listed["verdict"], listed["win_rate_a"]) == (8, final["verdict"], round(6 / 7, 4))
    assert (listed["status"], listed["pairs_total"], listed["pairs_ready"]) == ("completed", 8, 8)
    assert "pairs" not in listed and "results" not in listed


# --- the leaderboard -------------------------------------------------------------------------------------------------


def outcome(choice: str, first_is: str) -> str:
    """A vote as played, in A/B terms: "first" when A won, "second" when B won, or "tie"."""
    if choice == "tie":
        return "tie"
    return "first" if (choice == "first") == (first_is == "a") else "second"


def comparisons_seen_through_the_api(studio: Studio) -> list[tuple[str, str, str]]:
    """Every A/B vote of the current model's tests, as (A, B, outcome) read from the API alone (first_is is told
    once voted), in the order the tests were made."""
    found = []
    tests = sorted(studio.api.get("/api/abtests", page_size=500)["items"], key=lambda t: (t["created_at"], t["id"]))
    for summary in tests:
        if summary["votes"] == 0 or summary["model_id"] != "tiny":
            continue
        test = get(studio, summary["id"])
        a = test["adapter_a"]["id"] if test["adapter_a"] else "base"
        b = test["adapter_b"]["id"] if test["adapter_b"] else "base"
        for pair in test["pairs"]:
            if pair["vote"] is None or a == b:
                continue
            found.append((a, b, outcome(pair["vote"], pair["first_is"])))
    return found


def test_the_leaderboard_ranks_adapters_and_the_base_model_by_every_vote_between_them(studio: Studio) -> None:
    board = studio.api.get("/api/leaderboard")
    votes_before = board["votes"]
    base_before = next(
        (e for e in board["entries"] if e["id"] == "base"), {"wins": 0, "losses": 0, "ties": 0, "games": 0}
    )
    strong, weak = studio.adapter("lb-strong", noise_seed=18), studio.adapter("lb-weak", noise_seed=19)

    test = made(studio, adapter_a_id=strong["id"], prompts=["a", "b", "c", "d"])
    vote_for(studio, test["id"], ["a", "a", "a", "tie"])  # strong beats the base model 3-0, one tie
    test = made(studio, adapter_a_id=weak["id"], prompts=["a", "b"])
    vote_for(studio, test["id"], ["a", "b"])  # weak and the base model: one each
    test = made(studio, adapter_a_id=weak["id"], adapter_b_id=strong["id"], prompts=["a", "b"])
    vote_for(studio, test["id"], ["b", "b"])  # strong (B) beats weak twice
    test = made(studio, adapter_a_id=None, prompts=["a"])
    vote_for(studio, test["id"], ["a"])  # the base model against itself: no game

    board = studio.api.get("/api/leaderboard")
    assert board["model_id"] == "tiny" and board["votes"] == votes_before + 8  # the base model's own test: none
    assert board["votes"] == len(comparisons_seen_through_the_api(studio))
    entries = {e["id"]: e for e in board["entries"]}
    assert {strong["id"], weak["id"], "base"} <= set(entries)
    one = entries[strong["id"]]
    assert (one["wins"], one["losses"], one["ties"], one["games"]) == (5, 0, 1, 6)
    assert one["adapter"] == {"id": strong["id"], "name": "lb-strong", "version": "1"} and one["ci"] is not None
    assert one["ci"][0] <= one["score"] <= one["ci"][1]
    two = entries[weak["id"]]
    assert (two["wins"], two["losses"], two["ties"], two["games"]) == (1, 3, 0, 4)
    assert two["ci"] is None  # under 5 games
    base = entries["base"]
    assert base["adapter"] is None
    assert [base[k] - base_before[k] for k in ("wins", "losses", "ties", "games")] == [1, 4, 1, 6]
    assert one["rank"] < two["rank"] and one["score"] > two["score"]

    # the whole board is the Bradley–Terry fit (ties half a win each) of the votes as the API tells them
    expected = stats.bradley_terry(comparisons_seen_through_the_api(studio), bootstrap=200, seed=0)
    for entry in expected:
        entry["ci"] = entry["ci"] if entry["games"] >= 5 else None
    assert [{k: v for k, v in e.items() if k != "adapter"} for e in board["entries"]] == expected
    assert [e["rank"] for e in board["entries"]] == sorted(e["rank"] for e in board["entries"])
    assert studio.api.get("/api/leaderboard") == board  # the same votes, the same intervals
    assert studio.api.get("/api/leaderboard", model_id="tiny") == board


# --- feedback in compare ---------------------------------------------------------------------------------------------


def test_compare_carries_the_ratings_and_the_votes_between_the_two_adapters(studio: Studio) -> None:
    one, two = studio.adapter("fb-one", noise_seed=20), studio.adapter("fb-two", noise_seed=21)
    ratings = {one["id"]: [5, 4, 5], two["id"]: [2, 1]}
    jobs = [(studio.generate(prompt="feedback", adapter_id=adapter_id, seed=seed), rating)
            for adapter_id, values in ratings.items() for seed, rating in enumerate(values)]  # fmt: skip
    unrated = studio.generate(prompt="feedback", adapter_id=one["id"])
    studio.wait()
    for job, rating in jobs:
        rate(studio, job["id"], rating)
    assert studio.job(unrated["id"])["status"] == "completed"

    empty = studio.api.get("/api/adapters/compare", ids=f"{one['id']},{two['id']}")["feedback"]
    assert empty["ab"] == stats.ab_results(0, 0, 0) and empty["ab_pair"] == [one["id"], two["id"]]

    test = made(studio, adapter_a_id=one["id"], adapter_b_id=two["id"], prompts=["x", "y"])
    vote_for(studio, test["id"], ["a", "tie"])  # one wins, a tie
    test = made(studio, adapter_a_id=two["id"], adapter_b_id=one["id"], prompts=["x", "y"])
    vote_for(studio, test["id"], ["a", "b"])  # the other way round: two wins one, one wins one
    # and a test with the base model, which is not between the two
    test = made(studio, adapter_a_id=one["id"], prompts=["x"])
    vote_for(studio, test["id"], ["b"])

    feedback = studio.api.get("/api/adapters/compare", ids=f"{one['id']},{two['id']}")["feedback"]
    assert feedback["ratings"] == {i: stats.rating_summary(values) for i, values in ratings.items()}
    assert feedback["rating_test"] == stats.compare_ratings(ratings[one["id"]], ratings[two["id"]])
    assert feedback["ab"] == stats.ab_results(2, 1, 1)  # one as A: 2 wins, two: 1, 1 tie
    assert feedback["ab_pair"] == [one["id"], two["id"]]
    significant = (["average_rating"] if feedback["rating_test"]["significant"] else []) + (
        ["ab_win_rate"] if feedback["ab"]["significant"] else []
    )
    assert feedback["significant"] == significant

    reverse = studio.api.get("/api/adapters/compare", ids=f"{two['id']},{one['id']}")["feedback"]
    assert reverse["ab"] == stats.ab_results(1, 2, 1) and reverse["ab_pair"] == [two["id"], one["id"]]
    assert reverse["rating_test"] == stats.compare_ratings(ratings[two["id"]], ratings[one["id"]])


# --- datasets from feedback ------------------------------------------------------------------------------------------


def test_a_preference_dataset_is_made_of_a_tests_decisive_votes(studio: Studio) -> None:
    adapter = studio.adapter("ds-votes", noise_seed=22)
    test = made(studio, adapter_a_id=adapter["id"], prompts=["one", "two", "three", "four"], name="dataset votes")
    play_order(studio, test["id"], [True, False, False, True])
    error(studio.client.post(f"/api/abtests/{test['id']}/dataset"), 422, "no_decisive_votes")  # no vote yet
    vote_for(studio, test["id"], ["a", "b", "tie", "b"])
    rows, generations = stored(studio, test["id"])

    response = studio.client.post(f"/api/abtests/{test['id']}/dataset")
    assert response.status_code == 201, response.text
    made_ = response.json()
    assert made_["name"] == "dataset votes preferences" and made_["type"] == "preference"
    assert made_["item_count"] == 3 and made_["total_duration_s"] == pytest.approx(3 * 2 * CLIP_S)
    items = {item["source"]: item for item in dataset(studio, made_["id"])["items"]}
    expected = {}
    for row, winner in zip(rows, ["a", "b", "tie", "b"], strict=True):
        if winner == "tie":
            continue  # ties are skipped
        a, b = generations[row["generation_a_id"]], generations[row["generation_b_id"]]
        chosen, rejected = (a, b) if winner == "a" else (b, a)
        expected[f"abtest:{test['id']}:{row['id']}"] = (row["prompt"], chosen["audio_id"], rejected["audio_id"])
    assert {
        source: (i["prompt"], i["chosen_audio_id"], i["rejected_audio_id"]) for source, i in items.items()
    } == expected
    assert all(i["rating"] is None and i["audio_id"] is None for i in items.values())
    assert get(studio, test["id"])["dataset_id"] == made_["id"]

    # a made-up name gets a number; a name given must be free
    again = studio.client.post(f"/api/abtests/{test['id']}/dataset", json={})
    assert again.status_code == 201 and again.json()["name"] == "dataset votes preferences 2", again.text
    found = error(studio.client.post(f"/api/abtests/{test['id']}/dataset", json={"name": "dataset votes preferences"}),
                  409, "dataset_name_taken")  # fmt: skip
    assert found["details"]["dataset_id"] == made_["id"]
    named = studio.client.post(f"/api/abtests/{test['id']}/dataset", json={"name": "votes, named"})
    assert named.status_code == 201 and named.json()["name"] == "votes, named", named.text
    error(studio.client.post(f"/api/abtests/{test['id']}/dataset", json={"name": ""}), 422, "validation_error")
    error(studio.client.post(f"/api/abtests/{test['id']}/dataset", json={"size": 3}), 422, "validation_error")
    error(studio.client.post(f"/api/abtests/{UNKNOWN_TEST}/dataset"), 404, "abtest_not_found")

    # the export trains on the winners' and the losers' clips, and its lineage names the test
    lineage, lines = export_lineage(studio, made_["id"])
    assert lineage["dataset"] == {"id": made_["id"], "name": "dataset votes preferences", "type": "preference",
                                  "generations": [], "abtests": [test["id"]], "other_items": 0}  # fmt: skip
    audio_of = {generation_audio(studio, g["id"]): g["audio_id"] for g in generations.values()}
    exported = {(audio_of[Path(line["chosen_path"]).read_bytes()], audio_of[Path(line["rejected_path"]).read_bytes()])
                for line in lines}  # fmt: skip
    assert len(lines) == 3 and exported == {(chosen, rejected) for _, chosen, rejected in expected.values()}

    # ties alone make no dataset
    ties = made(studio, adapter_a_id=adapter["id"], prompts=["tied"])
    vote(studio, ties["id"], ties["pairs"][0]["id"], "tie")
    found = error(studio.client.post(f"/api/abtests/{ties['id']}/dataset"), 422, "no_decisive_votes")
    assert found["details"]["abtest_id"] == ties["id"] and get(studio, ties["id"])["dataset_id"] is None


def test_a_supervised_dataset_is_made_of_the_rated_generations(studio: Studio) -> None:
    adapter = studio.adapter("ds-rated", noise_seed=23)
    jobs = {
        "top": studio.generate(prompt="rdsx warm piano", adapter_id=adapter["id"], seed=1),
        "fair": studio.generate(prompt="rdsx warm piano", adapter_id=adapter["id"], seed=2),
        "base": studio.generate(prompt="RDSX bright bells", seed=3),
        "unrated": studio.generate(prompt="rdsx warm piano", adapter_id=adapter["id"], seed=4),
        "elsewhere": studio.generate(prompt="a prompt of no interest", adapter_id=adapter["id"], seed=5),
    }
    studio.wait()
    for key, rating in (("top", 5), ("fair", 3), ("base", 4), ("elsewhere", 5)):
        rate(studio, jobs[key]["id"], rating)
    done = {key: studio.job(job["id"]) for key, job in jobs.items()}
    # a job that failed, yet says it is rated and names a clip: not an item (only completed jobs are)
    with studio.services.db.transaction() as con:
        current = studio.services.generations.current_model()
        row = studio.services.generations.new_row("rdsx failed", CLIP_S, 1, None, current, adapter["id"], None)
        generation_store.insert(con, {**row, "status": "failed", "error": "boom", "rating": 5,
                                      "audio_id": done["unrated"]["audio_id"]})  # fmt: skip

    def from_ratings(**body: Any) -> dict[str, Any]:
        response = studio.client.post("/api/datasets/from-ratings", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def items(made_: dict[str, Any]) -> dict[str, tuple[str, int, str]]:
        return {i["source"]: (i["prompt"], i["rating"], i["audio_id"]) for i in dataset(studio, made_["id"])["items"]}

    def expected(*keys: str) -> dict[str, tuple[str, int, str]]:
        return {
            f"generation:{done[k]['id']}": (done[k]["prompt"], done[k]["rating"], done[k]["audio_id"]) for k in keys
        }

    good = from_ratings(name="rated rdsx", min_rating=4, prompt="rdsx")  # the prompt matched in any case
    assert good["type"] == "supervised" and good["item_count"] == 2 and good["description"] == "Generations rated 4+"
    assert good["total_duration_s"] == pytest.approx(2 * CLIP_S)
    assert items(good) == expected("top", "base")
    mine = from_ratings(name="rated rdsx of the adapter", min_rating=3, adapter_id=adapter["id"], prompt="rdsx",
                        description="mine")  # fmt: skip
    assert items(mine) == expected("top", "fair") and mine["description"] == "mine"
    assert items(from_ratings(name="rated rdsx 5", min_rating=5, prompt="RDSX")) == expected("top")

    error(studio.client.post("/api/datasets/from-ratings", json={"name": "none", "min_rating": 1,
                                                                 "prompt": "no prompt has this"}), 422,
          "no_rated_generations")  # fmt: skip
    error(studio.client.post("/api/datasets/from-ratings", json={"name": "none", "min_rating": 1,
                                                                 "adapter_id": UNKNOWN_ADAPTER}), 404,
          "adapter_not_found")  # fmt: skip
    found = error(studio.client.post("/api/datasets/from-ratings", json={"name": "rated rdsx", "min_rating": 4}), 409,
                  "dataset_name_taken")  # fmt: skip
    assert found["details"]["dataset_id"] == good["id"]
    for bad in ({"name": "x", "min_rating": 0}, {"name": "x", "min_rating": 6}, {"min_rating": 4}, {"name": "x"},
                {"name": "x", "min_rating": 4, "extra": 1}, {"name": "x", "min_rating": 4, "prompt": ""}):  # fmt: skip
        error(studio.client.post("/api/datasets/from-ratings", json=bad), 422, "validation_error")

    lineage, lines = export_lineage(studio, good["id"])
    assert lineage["dataset"] == {"id": good["id"], "name": "rated rdsx", "type": "supervised",
                                  "generations": sorted([done["top"]["id"], done["base"]["id"]]), "abtests": [],
                                  "other_items": 0}  # fmt: skip
    clips = sorted(Path(line["audio_path"]).read_bytes() for line in lines)
    assert clips == sorted(studio.audio(done[k]["id"]) for k in ("top", "base"))
    assert sorted(line["rating"] for line in lines) == [4, 5]
