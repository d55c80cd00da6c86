"""The studio in a real browser: the adapter picker's four compatibility scenarios, the prompt editor's checks and the
API's refusals shown inline, clips made by the real generation worker (live status, waveform player, download,
stars), the Deleted Adapter indicator, a failed clip, and a dataset made from ratings. One studio serves the module
with three base models: tiny (current), other, and short (1 s at most); each test seeds adapters of its own names."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, Request, expect

from .live import LiveServer
from .seed import CLIP_S, GenStudio, gen_studio

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("TUNELAB_SCREENSHOTS")
MADE_S = 120_000  # ms for a clip to be made: the worker's first start loads torch on two shared cores
NO_ADAPTERS = "No adapters available for {}. Train or import adapters, or change model in Settings."


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, trained_adapter: Path) -> Iterator[GenStudio]:
    data = tmp_path_factory.mktemp("studio-pages") / "data"
    models = {"tiny": "Tiny MusicGen", "other": "Other MusicGen"}
    with gen_studio(data, tiny_model, trained_adapter, models) as studio:
        studio.add_model("short", "Short MusicGen", max_duration_s=1)
        yield studio


def shoot(page: Page, name: str) -> None:
    if not SHOTS:
        return
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(150)
        page.screenshot(path=str(Path(SHOTS) / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 720})


def open_studio(page: Page, studio: GenStudio) -> None:
    page.goto(f"{studio.url}/studio")
    expect(page.get_by_test_id("jobs-total")).to_be_visible()
    expect(page.get_by_test_id("adapter-picker")).to_be_enabled()


def option(page: Page, adapter_id: str) -> Locator:
    return page.locator(f'[data-testid=adapter-option][data-adapter-id="{adapter_id}"]')


def job_row(page: Page, prompt: str) -> Locator:
    return page.get_by_test_id("job").filter(has=page.get_by_test_id("job-prompt").get_by_text(prompt, exact=True))


def fill_prompt(page: Page, prompt: str, duration: float = CLIP_S) -> None:
    page.get_by_test_id("prompt").fill(prompt)
    page.get_by_test_id("duration").fill(str(duration))


def pick(page: Page, adapter_id: str) -> None:
    page.get_by_test_id("adapter-picker").click()
    option(page, adapter_id).click()


def generation_requests(page: Page) -> list[str]:
    """The clip list requests the page sends from now on."""
    seen: list[str] = []

    def note(request: Request) -> None:
        if "/api/generations" in request.url and request.method == "GET":
            seen.append(request.url)

    page.on("request", note)
    return seen


# The adapter picker (spec: Adapter Selection UI)


def test_a_compatible_adapter_is_chosen_and_the_duration_limit_stays_the_models(page: Page, studio: GenStudio) -> None:
    fits = studio.adapter("pick-fits")
    open_studio(page, studio)
    duration = page.get_by_test_id("duration")
    expect(page.get_by_test_id("duration-limit")).to_have_text("Up to 10.24 s with Tiny MusicGen")
    expect(duration).to_have_attribute("max", "10.24")

    page.get_by_test_id("adapter-picker").click()
    listbox = page.get_by_role("listbox", name="Adapter")
    expect(listbox).to_be_visible()
    expect(option(page, "")).to_have_text("None (base model)")
    expect(option(page, fits["id"])).to_have_attribute("aria-disabled", "false")
    option(page, fits["id"]).click()

    expect(listbox).to_be_hidden()
    expect(page.get_by_test_id("adapter-choice")).to_have_text("pick-fits 1.0")
    expect(page.get_by_test_id("duration-limit")).to_have_text("Up to 10.24 s with Tiny MusicGen")
    expect(duration).to_have_attribute("max", "10.24")

    # The keyboard: arrows open the list and move, Enter chooses, Escape closes.
    page.get_by_test_id("adapter-picker").focus()
    page.keyboard.press("ArrowDown")
    expect(listbox).to_be_focused()
    expect(option(page, fits["id"])).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Home")
    expect(listbox).to_have_attribute("aria-activedescendant", "adapter-option-base")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("adapter-choice")).to_have_text("None (base model)")
    expect(page.get_by_test_id("adapter-picker")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Escape")
    expect(listbox).to_be_hidden()


def test_an_adapter_of_another_model_is_greyed_out_and_cannot_be_chosen(page: Page, studio: GenStudio) -> None:
    elsewhere = studio.adapter("grey-elsewhere", model="other")
    studio.adapter("grey-fits")
    open_studio(page, studio)
    note = page.get_by_test_id("incompatible-note")
    expect(note).to_contain_text("Some adapters require a different model than Tiny MusicGen")

    page.get_by_test_id("adapter-picker").click()
    greyed = option(page, elsewhere["id"])
    expect(greyed).to_have_attribute("aria-disabled", "true")
    expect(greyed.get_by_test_id("incompatible-hint")).to_have_text("Requires Other MusicGen")
    tooltip = greyed.get_by_role("tooltip")
    expect(tooltip).to_be_hidden()
    greyed.hover()
    expect(tooltip).to_have_text("This adapter requires Other MusicGen. Change model in Settings.")
    expect(tooltip).to_be_visible()
    greyed.click(force=True)  # force: Playwright itself will not click what is aria-disabled, a user can
    expect(greyed).to_have_attribute("aria-selected", "false")
    expect(page.get_by_test_id("picker-message")).to_contain_text(
        "This adapter requires Other MusicGen. Change model in Settings."
    )
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("adapter-choice")).to_have_text("None (base model)")
    shoot(page, "studio-picker")

    # By keyboard the same: the greyed-out option can be reached (and explained) but not chosen.
    page.get_by_test_id("adapter-picker").focus()
    page.keyboard.press("ArrowDown")
    listbox = page.get_by_role("listbox")
    for _ in range(page.get_by_test_id("adapter-option").count()):
        if listbox.get_attribute("aria-activedescendant") == f"adapter-option-{elsewhere['id']}":
            break
        page.keyboard.press("ArrowDown")
    expect(listbox).to_have_attribute("aria-activedescendant", f"adapter-option-{elsewhere['id']}")
    expect(tooltip).to_be_visible()
    page.keyboard.press("Enter")
    expect(listbox).to_be_visible()
    expect(page.get_by_test_id("adapter-choice")).to_have_text("None (base model)")


def test_with_no_compatible_adapter_the_base_model_is_the_only_choice(page: Page, studio: GenStudio) -> None:
    studio.adapter("none-fits-tiny")
    with studio.model("short"):
        open_studio(page, studio)
        expect(page.get_by_test_id("no-adapters-hint")).to_have_text(NO_ADAPTERS.format("Short MusicGen"))
        expect(page.get_by_test_id("incompatible-note")).to_be_hidden()
        expect(page.get_by_test_id("duration-limit")).to_have_text("Up to 1 s with Short MusicGen")
        page.get_by_test_id("adapter-picker").click()
        choosable = page.locator("[data-testid=adapter-option][aria-disabled=false]")
        expect(choosable).to_have_count(1)
        expect(choosable).to_have_text("None (base model)")
        expect(page.locator("[data-testid=adapter-option][aria-disabled=true]").first).to_be_visible()
        shoot(page, "studio-no-adapters")


def test_an_empty_studio_says_what_to_do_and_polls_nothing(
    page: Page, tmp_path: Path, tiny_model: Path, trained_adapter: Path
) -> None:
    with gen_studio(tmp_path / "data", tiny_model, trained_adapter, {"tiny": "Tiny MusicGen"}) as empty:
        page.goto(f"{empty.url}/")
        expect(page).to_have_url(re.compile(r"/studio$"))
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Studio")).to_have_attribute(
            "aria-current", "page"
        )
        expect(page.get_by_test_id("jobs-empty")).to_contain_text("No clips yet.")
        expect(page.get_by_test_id("jobs-empty")).to_contain_text("press Generate")
        expect(page.get_by_test_id("no-adapters-hint")).to_have_text(NO_ADAPTERS.format("Tiny MusicGen"))
        page.get_by_test_id("adapter-picker").click()
        expect(page.get_by_test_id("adapter-option")).to_have_count(1)
        expect(page.get_by_test_id("adapter-option")).to_have_text("None (base model)")
        polls = generation_requests(page)
        page.wait_for_timeout(2500)  # an idle studio: nothing is being made, so nothing is asked
        assert polls == []
        shoot(page, "studio-empty")


def test_a_studio_without_a_current_model_says_to_choose_one(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/studio")

    expect(page.get_by_test_id("no-model")).to_contain_text("No base model is current.")
    expect(page.get_by_test_id("no-model").get_by_role("link", name="Settings")).to_have_attribute("href", "/settings")
    expect(page.get_by_test_id("generate")).to_be_disabled()


# Making, playing and rating a clip


def test_a_clip_appears_at_once_is_made_played_downloaded_and_rated(page: Page, studio: GenStudio) -> None:
    lofi = studio.adapter("flow-lofi")
    open_studio(page, studio)
    prompt = "flow: warm lo-fi piano"
    fill_prompt(page, prompt)
    page.get_by_test_id("dice").click()
    seed = page.get_by_test_id("seed").input_value()
    assert re.fullmatch(r"\d+", seed) and int(seed) < 2**31
    pick(page, lofi["id"])
    page.get_by_test_id("generate").click()

    job = job_row(page, prompt)
    expect(job).to_be_visible(timeout=3000)  # at once: before the worker has made anything
    expect(job.get_by_test_id("job-adapter")).to_have_text("flow-lofi 1.0")
    expect(job.get_by_test_id("job-seed")).to_have_text(seed)
    expect(job.get_by_test_id("job-duration")).to_have_text("0.5 s")
    expect(job).to_have_attribute("data-status", "completed", timeout=MADE_S)
    expect(job.get_by_test_id("job-status")).to_have_text("Completed")
    expect(job.get_by_test_id("job-timing")).to_contain_text("made in")
    expect(page.get_by_test_id("jobs-live")).to_be_hidden()
    job_id = job.get_attribute("data-job-id")

    player = job.get_by_test_id("player")
    expect(player).to_have_attribute("data-state", "ready")
    expect(job.get_by_test_id("waveform").locator("canvas").first).to_be_attached()  # drawn by wavesurfer.js
    expect(job.get_by_test_id("player-time")).to_have_text("0:00.0 / 0:00.5")
    job.get_by_role("button", name=f"Play {prompt}").click()
    expect(player).to_have_attribute("data-state", "heard")  # played to its end
    download = job.get_by_test_id("download")
    expect(download).to_have_attribute("href", f"/api/generations/{job_id}/audio")
    expect(download).to_have_attribute("download", f"{job_id}.wav")
    assert studio.server.api.get(f"/api/generations/{job_id}/audio").headers["content-type"] == "audio/wav"

    # No polling once nothing is being made.
    polls = generation_requests(page)
    page.wait_for_timeout(2500)
    assert polls == []

    # Stars by keyboard: arrows move through the radio group and save the last choice.
    stars = job.get_by_test_id("star")
    stars.first.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(job.get_by_test_id("rating-status")).to_have_text("Saved: 4 / 5")
    assert studio.call("GET", f"/api/generations/{job_id}")["rating"] == 4

    page.reload()
    job = job_row(page, prompt)
    expect(job.get_by_test_id("star").nth(3)).to_be_checked()
    expect(job.get_by_test_id("rating")).to_have_attribute("data-rating", "4")
    expect(job.get_by_test_id("rating-status")).to_have_text("Rated 4 / 5")
    job.get_by_title("2 stars").click()  # a new rating replaces the old
    expect(job.get_by_test_id("rating-status")).to_have_text("Saved: 2 / 5")
    assert studio.call("GET", f"/api/generations/{job_id}")["rating"] == 2
    shoot(page, "studio-clips")


def test_clips_of_a_deleted_adapter_say_deleted_adapter(page: Page, studio: GenStudio) -> None:
    doomed = studio.adapter("doomed")
    made = studio.made("deleted: made before the delete", doomed["id"])
    studio.call("DELETE", f"/api/adapters/{doomed['id']}")
    open_studio(page, studio)

    job = job_row(page, made["prompt"])
    expect(job.get_by_test_id("job-adapter")).to_have_text("Deleted Adapter")
    expect(job.get_by_test_id("deleted-adapter")).to_have_attribute("title", "Was doomed 1.0, deleted since")
    expect(job.get_by_test_id("player")).to_have_attribute("data-state", "ready")  # the clip itself is still there
    page.get_by_test_id("adapter-picker").click()
    expect(option(page, doomed["id"])).to_have_count(0)


def test_a_failed_clip_shows_its_error(page: Page, studio: GenStudio) -> None:
    studio.made("failed: wake the worker")
    open_studio(page, studio)
    prompt = "failed: the worker dies while making it"
    fill_prompt(page, prompt, duration=10)  # a long clip: seconds in which the worker can be stopped
    page.get_by_test_id("generate").click()
    job_id = job_row(page, prompt).get_attribute("data-job-id")
    assert job_id is not None
    studio.wait(job_id, ("running", "completed", "failed"))
    os.kill(studio.call("GET", "/api/generation-worker")["pid"], signal.SIGKILL)

    job = job_row(page, prompt)
    expect(job).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(job.get_by_test_id("job-status")).to_have_text("Failed")
    expect(job.get_by_test_id("job-error")).to_have_text(
        "the generation worker stopped while making this clip (killed by signal 9)"
    )
    expect(job.get_by_test_id("player")).to_have_count(0)


# What the editor and the API refuse, shown where the user is looking


def test_the_editor_and_the_api_refusals_are_shown_inline(page: Page, studio: GenStudio) -> None:
    inactive = studio.adapter("refused-inactive")
    deleted = studio.adapter("refused-deleted")
    moved = studio.adapter("refused-moved")
    fits_other = studio.adapter("refused-fits-other", model="other")
    jobs_before = studio.call("GET", "/api/generations")["total"]
    open_studio(page, studio)
    error = page.get_by_test_id("generate-error")

    page.get_by_test_id("generate").click()
    expect(error).to_have_text("Write a prompt first: what should the clip sound like?")
    expect(page.get_by_test_id("prompt")).to_have_attribute("aria-invalid", "true")
    fill_prompt(page, "refused: too long", duration=20)
    page.get_by_test_id("generate").click()
    expect(error).to_have_text("20 s is longer than Tiny MusicGen can make (10.24 s at most).")
    expect(page.get_by_test_id("duration")).to_have_attribute("aria-invalid", "true")

    # 400 adapter_inactive: deactivated elsewhere after the page was loaded.
    fill_prompt(page, "refused: inactive")
    pick(page, inactive["id"])
    studio.call("POST", f"/api/adapters/{inactive['id']}/deactivate")
    page.get_by_test_id("generate").click()
    expect(error).to_have_text("Adapter refused-inactive 1.0 is not active; activate it first")
    expect(page.get_by_test_id("adapter-choice")).to_have_text("None (base model)")  # the picker caught up

    # 400 adapter_deleted
    pick(page, deleted["id"])
    studio.call("DELETE", f"/api/adapters/{deleted['id']}")
    page.get_by_test_id("generate").click()
    expect(error).to_have_text("Adapter refused-deleted 1.0 has been deleted")

    with studio.model("other"):
        # 400 adapter_incompatible, with the adapters that would fit.
        pick(page, moved["id"])
        page.get_by_test_id("generate").click()
        expect(error).to_contain_text("Adapter refused-moved 1.0 cannot be used")
        expect(page.get_by_test_id("suggestions").get_by_role("link", name="refused-fits-other 1.0")).to_have_attribute(
            "href", f"/adapters/{fits_other['id']}"
        )
    with studio.model("short"):
        # 422 duration_too_long from the API: the page still believes the limit is the tiny model's.
        fill_prompt(page, "refused: the model changed", duration=5)
        page.get_by_test_id("generate").click()
        expect(error).to_have_text("5 s is longer than Short MusicGen can make (1 s at most)")
        expect(page.get_by_test_id("duration")).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_test_id("duration-limit")).to_have_text("Up to 1 s with Short MusicGen")
        shoot(page, "studio-refused")
    assert studio.call("GET", "/api/generations")["total"] == jobs_before


# A dataset from ratings


def test_a_dataset_is_made_from_the_clips_rated_well(page: Page, studio: GenStudio) -> None:
    rated = studio.adapter("rated-lofi")
    unrated = studio.adapter("rated-none")
    clip = studio.made("rated: five stars", rated["id"])
    studio.call("POST", f"/api/generations/{clip['id']}/rating", json={"rating": 5})
    open_studio(page, studio)
    form = page.get_by_test_id("ratings-dataset-form")

    form.get_by_test_id("ratings-create").click()
    expect(page.get_by_test_id("ratings-error")).to_have_text("Give the dataset a name.")
    form.get_by_test_id("ratings-name").fill("five-star rated-lofi")
    form.get_by_test_id("ratings-min").select_option("5")
    form.get_by_test_id("ratings-adapter").select_option(unrated["id"])
    form.get_by_test_id("ratings-create").click()
    expect(page.get_by_test_id("ratings-error")).to_contain_text("No completed generation is rated 5 or more")

    form.get_by_test_id("ratings-adapter").select_option(rated["id"])
    form.get_by_test_id("ratings-create").click()
    link = page.get_by_test_id("ratings-dataset-link")
    expect(link).to_have_text("five-star rated-lofi")
    expect(page.get_by_test_id("ratings-result")).to_contain_text("with 1 clip.")
    href = link.get_attribute("href")
    assert href is not None and href.startswith("/datasets/ds-")
    dataset = studio.call("GET", f"/api/{href.removeprefix('/')}")
    assert (dataset["type"], dataset["item_count"]) == ("supervised", 1)
    assert dataset["items"][0]["rating"] == 5
    link.click()
    expect(page).to_have_url(re.compile(re.escape(href) + "$"))


def test_the_worker_state_is_the_reason_a_clip_waits(page: Page, studio: GenStudio) -> None:
    """A pending clip says it waits for the worker; a running one that it is being made."""
    open_studio(page, studio)
    prompt = "waits: a longer clip"
    fill_prompt(page, prompt, duration=3)
    page.get_by_test_id("generate").click()
    job = job_row(page, prompt)
    expect(job.get_by_test_id("job-timing")).to_have_text(
        re.compile(r"^(waiting for the generation worker|being made|made in .*)$")
    )
    expect(page.get_by_test_id("jobs-live")).to_be_visible()
    expect(job).to_have_attribute("data-status", "completed", timeout=MADE_S)
    expect(page.get_by_test_id("jobs-live")).to_be_hidden()


def test_the_adapter_page_shows_its_generations_and_ratings_beside_the_base_model(
    page: Page, studio: GenStudio
) -> None:
    rated = studio.adapter("perf-rated")
    prompt = "perf: the same prompt"
    for stars in (5, 4, 4):
        clip = studio.made(prompt, rated["id"])
        studio.call("POST", f"/api/generations/{clip['id']}/rating", json={"rating": stars})
    base = studio.made(prompt)
    studio.call("POST", f"/api/generations/{base['id']}/rating", json={"rating": 2})
    performance = studio.call("GET", f"/api/adapters/{rated['id']}/performance")
    low, high = performance["ratings"]["ci"]

    page.goto(f"{studio.url}/adapters/{rated['id']}")
    usage = page.get_by_test_id("usage")
    expect(usage.get_by_test_id("usage-generations")).to_have_text("3")
    expect(usage.get_by_test_id("usage-completed")).to_have_text("3")
    expect(usage.get_by_test_id("usage-rating")).to_have_text(
        re.compile(rf"^4\.333 / 5 \(95% CI {low:.4g}–{high:.4g}, 3 ratings\)$")
    )
    counts = usage.get_by_test_id("distribution-count")
    expect(counts).to_have_text(["1", "2", "0", "0", "0"])  # five stars first
    expect(usage.get_by_test_id("usage-base-rating")).to_have_text("2 / 5 (1 rating)")
    expect(usage.get_by_test_id("usage-base")).to_contain_text("on the same 1 prompt")
    expect(usage.get_by_test_id("usage-difference")).to_contain_text("Mann–Whitney p =")
    expect(usage.get_by_test_id("studio-link")).to_have_attribute("href", f"/studio?adapter={rated['id']}")

    usage.get_by_test_id("studio-link").click()  # the studio opens with the adapter chosen
    expect(page.get_by_test_id("adapter-choice")).to_have_text("perf-rated 1.0")
    shoot(page, "studio-from-adapter")
