"""The experiment page in a real browser: runs table, run comparison, unknown ids."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .live import LiveServer

pytestmark = pytest.mark.browser

BEST = re.compile(r"\bbest\b")


def test_compare_highlights_the_best_run_per_metric(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Rank sweep", "LoRA rank 4, 8, 16")
    runs = {
        "rank-4": live_server.external_run(exp["id"], "rank-4", {"lora_r": 4}, {"loss": 0.52, "accuracy": 0.71}),
        "rank-8": live_server.external_run(exp["id"], "rank-8", {"lora_r": 8}, {"loss": 0.31, "accuracy": 0.64}),
        "rank-16": live_server.external_run(exp["id"], "rank-16", {"lora_r": 16}, {"loss": 0.44, "accuracy": 0.93}),
    }

    page.goto(f"{live_server.url}/experiments/{exp['id']}")

    expect(page.get_by_test_id("experiment-name")).to_have_text("Rank sweep")
    expect(page.get_by_test_id("experiment-status")).to_have_text("Completed")
    expect(page.get_by_test_id("run-row")).to_have_count(3)
    expect(page.get_by_test_id("run-row").filter(has_text="rank-8").get_by_test_id("final-loss")).to_have_text("0.31")
    compare = page.get_by_test_id("compare-button")
    expect(compare).to_be_disabled()
    page.get_by_label("Select run rank-4").check()
    expect(compare).to_be_disabled()
    page.get_by_label("Select run rank-8").check()
    page.get_by_label("Select run rank-16").check()
    expect(compare).to_be_enabled()
    compare.click()

    table = page.get_by_test_id("compare-table")
    expect(table.get_by_test_id("compare-run-header")).to_have_count(3)
    for metric, best in (("loss", "rank-8"), ("accuracy", "rank-16")):
        cells = table.locator(f"tr[data-metric='{metric}'] [data-testid='compare-cell']")
        expect(cells).to_have_count(3)
        for name, run_id in runs.items():
            cell = cells.and_(page.locator(f"[data-run-id='{run_id}']"))
            if name == best:
                expect(cell).to_have_class(BEST)
                expect(cell).to_contain_text("★ best")
            else:
                expect(cell).not_to_have_class(BEST)
                expect(cell).not_to_contain_text("best")
    expect(table.locator("tr[data-metric='loss']")).to_contain_text("lower is better")
    expect(table.locator("tr[data-metric='accuracy']")).to_contain_text("higher is better")
    expect(table.locator("tr[data-config-key='lora_r']")).to_contain_text("16")


def test_unknown_experiment_shows_not_found(page: Page, live_server: LiveServer) -> None:
    response = page.goto(f"{live_server.url}/experiments/exp-does-not-exist")

    assert response is not None and response.status == 404
    expect(page.get_by_test_id("error-page")).to_be_visible()
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_test_id("error-code")).to_have_text("experiment_not_found")
    expect(page.get_by_test_id("error-message")).to_contain_text("exp-does-not-exist")
    expect(page.get_by_role("link", name="Back to experiments")).to_have_attribute("href", "/experiments")
    expect(page.get_by_test_id("runs-table")).to_have_count(0)
