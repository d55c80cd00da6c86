"""The settings page in a real browser: the current model with its capabilities, making another model current (and
what that changes in the studio), and the generation worker's state."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .live import LiveServer
from .seed import gen_studio
from .test_studio_pages import shoot

pytestmark = pytest.mark.browser


def test_the_current_model_can_be_switched_and_the_studio_follows(
    page: Page, tmp_path: Path, tiny_model: Path, trained_adapter: Path
) -> None:
    models = {"tiny": "Tiny MusicGen", "other": "Other MusicGen"}
    with gen_studio(tmp_path / "data", tiny_model, trained_adapter, models) as studio:
        studio.add_model("short", "Short MusicGen", max_duration_s=1)
        moved = studio.adapter("settings-other", model="other")
        page.goto(f"{studio.url}/settings")

        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings")).to_have_attribute(
            "aria-current", "page"
        )
        expect(page.get_by_test_id("current-model-name")).to_have_text("Tiny MusicGen")
        expect(page.get_by_test_id("cap-duration")).to_have_text("10.24 s")
        expect(page.get_by_test_id("cap-sample-rate")).to_have_text("32,000 Hz")
        expect(page.get_by_test_id("cap-frame-rate")).to_have_text("50 frames/s")
        expect(page.get_by_test_id("cap-codebooks")).to_have_text("4")
        expect(page.get_by_test_id("current-adapters")).to_have_text("none trained on it yet")
        expect(page.get_by_test_id("model-row")).to_have_count(2)
        expect(page.get_by_test_id("worker-state")).to_have_text("Stopped")
        shoot(page, "settings")

        page.get_by_role("button", name="Make Short MusicGen the current model").click()
        expect(page.get_by_test_id("current-model-name")).to_have_text("Short MusicGen")
        expect(page.get_by_test_id("cap-duration")).to_have_text("1 s")
        assert studio.current_model == "short"
        page.get_by_role("button", name="Make Other MusicGen the current model").click()
        expect(page.get_by_test_id("current-model-name")).to_have_text("Other MusicGen")
        expect(page.get_by_test_id("toast").last).to_contain_text("Other MusicGen is the current model")
        expect(page.get_by_test_id("current-adapters")).to_have_text("1 trained on it")
        assert studio.current_model == "other"

        # The studio now offers the adapter trained on the other model, within that model's limits.
        page.goto(f"{studio.url}/studio")
        expect(page.get_by_test_id("duration-limit")).to_have_text("Up to 10.24 s with Other MusicGen")
        page.get_by_test_id("adapter-picker").click()
        choice = page.locator(f'[data-testid=adapter-option][data-adapter-id="{moved["id"]}"]')
        expect(choice).to_have_attribute("aria-disabled", "false")

        # A clip wakes the worker up on the new model.
        studio.made("settings: wake the worker")
        page.goto(f"{studio.url}/settings")
        expect(page.get_by_test_id("worker-state")).to_have_text("Ready")
        expect(page.get_by_test_id("worker-model")).to_have_text("Other MusicGen")
        expect(page.get_by_test_id("worker-queue")).to_have_text("0 · 0")


def test_settings_without_any_model_say_how_to_add_one(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/settings")

    expect(page.get_by_test_id("no-current-model")).to_contain_text("No model is current.")
    expect(page.get_by_test_id("no-other-models")).to_be_visible()
    expect(page.get_by_test_id("worker-state")).to_have_text("Stopped")


def test_every_main_link_is_in_view_at_phone_width(page: Page, live_server: LiveServer) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/settings")

    links = page.get_by_role("navigation", name="Main").get_by_role("link")
    expect(links).to_have_count(7)
    for link in links.all():
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (link.inner_text(), box)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    header = page.locator(".topbar").bounding_box()
    assert header is not None and header["height"] < 130  # two rows at most, not a wall of links
