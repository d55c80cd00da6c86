"""A real browser sending requests to the studio from another origin (cross-site request forgery)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .live import LiveServer

pytestmark = pytest.mark.browser


def test_a_page_of_another_origin_cannot_archive_an_experiment(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Precious")
    # http://localhost:PORT and http://127.0.0.1:PORT are the same server but two origins for the browser.
    other_origin = live_server.url.replace("127.0.0.1", "localhost")
    page.goto(f"{other_origin}/experiments")
    expect(page.get_by_test_id("experiment-total")).to_be_visible()

    # A "simple" request: the browser sends it without asking first and only hides the answer from the page.
    page.evaluate(
        "url => fetch(url, {method: 'POST', mode: 'no-cors'})",
        f"{live_server.url}/api/experiments/{exp['id']}/archive",
    )

    assert live_server.experiment(exp["id"])["status"] == "draft"


def test_the_studio_page_still_posts_to_its_own_origin(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Disposable")
    page.goto(f"{live_server.url}/experiments")

    status = page.evaluate(
        "url => fetch(url, {method: 'POST'}).then(r => r.status)",
        f"{live_server.url}/api/experiments/{exp['id']}/archive",
    )

    assert status == 200
    assert live_server.experiment(exp["id"])["status"] == "archived"
