"""Blind A/B tests in a real browser: the quick A/B test from the adapters list (spec: Quick A/B test from adapters),
the set-up form and the API's refusals, the vote pair by pair (both clips heard before the buttons unlock, keyboard
shortcuts, the reveal after each vote), the results with their intervals, the preference dataset, the list with its
verdicts and the leaderboard. One studio serves the module; the clips are made by the real generation worker."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from .live import LiveServer
from .seed import CLIP_S, GenStudio, gen_studio
from .test_studio_pages import MADE_S, shoot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, trained_adapter: Path) -> Iterator[GenStudio]:
    data = tmp_path_factory.mktemp("abtest-pages") / "data"
    with gen_studio(data, tiny_model, trained_adapter, {"tiny": "Tiny MusicGen"}) as studio:
        yield studio


def fetch(studio: GenStudio, abtest_id: str) -> dict[str, Any]:
    found: dict[str, Any] = studio.call("GET", f"/api/abtests/{abtest_id}")
    return found


def side(test_: dict[str, Any], which: str | None) -> str:
    """How the page names the side that played as `which` ('a' or 'b')."""
    adapter = test_["adapter_a" if which == "a" else "adapter_b"]
    name = f"{adapter['name']} {adapter['version']}" if adapter else "Base model"
    return f"{(which or '').upper()}: {name}"


def hear(page: Page, which: str) -> None:
    """Play one clip of the pair to its end."""
    player = page.get_by_test_id(f"player-{which}")
    expect(player).to_have_attribute("data-state", "ready")
    player.get_by_test_id("play-button").click()
    expect(page.get_by_test_id(f"heard-{which}")).to_be_visible()


def vote_buttons(page: Page) -> list[Locator]:
    return [page.get_by_test_id(f"vote-{choice}") for choice in ("first", "tie", "second")]


def bar_fraction(page: Page, key: str) -> tuple[float, float]:
    """Where an interval bar starts and ends along its track, as fractions of the track."""
    track = page.get_by_test_id(f"interval-{key}").locator(".interval-track").bounding_box()
    bar = page.get_by_test_id(f"interval-bar-{key}").bounding_box()
    assert track and bar
    return (bar["x"] - track["x"]) / track["width"], (bar["x"] + bar["width"] - track["x"]) / track["width"]


def test_quick_ab_test_from_two_ticked_adapters_preselects_both_sides(page: Page, studio: GenStudio) -> None:
    warm = studio.adapter("quick-warm")
    cold = studio.adapter("quick-cold")
    page.goto(f"{studio.url}/adapters?q=quick-")
    quick = page.get_by_test_id("quick-ab-button")
    expect(quick).to_have_attribute("aria-disabled", "true")
    for adapter in (warm, cold):
        page.locator(f'[data-testid=adapter-row][data-adapter-id="{adapter["id"]}"]').get_by_test_id(
            "adapter-select"
        ).check()
    expect(quick).to_have_attribute("aria-disabled", "false")
    quick.click()

    expect(page).to_have_url(re.compile(rf"/abtests/new\?a={warm['id']}&b={cold['id']}$"))
    expect(page.get_by_test_id("side-a")).to_have_value(warm["id"])
    expect(page.get_by_test_id("side-b")).to_have_value(cold["id"])
    expect(page.get_by_test_id("ab-name")).to_have_attribute("placeholder", "quick-warm 1.0 vs quick-cold 1.0")
    expect(page.get_by_test_id("side-warnings")).to_be_hidden()
    shoot(page, "abtest-new")


def test_the_form_checks_its_fields_and_shows_the_apis_refusal(page: Page, studio: GenStudio) -> None:
    old = studio.adapter("refused-ab", "1.0")
    new = studio.adapter("refused-ab", "2.0")  # activating 2.0 turns 1.0 off: one version of a name is active at a time
    page.goto(f"{studio.url}/abtests/new?a={old['id']}&b={new['id']}")
    expect(page.get_by_test_id("side-a")).to_have_value(old["id"])  # an inactive version can be tested
    expect(page.get_by_test_id("side-b")).to_have_value(new["id"])
    expect(page.get_by_test_id("side-warnings")).to_be_hidden()
    error = page.get_by_test_id("abtest-error")

    page.get_by_test_id("abtest-create").click()
    expect(error).to_have_text("Write at least one prompt, one per line.")
    page.get_by_test_id("prompts").fill("one\n\n two \n")
    expect(page.get_by_test_id("pair-count")).to_contain_text("2 prompts × 1 sample = 2 pairs")
    page.get_by_test_id("samples").fill("101")
    page.get_by_test_id("abtest-create").click()
    expect(error).to_have_text("Samples per prompt is a whole number from 1 to 20.")
    page.get_by_test_id("samples").fill("1")
    page.get_by_test_id("ab-duration").fill("11")
    page.get_by_test_id("abtest-create").click()
    expect(error).to_have_text("11 s is longer than Tiny MusicGen can make (10.24 s at most).")
    page.get_by_test_id("ab-duration").fill(str(CLIP_S))
    studio.call("DELETE", f"/api/adapters/{old['id']}")  # deleted while the page was open: the API refuses it
    page.get_by_test_id("abtest-create").click()
    expect(error).to_have_text("Adapter refused-ab 1.0 has been deleted")
    expect(page).to_have_url(re.compile(r"/abtests/new"))


def test_a_blind_test_is_voted_pair_by_pair_and_makes_a_dataset(page: Page, studio: GenStudio) -> None:
    warm = studio.adapter("vote-warm")
    cold = studio.adapter("vote-cold")
    page.goto(f"{studio.url}/abtests/new?a={warm['id']}&b={cold['id']}")
    page.get_by_test_id("prompts").fill("vote: calm piano\nvote: fast drums")
    page.get_by_test_id("ab-duration").fill(str(CLIP_S))
    page.get_by_test_id("ab-seed").fill("11")
    page.get_by_test_id("abtest-create").click()
    expect(page).to_have_url(re.compile(r"/abtests/ab-[0-9a-f]+$"))
    abtest_id = page.url.rsplit("/", 1)[1]

    expect(page.get_by_test_id("abtest-name")).to_have_text("vote-warm 1.0 vs vote-cold 1.0")
    expect(page.get_by_test_id("ready-count")).to_have_text("2 of 2", timeout=MADE_S)
    expect(page.get_by_test_id("abtest-status")).to_have_text("Voting")
    expect(page.get_by_test_id("pair-position")).to_have_text("Pair 1 of 2")
    for button in vote_buttons(page):
        expect(button).to_be_disabled()
    expect(page.get_by_test_id("vote-hint")).to_have_text("Play the first and the second clip to the end to vote.")

    # The shortcuts do nothing until both clips were heard, and say why.
    page.keyboard.press("1")
    expect(page.get_by_test_id("vote-hint")).to_have_class(re.compile(r"warning-text"))
    hear(page, "first")
    expect(page.get_by_test_id("vote-hint")).to_have_text("Play the second clip to the end to vote.")
    page.keyboard.press("2")
    for button in vote_buttons(page):
        expect(button).to_be_disabled()
    assert fetch(studio, abtest_id)["votes"] == 0
    hear(page, "second")
    for button in vote_buttons(page):
        expect(button).to_be_enabled()
    shoot(page, "abtest-vote")

    page.keyboard.press("1")
    reveal = page.get_by_test_id("reveal")
    expect(reveal).to_be_visible()
    after_one = fetch(studio, abtest_id)
    first_pair = after_one["pairs"][0]
    assert first_pair["vote"] == "first"
    first_is = first_pair["first_is"]
    expect(page.get_by_test_id("reveal-choice")).to_have_text("First")
    expect(page.get_by_test_id("reveal-first")).to_have_text(f"First was {side(after_one, first_is)}")
    other = "b" if first_is == "a" else "a"
    expect(page.get_by_test_id("reveal-second")).to_have_text(f"Second was {side(after_one, other)}")
    expect(page.get_by_test_id("vote-count")).to_have_text("1 of 2")
    expect(page.get_by_test_id("a-wins")).to_have_text(str(after_one["results"]["a_wins"]))
    expect(page.get_by_test_id("b-wins")).to_have_text(str(after_one["results"]["b_wins"]))
    expect(page.get_by_test_id("win-rate")).to_have_text("100%" if first_is == "a" else "0%")
    expect(page.get_by_test_id("results-warning")).to_have_text(after_one["results"]["warning"])
    lo, hi = after_one["results"]["win_rate_ci"]
    start, end = bar_fraction(page, "wilson")
    assert abs(start - lo) < 0.02 and abs(end - hi) < 0.02, (start, end, lo, hi)
    expect(page.get_by_test_id("interval-bar-sequential")).to_be_visible()
    expect(page.get_by_test_id("verdict")).to_have_text(
        "Undecided: the always-valid interval still includes 50%, so the votes cannot tell the two apart yet."
    )
    shoot(page, "abtest-reveal")

    # N moves on; the second pair starts locked again. A tie by its button.
    page.keyboard.press("n")
    expect(page.get_by_test_id("pair-position")).to_have_text("Pair 2 of 2")
    expect(page.get_by_test_id("vote-tie")).to_be_disabled()
    hear(page, "first")
    hear(page, "second")
    page.get_by_test_id("vote-tie").click()
    expect(page.get_by_test_id("reveal-choice")).to_have_text("Tie")
    expect(page.get_by_test_id("ties")).to_have_text("1")
    expect(page.get_by_test_id("next-pair")).to_have_text("Done")
    page.get_by_test_id("next-pair").click()
    expect(page.get_by_test_id("vote-idle")).to_contain_text("Every pair has a vote.")
    expect(page.get_by_test_id("abtest-status")).to_have_text("Completed")
    expect(page.get_by_test_id("vote-row")).to_have_count(2)

    page.get_by_test_id("make-dataset").click()
    link = page.get_by_test_id("dataset-link")
    expect(link).to_have_text("vote-warm 1.0 vs vote-cold 1.0 preferences")
    expect(page.get_by_test_id("dataset-made")).to_contain_text("with 1 pair (winner chosen")
    href = link.get_attribute("href")
    assert href is not None
    dataset = studio.call("GET", f"/api{href}")
    assert (dataset["type"], dataset["item_count"]) == ("preference", 1)  # the tie is left out

    page.reload()  # what was voted stays voted
    expect(page.get_by_test_id("vote-idle")).to_contain_text("Every pair has a vote.")
    expect(page.get_by_test_id("existing-dataset").get_by_role("link")).to_have_attribute("href", href)
    shoot(page, "abtest-results")

    page.goto(f"{studio.url}/abtests")
    row = page.locator(f'[data-testid=abtest-row][data-abtest-id="{abtest_id}"]')
    expect(row.get_by_test_id("abtest-status")).to_have_text("Completed")
    expect(row.get_by_test_id("abtest-progress")).to_contain_text("2 of 2 voted")
    expect(row.get_by_test_id("abtest-verdict")).to_have_text("Undecided so far")
    expect(row.get_by_test_id("abtest-sides")).to_have_text("A: vote-warm 1.0 · B: vote-cold 1.0")
    board = page.get_by_test_id("leaderboard-row")
    expect(board.get_by_test_id("leaderboard-name")).to_contain_text(["vote-", "vote-"])
    winner = warm if first_is == "a" else cold
    expect(board.first).to_have_attribute("data-entry-id", winner["id"])
    shoot(page, "abtests-list")


def test_a_test_that_is_decided_says_which_side_won(page: Page, studio: GenStudio) -> None:
    """Eight pairs all voted for the base model's clip: the always-valid interval leaves 50%, the verdict names B."""
    loser = studio.adapter("decided-loser")
    body = {"adapter_a_id": loser["id"], "adapter_b_id": None, "prompts": [f"decided {i}" for i in range(8)],
            "duration_s": CLIP_S}  # fmt: skip
    abtest_id = studio.call("POST", "/api/abtests", json=body)["id"]
    page.goto(f"{studio.url}/abtests/{abtest_id}")
    expect(page.get_by_test_id("abtest-status")).to_have_text("Voting", timeout=MADE_S)
    votes = f"/api/abtests/{abtest_id}/votes"
    for pair in fetch(studio, abtest_id)["pairs"]:
        shown = studio.call("POST", votes, json={"pair_id": pair["id"], "choice": "first"})["pair"]
        if shown["first_is"] == "a":  # A played first: the base model's clip was the second
            studio.call("POST", votes, json={"pair_id": pair["id"], "choice": "second"})
    results = fetch(studio, abtest_id)["results"]
    assert results["verdict"] == "b_better", results

    page.reload()
    expect(page.get_by_test_id("verdict")).to_have_text(
        "B (Base model) is better: the always-valid interval lies below 50%."
    )
    expect(page.get_by_test_id("b-wins")).to_have_text("8")
    expect(page.get_by_test_id("win-rate")).to_have_text("0%")
    start, end = bar_fraction(page, "sequential")
    lo, hi = results["sequential_ci"]
    assert abs(start - lo) < 0.02 and abs(end - hi) < 0.02 and end < 0.5


def test_no_tests_yet_says_how_to_start_one(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/abtests")

    expect(page.get_by_test_id("abtests-empty")).to_contain_text("No A/B tests yet.")
    expect(page.get_by_test_id("abtests-empty").get_by_role("link", name="new A/B test")).to_have_attribute(
        "href", "/abtests/new"
    )
    expect(page.get_by_test_id("leaderboard-error")).to_have_text(
        "No base model is current: choose one in Settings to see its leaderboard."
    )


def test_an_unknown_test_is_the_404_page(page: Page, studio: GenStudio) -> None:
    response = page.goto(f"{studio.url}/abtests/ab-0000000000000000")

    assert response is not None and response.status == 404
    expect(page.get_by_test_id("error-code")).to_have_text("abtest_not_found")
