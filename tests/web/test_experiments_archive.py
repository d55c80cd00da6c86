"""The experiments list in a real browser: spec v2 "Experiment Archive UI", scenario by scenario."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .live import LiveServer

pytestmark = pytest.mark.browser


def row(page: Page, name: str):  # noqa: ANN201 - a Playwright Locator
    return page.get_by_test_id("experiment-row").filter(has=page.get_by_role("link", name=name, exact=True))


def open_list(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/experiments")
    expect(page.get_by_test_id("experiment-total")).to_be_visible()


def test_each_active_experiment_offers_an_archive_button(page: Page, live_server: LiveServer) -> None:
    for name in ("Bass LoRA", "Drums DPO"):
        live_server.create_experiment(name)
    live_server.archive(live_server.create_experiment("Old sweep")["id"])

    open_list(page, live_server)

    expect(page.get_by_test_id("experiment-row")).to_have_count(2)
    for name in ("Bass LoRA", "Drums DPO"):
        expect(page.get_by_role("button", name=f"Archive {name}", exact=True)).to_be_visible()
    page.get_by_label("Show archived").check()
    expect(page.get_by_test_id("experiment-row")).to_have_count(3)
    expect(row(page, "Old sweep").get_by_test_id("archive-button")).to_have_count(0)


def test_archive_dialog_names_the_experiment_and_cancel_keeps_it(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Synth pads")
    open_list(page, live_server)

    page.get_by_role("button", name="Archive Synth pads").click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("archive-dialog-name")).to_have_text("Synth pads")
    expect(dialog).to_contain_text(re.compile(r"can unarchive it later", re.IGNORECASE))
    dialog.get_by_role("button", name="Cancel").click()

    expect(dialog).to_be_hidden()
    expect(row(page, "Synth pads")).to_be_visible()
    expect(page.get_by_test_id("toast")).to_have_count(0)
    assert live_server.experiment(exp["id"])["status"] == "draft"


def test_escape_closes_the_dialog_without_archiving(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Lo-fi beats")
    open_list(page, live_server)

    page.get_by_role("button", name="Archive Lo-fi beats").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")

    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(row(page, "Lo-fi beats")).to_be_visible()
    assert live_server.experiment(exp["id"])["archived"] is False


def test_confirming_archives_removes_the_row_and_notifies(page: Page, live_server: LiveServer) -> None:
    keep = live_server.create_experiment("Keep me")
    gone = live_server.create_experiment("Archive me")
    open_list(page, live_server)

    page.get_by_role("button", name="Archive Archive me").click()
    page.get_by_role("dialog").get_by_role("button", name="Archive", exact=True).click()

    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(row(page, "Archive me")).to_have_count(0)
    expect(row(page, "Keep me")).to_be_visible()
    toast = page.get_by_test_id("toast")
    expect(toast).to_contain_text("Archived “Archive me”")
    expect(toast).to_have_attribute("data-kind", "success")
    assert live_server.experiment(gone["id"])["status"] == "archived"
    assert live_server.listed_ids() == {keep["id"]}


def test_archiving_while_showing_archived_keeps_the_row_marked(page: Page, live_server: LiveServer) -> None:
    live_server.create_experiment("Vocals")
    open_list(page, live_server)
    page.get_by_label("Show archived").check()

    page.get_by_role("button", name="Archive Vocals").click()
    page.get_by_test_id("archive-confirm").click()

    expect(row(page, "Vocals")).to_have_class(re.compile(r"\barchived\b"))
    expect(row(page, "Vocals").get_by_role("button", name="Unarchive Vocals")).to_be_visible()


def test_show_archived_toggle_lists_archived_experiments_distinctly(page: Page, live_server: LiveServer) -> None:
    live_server.create_experiment("Active one")
    live_server.archive(live_server.create_experiment("Shelved one")["id"])
    open_list(page, live_server)

    expect(row(page, "Shelved one")).to_have_count(0)
    toggle = page.get_by_label("Show archived")
    toggle.check()

    shelved = row(page, "Shelved one")
    expect(shelved).to_be_visible()
    expect(shelved).to_have_class(re.compile(r"\barchived\b"))
    expect(shelved.get_by_test_id("status-badge")).to_have_text("Archived")
    expect(row(page, "Active one")).not_to_have_class(re.compile(r"\barchived\b"))

    toggle.uncheck()
    expect(row(page, "Shelved one")).to_have_count(0)
    expect(row(page, "Active one")).to_be_visible()


def test_unarchive_restores_the_experiment_as_active(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Strings")
    live_server.archive(exp["id"])
    open_list(page, live_server)
    page.get_by_label("Show archived").check()

    page.get_by_role("button", name="Unarchive Strings").click()

    expect(page.get_by_test_id("toast")).to_contain_text("Restored “Strings”")
    restored = row(page, "Strings")
    expect(restored).not_to_have_class(re.compile(r"\barchived\b"))
    expect(restored.get_by_test_id("status-badge")).to_have_text("Draft")
    expect(restored.get_by_role("button", name="Archive Strings")).to_be_visible()
    assert live_server.experiment(exp["id"])["status"] == "draft"

    page.get_by_label("Show archived").uncheck()
    expect(row(page, "Strings")).to_be_visible()
    page.reload()
    expect(row(page, "Strings")).to_be_visible()


def test_create_form_adds_the_experiment_and_shows_api_errors_inline(page: Page, live_server: LiveServer) -> None:
    live_server.create_experiment("Taken")
    open_list(page, live_server)

    page.get_by_label("Name").fill("Fresh idea")
    page.get_by_label("Description").fill("Try rank 8")
    page.get_by_role("button", name="Create experiment").click()

    expect(row(page, "Fresh idea")).to_be_visible()
    expect(row(page, "Fresh idea")).to_contain_text("Try rank 8")
    expect(page.get_by_test_id("toast")).to_contain_text("Created experiment “Fresh idea”")
    expect(page.get_by_label("Name")).to_have_value("")

    page.get_by_label("Name").fill("Taken")
    page.get_by_role("button", name="Create experiment").click()
    expect(page.get_by_test_id("create-error")).to_contain_text("already exists")
    expect(page.get_by_test_id("experiment-row")).to_have_count(2)
