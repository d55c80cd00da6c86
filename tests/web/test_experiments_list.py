"""The experiments list in a real browser: issue #9, what a new user hit (toasts, form errors, pages, URL, phones)."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from .live import LiveServer

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def row(page: Page, name: str) -> Locator:
    return page.get_by_test_id("experiment-row").filter(has=page.get_by_role("link", name=name, exact=True))


def row_names(page: Page) -> list[str]:
    return page.get_by_test_id("experiment-link").all_inner_texts()


def open_list(page: Page, server: LiveServer, query: str = "") -> None:
    page.goto(f"{server.url}/experiments{query}")
    expect(page.get_by_test_id("experiment-total")).to_be_visible()


def create_many(server: LiveServer, count: int, prefix: str = "Exp") -> None:
    for i in range(count):
        server.create_experiment(f"{prefix} {i:02d}")


def fail_archiving(route: Route) -> None:
    body = {"error": {"code": "internal_error", "message": "The store is unavailable.", "details": {}}}
    route.fulfill(status=500, content_type="application/json", body=json.dumps(body))


# Toasts


def test_a_success_toast_leaves_on_its_own(page: Page, live_server: LiveServer) -> None:
    page.clock.install()
    open_list(page, live_server)

    page.get_by_label("Name").fill("Fresh idea")
    page.get_by_role("button", name="Create experiment").click()
    toast = page.get_by_test_id("toast")
    expect(toast).to_contain_text("Created experiment “Fresh idea”")

    page.clock.fast_forward(3000)
    expect(toast).to_have_count(1)
    page.clock.fast_forward(2100)
    expect(toast).to_have_count(0)


def test_an_error_toast_stays_longer_and_can_be_dismissed(page: Page, live_server: LiveServer) -> None:
    live_server.create_experiment("Fragile")
    live_server.create_experiment("Brittle")
    page.clock.install()
    page.route("**/archive", fail_archiving)
    open_list(page, live_server)

    for name in ("Fragile", "Brittle"):
        page.get_by_role("button", name=f"Archive {name}").click()
        page.get_by_test_id("archive-confirm").click()
    page.mouse.move(0, 0)  # a pointer resting on a toast holds it
    toasts = page.get_by_test_id("toast")
    expect(toasts).to_have_count(2)
    expect(toasts.first).to_have_attribute("data-kind", "error")
    expect(toasts.first).to_contain_text("The store is unavailable.")

    page.clock.fast_forward(6000)
    expect(toasts).to_have_count(2)
    toasts.filter(has_text="Brittle").get_by_role("button", name="Dismiss notification").click()
    expect(toasts).to_have_count(1)
    page.mouse.move(0, 0)
    page.clock.fast_forward(4500)
    expect(toasts).to_have_count(0)


def test_at_most_three_toasts_show_at_once_newest_kept(page: Page, live_server: LiveServer) -> None:
    open_list(page, live_server)

    for i in range(5):
        page.get_by_label("Name").fill(f"Idea {i}")
        page.get_by_role("button", name="Create experiment").click()
        expect(row(page, f"Idea {i}")).to_be_visible()

    toasts = page.get_by_test_id("toast")
    expect(toasts).to_have_count(3)
    expect(toasts.last).to_contain_text("Idea 4")
    expect(toasts.first).to_contain_text("Idea 2")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_toasts_never_cover_the_last_row_or_the_page_controls(
    page: Page, live_server: LiveServer, viewport: dict[str, int]
) -> None:
    create_many(live_server, 30)
    page.set_viewport_size(viewport)
    open_list(page, live_server)
    expect(page.get_by_test_id("experiment-row")).to_have_count(25)

    # Three archived from the bottom of the page: the most toasts there can be at once.
    for left in (29, 28, 27):
        page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        page.get_by_test_id("experiment-row").last.get_by_test_id("archive-button").click()
        page.get_by_test_id("archive-confirm").click()
        expect(page.get_by_test_id("page-range")).to_have_text(re.compile(rf"1\s*–\s*25\s+of\s+{left}"))
    expect(page.get_by_test_id("toast")).to_have_count(3)
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")

    # Boxes in window coordinates, after the next frame: the toasts are fixed there, so what they overlap there is
    # what they hide.
    hidden = page.evaluate(
        """() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => {
            const toasts = [...document.querySelectorAll('[data-testid=toast]')].map((t) => t.getBoundingClientRect());
            const rows = document.querySelectorAll('[data-testid=experiment-row]');
            const needed = [rows[rows.length - 1], ...document.querySelectorAll('[data-testid=pager] button')];
            const overlaps = (a, b) => a.bottom > b.top && a.top < b.bottom && a.right > b.left && a.left < b.right;
            resolve({
                toasts: toasts.length,
                hidden: needed.filter((el) => toasts.some((t) => overlaps(el.getBoundingClientRect(), t)))
                              .map((el) => el.dataset.testid),
            });
        })))"""
    )
    assert hidden == {"toasts": 3, "hidden": []}


# The create form


def test_a_form_error_goes_when_the_name_is_edited_or_the_user_moves_on(page: Page, live_server: LiveServer) -> None:
    live_server.create_experiment("Taken")
    open_list(page, live_server)
    error = page.get_by_test_id("create-error")
    name = page.get_by_label("Name")

    page.get_by_role("button", name="Create experiment").click()
    expect(error).to_have_text("Give the experiment a name.")
    expect(name).to_have_attribute("aria-invalid", "true")
    name.press_sequentially("Tak")
    expect(error).to_be_hidden()
    expect(name).to_have_attribute("aria-invalid", "false")

    name.fill("Taken")
    page.get_by_role("button", name="Create experiment").click()
    expect(error).to_contain_text("already exists")
    page.get_by_label("Sort").select_option(label="Name A–Z")
    expect(error).to_be_hidden()

    page.get_by_role("button", name="Create experiment").click()
    expect(error).to_contain_text("already exists")
    name.fill("Not taken")
    page.get_by_role("button", name="Create experiment").click()
    expect(row(page, "Not taken")).to_be_visible()
    expect(error).to_be_hidden()


# Pages, sort and filter


def test_page_controls_step_through_the_list_in_pages_of_the_chosen_size(page: Page, live_server: LiveServer) -> None:
    create_many(live_server, 12)
    open_list(page, live_server)
    position = page.get_by_test_id("page-position")
    previous, following = page.get_by_role("button", name="Previous"), page.get_by_role("button", name="Next")
    expect(page.get_by_test_id("experiment-row")).to_have_count(12)
    expect(position).to_have_text("Page 1 of 1")
    expect(following).to_be_disabled()

    page.get_by_label("Per page").select_option("10")

    expect(page.get_by_test_id("experiment-row")).to_have_count(10)
    expect(position).to_have_text("Page 1 of 2")
    expect(page.get_by_test_id("page-range")).to_have_text(re.compile(r"1\s*–\s*10\s+of\s+12"))
    expect(previous).to_be_disabled()
    assert row_names(page)[0] == "Exp 11"
    following.click()
    expect(position).to_have_text("Page 2 of 2")
    expect(page.get_by_test_id("experiment-row")).to_have_count(2)
    assert row_names(page) == ["Exp 01", "Exp 00"]
    expect(following).to_be_disabled()
    previous.click()
    expect(position).to_have_text("Page 1 of 2")
    expect(row(page, "Exp 11")).to_be_visible()
    expect(page.get_by_test_id("load-more")).to_have_count(0)


def test_sort_and_status_filter_ask_the_api_for_that_order_and_status(page: Page, live_server: LiveServer) -> None:
    for name in ("Bravo", "Alpha", "Charlie"):
        live_server.create_experiment(name)
    live_server.start_external_run(live_server.create_experiment("Delta")["id"], "run-1")
    live_server.archive(live_server.create_experiment("Echo")["id"])
    open_list(page, live_server)
    expect(page.get_by_test_id("experiment-row")).to_have_count(4)

    page.get_by_label("Sort").select_option(label="Name A–Z")
    expect(page.get_by_test_id("experiment-link").first).to_have_text("Alpha")
    assert row_names(page) == ["Alpha", "Bravo", "Charlie", "Delta"]
    page.get_by_label("Sort").select_option(label="Name Z–A")
    expect(page.get_by_test_id("experiment-link").first).to_have_text("Delta")

    page.get_by_label("Status").select_option("running")
    expect(page.get_by_test_id("experiment-row")).to_have_count(1)
    expect(row(page, "Delta").get_by_test_id("status-badge")).to_have_text("Running")
    page.get_by_label("Status").select_option("archived")
    expect(page.get_by_test_id("experiment-row")).to_have_count(1)
    expect(row(page, "Echo")).to_be_visible()
    expect(page.get_by_label("Show archived")).to_be_disabled()
    page.get_by_label("Status").select_option("")
    expect(page.get_by_test_id("experiment-row")).to_have_count(4)


# The view in the address


def test_search_archived_sort_size_and_page_survive_reload_back_and_a_shared_link(
    page: Page, live_server: LiveServer
) -> None:
    create_many(live_server, 25)
    live_server.archive(live_server.create_experiment("Exp shelved")["id"])
    live_server.create_experiment("Other")
    open_list(page, live_server)

    page.get_by_label("Search experiments").fill("Exp")
    expect(page.get_by_test_id("experiment-total")).to_have_text("25")
    page.get_by_label("Show archived").check()
    expect(page.get_by_test_id("experiment-total")).to_have_text("26")
    page.get_by_label("Sort").select_option("name")
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("page-position")).to_have_text("Page 2 of 3")
    expect(page.get_by_test_id("experiment-link").first).to_have_text("Exp 10")
    expect(page).to_have_url(re.compile(r"\?q=Exp&include_archived=true&sort=name&page=2&page_size=10$"))

    def expect_the_same_view(on: Page) -> None:
        expect(on.get_by_test_id("page-position")).to_have_text("Page 2 of 3")
        expect(on.get_by_test_id("experiment-link").first).to_have_text("Exp 10")
        expect(on.get_by_label("Search experiments")).to_have_value("Exp")
        expect(on.get_by_label("Show archived")).to_be_checked()
        expect(on.get_by_label("Sort")).to_have_value("name")
        expect(on.get_by_label("Per page")).to_have_value("10")

    page.reload()
    expect_the_same_view(page)

    shared = page.context.new_page()
    shared.goto(page.url)
    expect_the_same_view(shared)
    shared.close()

    page.go_back()
    expect(page.get_by_test_id("page-position")).to_have_text("Page 1 of 3")
    expect(page.get_by_test_id("experiment-link").first).to_have_text("Exp 00")
    page.go_back()
    expect(page.get_by_label("Per page")).to_have_value("25")
    expect(page.get_by_test_id("experiment-row")).to_have_count(25)

    page.get_by_label("Status").select_option("archived")
    expect(page).to_have_url(re.compile(r"status=archived"))
    expect(page.get_by_test_id("experiment-row")).to_have_count(1)
    page.reload()
    expect(page.get_by_label("Status")).to_have_value("archived")
    expect(row(page, "Exp shelved")).to_be_visible()


def test_a_link_past_the_last_page_shows_the_last_page(page: Page, live_server: LiveServer) -> None:
    create_many(live_server, 12)

    open_list(page, live_server, "?page_size=10&page=7")

    expect(page.get_by_test_id("page-position")).to_have_text("Page 2 of 2")
    expect(page.get_by_test_id("experiment-row")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"page=2"))


# Phones


def test_on_a_phone_every_row_is_a_card_with_nothing_off_screen(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Bass LoRA with a rather long name for a phone", "rank 4, 8, 16")
    live_server.external_run(exp["id"], "rank-8", {"lora_r": 8}, {"loss": 0.3123, "accuracy": 0.875})
    live_server.archive(live_server.create_experiment("Shelved")["id"])
    live_server.create_experiment("Drums")
    page.set_viewport_size(PHONE)
    open_list(page, live_server, "?include_archived=true")
    rows = page.get_by_test_id("experiment-row")
    expect(rows).to_have_count(3)

    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for each in rows.all():
        parts = ["experiment-link", "status-badge", "run-count", "best-metrics", "created", "updated"]
        button = each.get_by_role("button", name=re.compile(r"^(Archive|Unarchive) "))
        for part in [*(each.get_by_test_id(name) for name in parts), button]:
            part.scroll_into_view_if_needed()
            expect(part).to_be_visible()
            box = part.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], part
    bass = rows.filter(has_text="Bass LoRA")
    expect(bass.get_by_test_id("best-metrics")).to_contain_text("loss 0.3123")
    expect(bass.get_by_test_id("run-count")).to_have_text("1")


# Empty states


def test_an_empty_studio_says_how_to_start(page: Page, live_server: LiveServer) -> None:
    open_list(page, live_server)

    empty = page.get_by_test_id("empty-state")
    expect(empty).to_contain_text("No experiments yet.")
    expect(empty).to_contain_text("Show archived")
    expect(page.get_by_test_id("pager")).to_be_hidden()
    empty.get_by_role("button", name="Create an experiment").click()
    expect(page.get_by_label("Name")).to_be_focused()


def test_no_matches_names_the_filter_and_offers_to_clear_it(page: Page, live_server: LiveServer) -> None:
    live_server.create_experiment("Piano")
    open_list(page, live_server, "?q=violin&status=running")

    empty = page.get_by_test_id("empty-state")
    expect(empty.get_by_test_id("no-matches")).to_have_text(re.compile(r"No\s+running\s+experiments\s+match “violin”"))
    expect(empty).not_to_contain_text("No experiments yet")
    empty.get_by_role("button", name="Clear search and filters").click()

    expect(row(page, "Piano")).to_be_visible()
    expect(page.get_by_label("Search experiments")).to_have_value("")
    expect(page.get_by_label("Status")).to_have_value("")
    expect(page).to_have_url(f"{live_server.url}/experiments")
