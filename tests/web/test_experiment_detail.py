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
    overlay = page.get_by_test_id("compare-chart")  # their loss curves on one chart, one series a run
    expect(overlay).to_have_attribute("data-metric", "loss")
    expect(overlay.locator(".chart-body")).to_have_attribute("data-series", "3")
    expect(overlay.locator(".u-legend")).to_contain_text("rank-16")
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


# What went in and came out (issue #9, items 7 and 8)

SHA = "0123456789abcdef" * 4


def test_config_provenance_and_input_artifacts_are_shown(page: Page, live_server: LiveServer) -> None:
    data = live_server.create_artifact("dataset", "file:///sets/bass/examples.jsonl", sha256=SHA, size=12_345_678)
    base = live_server.create_artifact("base_model", "hf://facebook/musicgen-small")
    config = {"lora_r": 8, "learning_rate": 0.0001, "target_modules": ["q_proj", "v_proj"]}
    provenance = {
        "git_commit": "9f1c2ab7d4e5f60718293a4b5c6d7e8f90a1b2c3",
        "git_dirty": True,
        "engine_version": "0.4.0",
    }
    exp = live_server.create_experiment(
        "Bass", config=config, provenance=provenance, inputs={"datasets": [data["id"]], "base_model": [base["id"]]}
    )

    page.goto(f"{live_server.url}/experiments/{exp['id']}")

    rows = page.get_by_test_id("config-row")
    expect(rows).to_have_count(3)
    expect(page.locator("[data-config-key='learning_rate']")).to_contain_text("0.0001")
    expect(page.locator("[data-config-key='target_modules']")).to_contain_text('"q_proj"')
    expect(page.get_by_test_id("git-commit")).to_contain_text("9f1c2ab")
    expect(page.get_by_test_id("git-commit")).not_to_contain_text("9f1c2ab7d")
    expect(page.get_by_test_id("git-dirty")).to_have_text("uncommitted changes")
    expect(page.get_by_test_id("engine-version")).to_have_text("0.4.0")
    expect(page.get_by_test_id("provenance-created")).not_to_contain_text("not recorded")

    dataset_row = page.locator(f"[data-testid=input-row][data-artifact-id='{data['id']}']")
    expect(dataset_row).to_contain_text("datasets")
    expect(dataset_row.get_by_test_id("artifact-type")).to_have_text("dataset")
    expect(dataset_row.get_by_test_id("artifact-uri")).to_have_text("file:///sets/bass/examples.jsonl")
    expect(dataset_row.get_by_test_id("artifact-size")).to_have_text("11.8 MiB")
    expect(dataset_row.get_by_test_id("artifact-sha")).to_have_text(SHA[:12])
    base_row = page.locator(f"[data-testid=input-row][data-artifact-id='{base['id']}']")
    expect(base_row.get_by_test_id("artifact-type")).to_have_text("base_model")
    expect(base_row.get_by_test_id("artifact-sha")).to_have_text("—")
    # The dataset comes from the inputs when dataset_id is not set.
    expect(page.get_by_test_id("dataset")).to_have_text("file:///sets/bass/examples.jsonl")
    expect(page.get_by_test_id("dataset")).not_to_contain_text("none linked")


def test_an_input_artifact_the_api_does_not_know_says_so(page: Page, live_server: LiveServer) -> None:
    known = live_server.create_artifact("dataset_export", "file:///exports/a.jsonl")
    exp = live_server.create_experiment("Gone", inputs={"dataset_export": [known["id"]]})
    envelope = '{"error": {"code": "artifact_not_found", "message": "not found", "details": {}}}'
    # The store never forgets an artifact; the API's 404 for one is what this page must cope with.
    page.route(f"**/api/artifacts/{known['id']}", lambda route: route.fulfill(status=404, body=envelope))

    page.goto(f"{live_server.url}/experiments/{exp['id']}")

    row = page.get_by_test_id("input-row")
    expect(row.get_by_test_id("artifact-missing")).to_be_visible()
    expect(row.get_by_test_id("artifact-size")).to_have_text("—")
    expect(page.get_by_test_id("dataset")).to_contain_text("(not found)")


def test_the_dataset_id_is_the_dataset_even_when_it_names_no_artifact(page: Page, live_server: LiveServer) -> None:
    data = live_server.create_artifact("dataset", "file:///sets/drums.jsonl")
    linked = live_server.create_experiment("Linked", dataset_id=data["id"])
    dangling = live_server.create_experiment("Dangling", dataset_id="art-never-registered")
    bare = live_server.create_experiment("Bare")

    page.goto(f"{live_server.url}/experiments/{linked['id']}")
    expect(page.get_by_test_id("dataset")).to_have_text("file:///sets/drums.jsonl")
    page.goto(f"{live_server.url}/experiments/{dangling['id']}")
    expect(page.get_by_test_id("dataset")).to_contain_text("art-never-registered")
    expect(page.get_by_test_id("dataset")).to_contain_text("(not found)")
    page.goto(f"{live_server.url}/experiments/{bare['id']}")
    expect(page.get_by_test_id("dataset")).to_have_text("none linked")
    expect(page.get_by_test_id("no-inputs")).to_be_visible()
    expect(page.get_by_test_id("no-outputs")).to_be_visible()


def test_outputs_are_listed_by_name_with_their_artifacts(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Trained")
    adapter = live_server.create_artifact("adapter", "file:///adapters/bass-r8", sha256=SHA, size=2048)
    live_server.store_results(exp["id"], {"adapter": adapter["id"]})

    page.goto(f"{live_server.url}/experiments/{exp['id']}")

    row = page.get_by_test_id("output-row")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-role", "adapter")
    expect(row.get_by_test_id("artifact-type")).to_have_text("adapter")
    expect(row.get_by_test_id("artifact-uri")).to_have_text("file:///adapters/bass-r8")
    expect(row.get_by_test_id("artifact-size")).to_have_text("2 KiB")
    expect(row.get_by_test_id("artifact-sha")).to_have_text(SHA[:12])


# Archived, running (items 9 and 10)


def test_an_archived_experiment_offers_unarchive_and_no_runs(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Shelved")
    live_server.archive(exp["id"])

    page.goto(f"{live_server.url}/experiments/{exp['id']}")

    banner = page.get_by_test_id("archived-banner")
    expect(banner).to_be_visible()
    expect(page.get_by_test_id("no-runs")).to_contain_text("unarchive it first")
    expect(page.get_by_test_id("no-runs")).not_to_contain_text("Start one")
    banner.get_by_role("button", name="Unarchive").click()

    expect(page.get_by_test_id("experiment-status")).to_have_text("Draft")
    expect(banner).to_be_hidden()
    expect(page.get_by_test_id("toast")).to_contain_text("Restored “Shelved”")
    expect(page.get_by_test_id("no-runs")).to_contain_text("Start one")
    assert live_server.experiment(exp["id"])["status"] == "draft"


def test_a_running_experiment_refreshes_itself_until_it_ends(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Live")
    run_id = live_server.start_external_run(exp["id"], "rank-8")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if r.url.endswith(f"/api/experiments/{exp['id']}") else None)
    page.clock.install()

    page.goto(f"{live_server.url}/experiments/{exp['id']}")
    expect(page.get_by_test_id("experiment-status")).to_have_text("Running")
    expect(page.get_by_test_id("run-status")).to_have_text("Running")
    expect(page.get_by_test_id("live-indicator")).to_be_visible()

    live_server.end_run(run_id, "completed")
    page.clock.fast_forward(3500)

    expect(page.get_by_test_id("experiment-status")).to_have_text("Completed")
    expect(page.get_by_test_id("run-status")).to_have_text("Completed")
    expect(page.get_by_test_id("live-indicator")).to_be_hidden()
    # Nothing is going any more, so nothing more is asked, however long the page stays open.
    asked_before = len(asked)
    page.clock.fast_forward(60_000)
    page.evaluate("() => fetch('/api/health')")
    assert len(asked) == asked_before


def set_tab_hidden(page: Page, hidden: bool) -> None:
    """What the browser does when the user switches tabs (headless Chromium never hides its only tab)."""
    page.evaluate(
        """(hidden) => {
            Object.defineProperty(document, "hidden", { value: hidden, configurable: true });
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


def test_a_hidden_tab_stops_asking_and_catches_up_when_shown(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Background")
    run_id = live_server.start_external_run(exp["id"], "rank-8")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if r.url.endswith(f"/api/experiments/{exp['id']}") else None)
    page.clock.install()
    page.goto(f"{live_server.url}/experiments/{exp['id']}")
    expect(page.get_by_test_id("live-indicator")).to_be_visible()

    set_tab_hidden(page, True)
    live_server.end_run(run_id, "completed")
    asked_while_shown = len(asked)
    page.clock.fast_forward(30_000)
    page.evaluate("() => fetch('/api/health')")
    assert len(asked) == asked_while_shown
    expect(page.get_by_test_id("experiment-status")).to_have_text("Running")

    set_tab_hidden(page, False)
    expect(page.get_by_test_id("experiment-status")).to_have_text("Completed")


def test_a_finished_experiment_does_not_poll(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Done")
    live_server.external_run(exp["id"], "rank-4", {}, {"loss": 0.5})
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if r.url.endswith(f"/api/experiments/{exp['id']}") else None)
    page.clock.install()

    page.goto(f"{live_server.url}/experiments/{exp['id']}")
    expect(page.get_by_test_id("experiment-status")).to_have_text("Completed")
    page.clock.fast_forward(30_000)
    page.evaluate("() => fetch('/api/health')")

    assert len(asked) == 1
    expect(page.get_by_test_id("live-indicator")).to_be_hidden()


# Numbers and the comparison (items 11 and 12)


def test_numbers_read_the_same_in_every_table(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Tiny losses", metric_goals={"score": "max"})
    metrics = {"loss": 0.0000123456, "score": 12345678.9, "tokens": 1200}
    first = live_server.external_run(exp["id"], "a", {"lr": 0.00002}, metrics)
    live_server.external_run(exp["id"], "b", {"lr": 0.00002}, {"loss": 0.25, "score": 3, "tokens": 900})

    page.goto(f"{live_server.url}/experiments/{exp['id']}")

    expect(page.locator(f"[data-testid=run-row][data-run-id='{first}']").get_by_test_id("final-loss")).to_have_text(
        "1.235e-5"
    )
    chips = page.get_by_test_id("best-metrics").get_by_test_id("metric-chip")
    expect(chips.and_(page.locator("[data-metric=loss]"))).to_have_text("loss 1.235e-5")
    expect(chips.and_(page.locator("[data-metric=score]"))).to_have_text("score 1.235e7")
    page.get_by_test_id("select-all").check()
    page.get_by_test_id("compare-button").click()
    table = page.get_by_test_id("compare-table")
    cell = table.locator(f"[data-testid=compare-cell][data-run-id='{first}']")
    expect(cell.and_(table.locator("tr[data-metric=loss] *"))).to_contain_text("1.235e-5")
    expect(cell.and_(table.locator("tr[data-metric=score] *"))).to_contain_text("1.235e7")
    expect(cell.and_(table.locator("tr[data-metric=tokens] *"))).to_have_text("1200")
    expect(table.locator("tr[data-config-key=lr]")).to_contain_text("2e-5")


def test_compare_stars_every_tied_run_and_ranks_no_goal_none_metric(page: Page, live_server: LiveServer) -> None:
    exp = live_server.create_experiment("Ties")
    runs = [
        live_server.external_run(exp["id"], name, {}, {"loss": loss, "learning_rate": 0.001})
        for name, loss in (("one", 0.3), ("two", 0.3), ("three", 0.4))
    ]

    page.goto(f"{live_server.url}/experiments/{exp['id']}")
    page.get_by_test_id("select-all").check()
    page.get_by_test_id("compare-button").click()

    table = page.get_by_test_id("compare-table")
    loss = table.locator("tr[data-metric=loss]")
    for run_id, best in zip(runs, (True, True, False), strict=True):
        cell = loss.locator(f"[data-testid=compare-cell][data-run-id='{run_id}']")
        if best:
            expect(cell).to_have_class(BEST)
            expect(cell).to_contain_text("★ best")
        else:
            expect(cell).not_to_contain_text("best")
    rate = table.locator("tr[data-metric=learning_rate]")
    expect(rate.get_by_test_id("metric-goal")).to_have_text("not ranked")
    expect(rate).not_to_contain_text("better")
    expect(rate.get_by_test_id("compare-cell")).to_have_count(3)
    expect(rate.locator(".best")).to_have_count(0)
    expect(rate).not_to_contain_text("★")
