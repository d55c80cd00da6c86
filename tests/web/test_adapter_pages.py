"""The adapter registry's pages in a real browser: the list (activation, filters in the address, grouping, rename
dialog, delete, compare), one adapter (inline rename, overview, versions with chart, roll back and diff, the training
configuration with its tooltips) and the comparison. One studio serves the module; each test seeds adapters of its
own names, real PEFT folders from a tiny-model training run, through the JSON API."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, Request, ViewportSize, expect

from tunelab.app import create_app
from tunelab.config import Settings
from tunelab.domain.adapters import AdapterCreate, AdapterSource
from tunelab.services import Services

from .live import LiveServer, serve

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("TUNELAB_SCREENSHOTS")  # a folder: the pages are saved there at desktop and phone width
PHONE: ViewportSize = {"width": 390, "height": 844}
CONFIG_GROUPS = ["Model", "LoRA", "Training", "Hardware", "Checkpointing"]
EMPTY_NAME = "The name cannot be empty."
LONG_NAME = "The name can be at most 100 characters; this one has 101."


@dataclass
class Studio:
    """A live studio with the tiny MusicGen current (`tiny`) and a second base model (`other`)."""

    server: LiveServer
    services: Services
    data: Path
    trained: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def config(self) -> dict[str, Any]:
        """The training config the run that made the adapter folder wrote."""
        loaded: dict[str, Any] = json.loads((self.trained / "training_config.json").read_text())
        return loaded

    def folder(self, name: str, version: str) -> Path:
        target = self.data / "adapters" / "outside" / f"{name}-{version}"
        shutil.copytree(self.trained / "final", target)
        return target

    def adapter(self, name: str, version: str = "1.0", **body: Any) -> dict[str, Any]:
        """Registered through the API (an adapter from outside TuneLab has no metrics)."""
        body = {"name": name, "version": version, "path": str(self.folder(name, version)), "base_model_id": "tiny",
                **body}  # fmt: skip
        return dict(self.call("POST", "/api/adapters", json=body))

    def trained_adapter(self, name: str, version: str, metrics: dict[str, float], **hyper: Any) -> dict[str, Any]:
        """An adapter with training metrics, as a run's has: POST /api/adapters takes none, so the service registers
        it (as tests/api/test_adapters.py does)."""
        config = self.config
        config["hyperparameters"].update(hyper)
        data = AdapterCreate(name=name, version=version, path=str(self.folder(name, version)), base_model_id="tiny",
                             training_config=config)  # fmt: skip
        adapter_id = self.services.adapters.register(data, AdapterSource.REGISTERED, metrics).id
        return self.get(adapter_id)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON API, for seeding and for checking what the pages did."""
        response = self.server.api.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def get(self, adapter_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/adapters/{adapter_id}"))

    def activate(self, adapter_id: str) -> None:
        self.call("POST", f"/api/adapters/{adapter_id}/activate")


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, trained_adapter: Path) -> Iterator[Studio]:
    data = tmp_path_factory.mktemp("adapter-pages") / "data"
    app = create_app(Settings(data_dir=data, bootstrap_model=False))
    with serve(app) as server:
        for model_id, name in (("tiny", "Tiny MusicGen"), ("other", "Other MusicGen")):
            shutil.copytree(tiny_model, data / "models" / model_id)
            body = {"path": str(data / "models" / model_id), "id": model_id, "display_name": name}
            assert server.api.post("/api/models", json=body).status_code == 201
        yield Studio(server, app.state.services, data, trained_adapter)


def shoot(page: Page, name: str) -> None:
    if not SHOTS:
        return
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar where it belongs in a full-page shot
        page.wait_for_timeout(100)  # the charts follow their box's new width
        page.screenshot(path=str(Path(SHOTS) / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 720})


def row(page: Page, name: str, version: str = "1.0") -> Locator:
    return page.locator(f'[data-testid=adapter-row][data-name="{name}"][data-version="{version}"]')


def open_list(page: Page, studio: Studio, query: str = "") -> None:
    page.goto(f"{studio.url}/adapters{query}")
    expect(page.get_by_test_id("adapter-total")).to_be_visible()


def open_adapter(page: Page, studio: Studio, adapter_id: str, tab: str = "") -> None:
    page.goto(f"{studio.url}/adapters/{adapter_id}{'#' + tab if tab else ''}")
    expect(page.get_by_test_id("adapter-version")).to_be_visible()


def fits_phone(page: Page) -> None:
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size({"width": 1280, "height": 720})


# The list


def test_an_empty_registry_says_where_adapters_come_from(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/adapters")

    empty = page.get_by_test_id("empty-state")
    expect(empty).to_contain_text("No adapters yet.")
    expect(empty).to_contain_text("registers its adapter here when it completes")
    expect(empty).to_contain_text("tunelab adapters register")
    expect(empty.get_by_role("link", name="experiment")).to_have_attribute("href", "/experiments")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Adapters")).to_have_attribute(
        "aria-current", "page"
    )
    shoot(page, "adapters-empty")
    fits_phone(page)


def test_the_list_shows_name_version_base_model_and_active_state(page: Page, studio: Studio) -> None:
    old = studio.adapter("lofi", "1.0", description="warm tape hiss")
    studio.adapter("lofi", "2.0")
    studio.activate(old["id"])
    studio.adapter("elsewhere", "0.1", base_model_id="other")
    open_list(page, studio)

    first = row(page, "lofi", "1.0")
    expect(first.get_by_test_id("adapter-link")).to_have_text("lofi")
    expect(first.get_by_test_id("adapter-version")).to_have_text("1.0")
    expect(first.get_by_test_id("adapter-base-model")).to_have_text("Tiny MusicGen")
    expect(first).to_contain_text("warm tape hiss")
    expect(first.get_by_role("switch", name="Active: lofi 1.0")).to_be_checked()
    expect(first.get_by_test_id("active-text")).to_have_text("Active")
    expect(row(page, "lofi", "2.0").get_by_role("switch")).not_to_be_checked()
    expect(row(page, "lofi", "2.0").get_by_test_id("active-text")).to_have_text("Inactive")
    other = row(page, "elsewhere", "0.1")
    expect(other.get_by_test_id("incompatible-hint")).to_have_text("Requires Other MusicGen")
    expect(other.get_by_role("switch")).to_be_disabled()  # the API would refuse it: trained on another model
    expect(page.get_by_test_id("incompatible-note")).to_contain_text("Tiny MusicGen")
    expect(first.get_by_test_id("adapter-link")).to_have_attribute("href", f"/adapters/{old['id']}")

    page.get_by_test_id("group-by-name").check()
    expect(page).to_have_url(re.compile(r"[?&]group_by_name=true"))
    group = page.locator('[data-testid=adapter-group][data-group="lofi"]')
    expect(group.get_by_test_id("group-name")).to_have_text("lofi")
    expect(group.get_by_test_id("adapter-version")).to_have_text(["1.0", "2.0"])  # oldest first
    shoot(page, "adapters-list")
    fits_phone(page)
    page.set_viewport_size(PHONE)
    for part in ("adapter-link", "adapter-version", "adapter-base-model", "active-text", "rename-button"):
        box = first.get_by_test_id(part).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], part


def test_activating_version_2_turns_version_1_off_at_once(page: Page, studio: Studio) -> None:
    one = studio.adapter("toggle", "1")
    two = studio.adapter("toggle", "2")
    open_list(page, studio, "?q=toggle")
    switch_one = row(page, "toggle", "1").get_by_role("switch", name="Active: toggle 1")
    switch_two = row(page, "toggle", "2").get_by_role("switch", name="Active: toggle 2")

    switch_one.check()
    expect(row(page, "toggle", "1").get_by_test_id("active-text")).to_have_text("Active")
    assert studio.get(one["id"])["active"] is True

    switch_two.check()
    expect(switch_two).to_be_checked()
    expect(switch_one).not_to_be_checked()  # without a reload: only one version of a name is active
    expect(row(page, "toggle", "1").get_by_test_id("active-text")).to_have_text("Inactive")
    assert (studio.get(one["id"])["active"], studio.get(two["id"])["active"]) == (False, True)

    switch_two.uncheck()
    expect(row(page, "toggle", "2").get_by_test_id("active-text")).to_have_text("Inactive")
    assert studio.get(two["id"])["active"] is False


def test_the_active_only_filter_survives_visiting_an_adapter(page: Page, studio: Studio) -> None:
    on = studio.adapter("filtered-on", "1")
    studio.activate(on["id"])
    studio.adapter("filtered-off", "1")
    open_list(page, studio, "?q=filtered")
    expect(page.get_by_test_id("adapter-row")).to_have_count(2)

    page.get_by_test_id("active-only").check()
    expect(page).to_have_url(re.compile(r"[?&]active=true"))
    expect(page.get_by_test_id("adapter-row")).to_have_count(1)
    expect(row(page, "filtered-on", "1")).to_be_visible()

    row(page, "filtered-on", "1").get_by_test_id("adapter-link").click()
    expect(page.get_by_test_id("adapter-name")).to_have_text("filtered-on")
    page.go_back()
    expect(page.get_by_test_id("active-only")).to_be_checked()
    expect(page.get_by_test_id("adapter-row")).to_have_count(1)

    page.goto(f"{studio.url}/adapters/{on['id']}")  # and through the top bar's Adapters tab
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Adapters").click()
    expect(page).to_have_url(re.compile(r"/adapters\?.*active=true"))
    expect(page.get_by_test_id("active-only")).to_be_checked()
    expect(page.get_by_test_id("search")).to_have_value("filtered")
    expect(page.get_by_test_id("adapter-row")).to_have_count(1)
    expect(row(page, "filtered-off", "1")).to_have_count(0)


def test_rename_from_the_list_dialog_validates_and_persists(page: Page, studio: Studio) -> None:
    adapter = studio.adapter("dialog-me", "1.0")
    studio.adapter("taken-name", "1.0")
    before = studio.get(adapter["id"])["updated_at"]
    patches: list[Request] = []
    page.on("request", lambda request: patches.append(request) if request.method == "PATCH" else None)
    open_list(page, studio, "?q=dialog")
    dialog = page.get_by_test_id("rename-dialog")
    name = dialog.get_by_test_id("rename-input")

    row(page, "dialog-me").get_by_role("button", name="Rename dialog-me 1.0").click()
    expect(dialog).to_be_visible()
    expect(name).to_have_value("dialog-me")  # pre-filled
    name.fill("discarded")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(row(page, "dialog-me").get_by_test_id("adapter-link")).to_have_text("dialog-me")

    row(page, "dialog-me").get_by_test_id("rename-button").click()
    expect(name).to_have_value("dialog-me")  # the discarded edit is gone
    name.fill("   ")
    expect(dialog.get_by_test_id("rename-error")).to_have_text(EMPTY_NAME)
    expect(dialog.get_by_role("button", name="Save")).to_be_disabled()
    name.press("Enter")
    name.fill("x" * 101)
    expect(dialog.get_by_test_id("rename-error")).to_have_text(LONG_NAME)
    expect(dialog.get_by_role("button", name="Save")).to_be_disabled()
    shoot(page, "adapters-rename-dialog")
    name.press("Enter")
    expect(dialog).to_be_visible()
    assert patches == []  # nothing was sent

    name.fill("taken-name")  # a name that has this version already: the server's 409, in the dialog
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_test_id("rename-error")).to_contain_text("has a version '1.0' already")
    expect(dialog).to_be_visible()

    name.fill("  Renamed in dialog  ")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(f'[data-adapter-id="{adapter["id"]}"] [data-testid=adapter-link]')).to_have_text(
        "Renamed in dialog"
    )
    after = studio.get(adapter["id"])
    assert after["name"] == "Renamed in dialog" and after["updated_at"] > before

    page.reload()
    expect(row(page, "Renamed in dialog")).to_be_visible()
    row(page, "Renamed in dialog").get_by_test_id("adapter-link").click()
    expect(page.get_by_test_id("adapter-name")).to_have_text("Renamed in dialog")


def test_delete_asks_first_and_removes_the_adapter(page: Page, studio: Studio) -> None:
    doomed = studio.adapter("doomed", "1.0")
    also = studio.adapter("doomed", "2.0")
    open_list(page, studio, "?q=doomed")
    dialog = page.get_by_test_id("delete-dialog")

    row(page, "doomed", "1.0").get_by_role("button", name="Delete doomed 1.0").click()
    expect(dialog).to_contain_text("Delete doomed 1.0?")
    expect(dialog).to_contain_text("files stay on disk")
    dialog.get_by_role("button", name="Cancel").click()
    expect(row(page, "doomed", "1.0")).to_be_visible()
    row(page, "doomed", "1.0").get_by_test_id("delete-button").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(row(page, "doomed", "1.0")).to_have_count(0)
    expect(row(page, "doomed", "2.0")).to_be_visible()
    assert studio.server.api.get(f"/api/adapters/{doomed['id']}").status_code == 404

    open_adapter(page, studio, also["id"])  # from its own page: back to the list, where it is gone
    page.get_by_test_id("delete-button").click()
    page.get_by_test_id("delete-dialog").get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"/adapters(\?.*)?$"))
    empty = page.get_by_test_id("empty-state")
    expect(empty).to_contain_text("No adapters match “doomed”", use_inner_text=True)  # the filter it was left with
    assert studio.server.api.get(f"/api/adapters/{also['id']}").status_code == 404


# One adapter


def test_the_overview_shows_base_model_provenance_lora_metrics_and_usage(page: Page, studio: Studio) -> None:
    adapter = studio.trained_adapter("overview", "1.0", {"final_loss": 0.4321, "best_eval_loss": 0.5})
    studio.call("PATCH", f"/api/adapters/{adapter['id']}", json={"description": "brushed snare, r=16"})
    open_list(page, studio, "?q=overview")
    row(page, "overview").get_by_test_id("adapter-link").click()  # from the list, as a user gets there

    expect(page.get_by_test_id("adapter-name")).to_have_text("overview")
    expect(page.get_by_test_id("adapter-version")).to_have_text("1.0")
    expect(page.get_by_test_id("adapter-description")).to_have_text("brushed snare, r=16")
    expect(page.get_by_role("tab", name="Overview")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("base-model-name")).to_have_text("Tiny MusicGen")
    duration = studio.get(adapter["id"])["base_model"]["max_duration_s"]
    expect(page.get_by_test_id("base-model-duration")).to_have_text(re.compile(rf"^{duration:g}(\.\d+)? s$"))
    expect(page.get_by_test_id("base-model-rate")).to_have_text("32,000 Hz")
    expect(page.get_by_test_id("compatibility")).to_contain_text("Fits the current model")
    expect(page.get_by_test_id("provenance-note")).to_contain_text("trained outside TuneLab")
    expect(page.get_by_test_id("lora-r")).to_have_text("16")
    expect(page.locator("[data-testid=metric-row][data-metric=final_loss] td")).to_have_text("0.4321")
    expect(page.get_by_test_id("usage-generations")).to_have_text("0")
    expect(page.get_by_test_id("usage-rating")).to_have_text("No ratings yet")
    expect(page.get_by_role("link", name="Download (PEFT zip)")).to_have_attribute(
        "href", f"/api/adapters/{adapter['id']}/export"
    )
    switch = page.get_by_role("switch", name="Active")
    switch.check()
    expect(page.get_by_test_id("active-text")).to_have_text("Active")
    assert studio.get(adapter["id"])["active"] is True
    shoot(page, "adapter-overview")
    fits_phone(page)


def test_an_adapter_for_another_model_says_what_it_requires(page: Page, studio: Studio) -> None:
    adapter = studio.adapter("other-model", "1.0", base_model_id="other")
    open_adapter(page, studio, adapter["id"])

    expect(page.get_by_test_id("compatibility")).to_contain_text(
        "Requires Other MusicGen; the current model is Tiny MusicGen."
    )
    expect(page.get_by_role("switch", name="Active")).to_be_disabled()


def test_the_name_is_renamed_in_place_enter_saves_escape_discards(page: Page, studio: Studio) -> None:
    adapter = studio.adapter("inline", "1.0")
    before = studio.get(adapter["id"])["updated_at"]
    patches: list[Request] = []
    page.on("request", lambda request: patches.append(request) if request.method == "PATCH" else None)
    open_adapter(page, studio, adapter["id"])
    name, field = page.get_by_test_id("adapter-name"), page.get_by_test_id("name-input")

    name.click()  # the name itself
    expect(field).to_be_focused()
    expect(field).to_have_value("inline")
    field.fill("inline, escaped")
    field.press("Escape")
    expect(name).to_have_text("inline")
    expect(field).to_have_count(0)

    page.get_by_role("button", name="Rename adapter").click()  # the pencil
    field.fill("inline, cancelled")
    page.get_by_role("button", name="Cancel").click()
    expect(name).to_have_text("inline")

    name.click()
    field.fill("")
    expect(page.get_by_test_id("name-error")).to_have_text(EMPTY_NAME)
    expect(page.get_by_role("button", name="Save")).to_be_disabled()
    field.press("Enter")
    field.fill("y" * 101)
    expect(page.get_by_test_id("name-error")).to_have_text(LONG_NAME)
    expect(page.get_by_role("button", name="Save")).to_be_disabled()
    shoot(page, "adapter-rename-inline")
    field.press("Enter")
    expect(field).to_be_visible()  # still editing
    assert patches == [] and studio.get(adapter["id"])["name"] == "inline"

    field.fill("inline, entered")
    field.press("Enter")
    expect(name).to_have_text("inline, entered")
    assert studio.get(adapter["id"])["name"] == "inline, entered"

    page.get_by_role("button", name="Rename adapter").click()
    field.fill("inline, saved")
    page.get_by_role("button", name="Save").click()
    expect(name).to_have_text("inline, saved")
    after = studio.get(adapter["id"])
    assert after["name"] == "inline, saved" and after["updated_at"] > before
    assert len(patches) == 2

    page.reload()
    expect(name).to_have_text("inline, saved")
    open_list(page, studio, "?q=inline")
    expect(row(page, "inline, saved").get_by_test_id("adapter-link")).to_have_text("inline, saved")


def config_value(page: Page, key: str) -> Locator:
    return page.locator(f'[data-testid=config-row][data-key="{key}"] [data-testid=config-value]')


def test_the_configuration_tab_groups_formats_and_explains_each_value(page: Page, studio: Studio) -> None:
    adapter = studio.trained_adapter("configured", "1.0", {"final_loss": 0.5}, some_flag=True)
    open_adapter(page, studio, adapter["id"])
    page.get_by_role("tab", name="Configuration").click()
    expect(page).to_have_url(re.compile(r"#configuration$"))

    panel = page.get_by_role("tabpanel", name="Configuration")
    expect(panel.get_by_test_id("config-group-name")).to_have_text(CONFIG_GROUPS)  # no DPO: supervised
    expect(config_value(page, "hyperparameters.learning_rate")).to_have_text("1e-4")
    expect(config_value(page, "hyperparameters.lora_target_modules")).to_have_text("q_proj, k_proj, v_proj, out_proj")
    expect(config_value(page, "resume_from")).to_have_text("Not set")
    expect(config_value(page, "hyperparameters.some_flag")).to_have_text("Yes")
    expect(config_value(page, "hyperparameters.lora_r")).to_have_text("16")

    learning_rate = page.locator('[data-testid=config-row][data-key="hyperparameters.learning_rate"]')
    info = learning_rate.get_by_role("button", name="About Learning rate")
    tip = learning_rate.get_by_role("tooltip")
    expect(tip).to_be_hidden()
    info.hover()
    expect(tip).to_be_visible()
    expect(tip).to_have_text("Step size of the optimiser (AdamW). Typical for LoRA: 1e-5–5e-4.")
    assert info.get_attribute("aria-describedby") == tip.get_attribute("id")
    page.mouse.move(5, 5)  # away
    expect(tip).to_be_hidden()

    info.focus()  # the keyboard gets the same explanation
    expect(tip).to_be_visible()
    shoot(page, "adapter-configuration")
    page.set_viewport_size(PHONE)
    info.focus()
    expect(tip).to_be_visible()
    box = tip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]  # all of it on screen
    page.set_viewport_size({"width": 1280, "height": 720})
    page.keyboard.press("Tab")
    expect(tip).to_be_hidden()
    expect(page.locator("[role=tooltip]:visible")).to_have_count(1)  # only the next icon's, now focused


def test_dpo_settings_appear_only_for_a_preference_trained_adapter(page: Page, studio: Studio) -> None:
    config = copy.deepcopy(studio.config)
    config["training_type"] = "preference"
    adapter = studio.adapter("preferred", "1.0", training_config=config)
    open_adapter(page, studio, adapter["id"], "configuration")

    panel = page.get_by_role("tabpanel", name="Configuration")
    expect(panel.get_by_test_id("config-group-name")).to_have_text([*CONFIG_GROUPS, "DPO"])
    expect(config_value(page, "hyperparameters.beta")).to_have_text("0.1")
    expect(config_value(page, "training_type")).to_have_text("preference")


def test_an_adapter_without_a_training_config_says_so_and_shows_no_tables(page: Page, studio: Studio) -> None:
    adapter = studio.adapter("bare", "1.0")
    open_adapter(page, studio, adapter["id"])
    page.get_by_role("tab", name="Configuration").click()

    panel = page.get_by_role("tabpanel", name="Configuration")
    expect(panel).to_contain_text("No training configuration is available for this adapter: it was registered from "
                                  "outside TuneLab")  # fmt: skip
    expect(panel.locator("table")).to_have_count(0)
    expect(panel.get_by_test_id("config-group")).to_have_count(0)
    expect(panel.get_by_test_id("info-button")).to_have_count(0)
    shoot(page, "adapter-no-configuration")


def test_the_versions_tab_charts_the_losses_rolls_back_and_diffs(page: Page, studio: Studio) -> None:
    v1 = studio.trained_adapter("timeline", "1.0", {"final_loss": 0.9, "best_eval_loss": 0.95})
    v2 = studio.trained_adapter("timeline", "2.0", {"final_loss": 0.7, "best_eval_loss": 0.8})
    studio.trained_adapter("timeline", "3.0", {"final_loss": 0.6, "best_eval_loss": 0.75}, learning_rate=2e-4)
    studio.activate(v1["id"])
    studio.activate(v2["id"])  # turns 1.0 off: a roll back would bring it back
    open_adapter(page, studio, v2["id"])
    page.get_by_role("tab", name="Versions").click()

    rows = page.get_by_test_id("version-row")
    expect(rows).to_have_count(3)
    expect(page.get_by_test_id("version-label")).to_have_text(["1.0", "2.0 (this one)", "3.0"])
    expect(page.get_by_test_id("version-final-loss")).to_have_text(["0.9", "0.7", "0.6"])
    expect(page.get_by_test_id("version-status")).to_have_text(["Inactive", "Active", "Inactive"])
    expect(rows.nth(0).get_by_test_id("version-periods")).to_contain_text("–")  # was active, ended
    expect(rows.nth(1).get_by_test_id("version-periods")).to_contain_text("since")
    expect(rows.nth(2).get_by_test_id("version-periods")).to_have_text("never")
    chart = page.get_by_test_id("version-chart")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart).to_contain_text("Final loss")
    expect(chart).to_contain_text("Best eval loss")
    box = chart.bounding_box()
    assert box is not None and box["width"] > 200
    expect(page.get_by_test_id("history-item").first).to_contain_text("2.0 activated")
    expect(page.get_by_test_id("history")).to_contain_text("1.0 deactivated: 2.0 replaced it")
    expect(page.get_by_test_id("history-item").last).to_contain_text("1.0 registered by hand")

    page.get_by_test_id("version-select").nth(0).check()
    page.get_by_test_id("version-select").nth(2).check()
    page.get_by_role("button", name="Show differences").click()
    diff = page.get_by_test_id("version-diff")
    expect(diff).to_contain_text("From 1.0 to 3.0")
    changed = diff.locator('[data-testid=diff-config-row][data-config-key="hyperparameters.learning_rate"]')
    expect(changed.locator("td")).to_have_text(["1e-4", "2e-4", "changed"])
    final = diff.locator("[data-testid=diff-metric-row][data-metric=final_loss]")
    expect(final.get_by_test_id("diff-delta")).to_have_text("-0.3")
    expect(final).to_contain_text("3.0 is better")
    expect(diff.get_by_test_id("diff-model-row")).to_contain_text("same")
    shoot(page, "adapter-versions")
    fits_phone(page)

    page.get_by_role("button", name="Roll back to 1.0").click()
    expect(page.get_by_test_id("version-status")).to_have_text(["Active", "Inactive", "Inactive"])
    expect(page.get_by_role("switch", name="Active")).not_to_be_checked()  # this page's adapter, 2.0, is off now
    expect(page.get_by_test_id("history-item").first).to_contain_text("1.0 activated")
    assert studio.get(v1["id"])["active"] is True and studio.get(v2["id"])["active"] is False


# The comparison


def test_the_comparison_highlights_the_better_value_and_the_differing_config(page: Page, studio: Studio) -> None:
    a = studio.trained_adapter("cmp-a", "1.0", {"final_loss": 0.5, "best_eval_loss": 0.6})
    b = studio.trained_adapter("cmp-b", "1.0", {"final_loss": 0.4, "best_eval_loss": 0.7}, learning_rate=3e-4)
    open_list(page, studio, "?q=cmp-")
    expect(page.get_by_test_id("compare-button")).to_have_attribute("aria-disabled", "true")
    row(page, "cmp-a").get_by_test_id("adapter-select").check()
    row(page, "cmp-b").get_by_test_id("adapter-select").check()
    page.get_by_role("link", name="Compare (2)").click()
    expect(page).to_have_url(re.compile(r"/adapters/compare\?ids="))

    final = page.locator("[data-testid=compare-metric-row][data-metric=final_loss]")
    expect(final.get_by_test_id("metric-goal")).to_have_text("lower is better")
    better = final.locator(f'[data-testid=compare-cell][data-adapter-id="{b["id"]}"]')
    worse = final.locator(f'[data-testid=compare-cell][data-adapter-id="{a["id"]}"]')
    expect(better).to_have_class(re.compile(r"\bbest\b"))
    expect(better).to_contain_text("0.4")
    expect(better.get_by_test_id("best-marker")).to_contain_text("better")
    expect(worse).not_to_have_class(re.compile(r"\bbest\b"))
    expect(worse.get_by_test_id("best-marker")).to_have_count(0)
    eval_best = page.locator(f'[data-metric=best_eval_loss] [data-testid=compare-cell][data-adapter-id="{a["id"]}"]')
    expect(eval_best).to_have_class(re.compile(r"\bbest\b"))

    lr = page.locator('[data-testid=compare-config-row][data-config-key="hyperparameters.learning_rate"]')
    expect(lr).to_have_class(re.compile(r"\bdiffers\b"))
    expect(lr.get_by_test_id("differs-marker")).to_have_text("differs")
    expect(lr.locator("td")).to_have_text(["1e-4", "3e-4"])
    epochs = page.locator('[data-testid=compare-config-row][data-config-key="hyperparameters.epochs"]')
    expect(epochs).not_to_have_class(re.compile(r"\bdiffers\b"))
    shoot(page, "adapter-compare")
    fits_phone(page)

    differing = studio.call("GET", "/api/adapters/compare", params={"ids": f"{a['id']},{b['id']}"})["differing"]
    page.get_by_label("Only differences").check()
    expect(page.get_by_test_id("compare-config-row")).to_have_count(len(differing))
    expect(epochs).to_have_count(0)
    expect(lr).to_be_visible()
    page.get_by_role("link", name="Adapters", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/adapters(\?.*)?$"))


def test_the_comparison_of_unknown_ids_shows_the_apis_message(page: Page, studio: Studio) -> None:
    page.goto(f"{studio.url}/adapters/compare?ids=adp-nope,adp-gone")

    error = page.get_by_test_id("load-error")
    expect(error).to_contain_text("Unknown adapter ids: adp-nope, adp-gone")
    expect(error.get_by_role("link", name="Back to the adapters")).to_have_attribute("href", "/adapters")
    expect(page.get_by_test_id("compare-table")).to_have_count(0)


def test_an_unknown_adapter_is_the_404_page(page: Page, studio: Studio) -> None:
    response = page.goto(f"{studio.url}/adapters/adp-missing")

    assert response is not None and response.status == 404
    expect(page.get_by_test_id("error-code")).to_have_text("adapter_not_found")
