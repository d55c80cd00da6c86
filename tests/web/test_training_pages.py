"""Training in a real browser: the demo dataset from an empty studio, a run started from the experiment page's
form, its terminal (history then live), its charts, leaving and coming back, and the datasets pages."""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from playwright.sync_api import Page, expect

from tunelab.app import create_app
from tunelab.config import Settings

from .live import LiveServer, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = os.environ.get("TUNELAB_SCREENSHOTS")  # a folder: the pages are saved there at desktop and phone width


@pytest.fixture
def studio(tmp_path: Path, tiny_model: Path) -> Iterator[LiveServer]:
    data = tmp_path / "data"
    with serve(create_app(Settings(data_dir=data, bootstrap_model=False))) as server:
        shutil.copytree(tiny_model, data / "models" / "tiny")
        assert server.api.post("/api/models", json={"path": str(data / "models" / "tiny")}).status_code == 201
        yield server


def shoot(page: Page, name: str) -> None:
    if not SHOTS:
        return
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(Path(SHOTS) / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_first_run_from_an_empty_studio_is_watched_to_the_end(page: Page, studio: LiveServer) -> None:
    page.goto(f"{studio.url}/datasets")
    expect(page.get_by_test_id("no-datasets")).to_be_visible()
    shoot(page, "datasets-empty")
    page.get_by_test_id("create-demo").click()
    expect(page.get_by_test_id("dataset-row")).to_have_count(1)
    expect(page.get_by_test_id("dataset-row")).to_contain_text("Demo melodies")

    exp = studio.create_experiment("First tune")
    page.goto(f"{studio.url}/experiments/{exp['id']}")
    demo = studio.api.get("/api/datasets").json()["items"][0]
    page.get_by_test_id("dataset-select").select_option(value=demo["id"])
    page.get_by_test_id("link-dataset").click()
    expect(page.get_by_test_id("dataset-link")).to_contain_text("Demo melodies")
    expect(page.get_by_test_id("option-epochs")).to_have_value("3")  # the resolved default
    page.get_by_test_id("option-epochs").fill("zero")
    page.get_by_test_id("start-run-button").click()
    expect(page.get_by_test_id("run-errors")).to_contain_text("epochs")  # inline, nothing started
    assert studio.api.get(f"/api/experiments/{exp['id']}/runs").json()["items"] == []
    for name, value in (("epochs", "1"), ("batch_size", "4"), ("max_audio_seconds", "1")):
        page.get_by_test_id(f"option-{name}").fill(value)
    page.get_by_test_id("run-name-input").fill("from the form")
    shoot(page, "experiment-start-run")
    page.get_by_test_id("start-run-button").click()

    expect(page).to_have_url(re.compile(r"/runs/run-"))
    expect(page.get_by_test_id("run-name")).to_have_text("from the form")
    terminal = page.get_by_test_id("terminal")
    expect(terminal).not_to_have_attribute("data-bytes", "0", timeout=60_000)  # output arrives while it runs
    expect(page.get_by_test_id("run-ended")).to_contain_text("Run completed", timeout=120_000)
    expect(page.get_by_test_id("run-status")).to_have_text("Completed")
    expect(terminal).to_contain_text("final loss")
    expect(page.get_by_test_id("adapter-link")).to_contain_text("First tune-from the form")
    expect(page.locator("[data-metric=loss] [data-testid=chart-body]")).not_to_have_attribute("data-points", "0")
    run_url = page.url
    log = studio.api.get(f"/api/runs/{run_url.rsplit('/', 1)[1]}/logs").content
    expect(terminal).to_have_attribute("data-bytes", str(len(log)))  # every byte reached the terminal
    shoot(page, "run-completed")

    page.goto(f"{studio.url}/experiments/{exp['id']}")  # leave and come back: the whole history again
    page.get_by_test_id("run-link").click()
    expect(page.get_by_test_id("terminal")).to_contain_text("final loss")
    expect(page.get_by_test_id("terminal")).to_have_attribute("data-bytes", str(len(log)))
    page.get_by_test_id("adapter-link").click()
    expect(page.get_by_test_id("adapter-version")).to_have_text(re.compile(r"\d{4}\.\d\d\.\d\d\.1"))
    shoot(page, "adapter")


def test_a_running_runs_chart_gains_points_and_its_terminal_goes_live(page: Page, studio: LiveServer) -> None:
    demo = studio.api.post("/api/datasets/demo").json()
    exp = studio.create_experiment("Live", dataset_id=demo["id"])
    config = {"epochs": 500, "batch_size": 1, "max_audio_seconds": 1, "save_every": 0}  # still running when cancelled
    run = studio.api.post(f"/api/experiments/{exp['id']}/runs", json={"config": config}).json()
    page.goto(f"{studio.url}/runs/{run['id']}")
    chart = page.locator("[data-metric=loss] [data-testid=chart-body]")
    expect(chart).to_be_visible(timeout=120_000)
    first = int(chart.get_attribute("data-points") or "0")
    expect(chart).not_to_have_attribute("data-points", str(first), timeout=60_000)  # more points while it runs
    shoot(page, "run-live")
    page.get_by_test_id("cancel-run").click()
    expect(page.get_by_test_id("run-ended")).to_contain_text("Run cancelled", timeout=60_000)


def clip(frequency: float) -> bytes:
    t = np.arange(8000) / 16_000
    out = io.BytesIO()
    soundfile.write(out, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), 16_000, format="WAV")
    return out.getvalue()


def test_clips_are_uploaded_several_at_once_played_and_deleted(page: Page, studio: LiveServer, tmp_path: Path) -> None:
    page.goto(f"{studio.url}/datasets")
    page.get_by_test_id("dataset-name").fill("My clips")
    page.get_by_test_id("dataset-create").click()
    expect(page.get_by_test_id("dataset-title")).to_have_text("My clips")
    files = []
    for index, frequency in enumerate((220, 330, 440)):
        path = tmp_path / f"clip{index}.wav"
        path.write_bytes(clip(frequency))
        files.append(str(path))
    (tmp_path / "notes.txt").write_text("not audio")
    page.get_by_test_id("upload-prompt").fill("warm bass")
    page.get_by_test_id("upload-rating").select_option("4")
    page.get_by_test_id("upload-files").set_input_files([*files, str(tmp_path / "notes.txt")])
    page.get_by_test_id("upload-submit").click()
    expect(page.get_by_test_id("item-row")).to_have_count(3)
    expect(page.get_by_test_id("upload-errors")).to_contain_text("notes.txt")  # the one refused, said why
    expect(page.get_by_test_id("item-count")).to_have_text("3")
    audio = page.get_by_test_id("item-audio").first
    src = audio.get_attribute("src") or ""
    assert studio.api.get(src).content == clip(220)
    shoot(page, "dataset")
    page.get_by_test_id("item-delete").first.click()
    expect(page.get_by_test_id("item-row")).to_have_count(2)


def test_a_long_log_opens_at_its_end_and_earlier_output_loads_on_request(page: Page, studio: LiveServer) -> None:
    demo = studio.api.post("/api/datasets/demo").json()
    exp = studio.create_experiment("Long", dataset_id=demo["id"])
    run = studio.api.post(f"/api/experiments/{exp['id']}/runs", json={"config": {"epochs": 1, "batch_size": 4,
                          "max_audio_seconds": 1, "save_every": 0}}).json()  # fmt: skip
    import time

    deadline = time.monotonic() + 120
    while studio.api.get(f"/api/runs/{run['id']}").json()["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    log = next(Path(studio.api.get("/api/health").json()["db"]).parent.glob(f"runs/{run['id']}/output.log"))
    with log.open("ab") as out:  # a long history: 600 KB more, numbered
        out.write(b"".join(f"line {i:06d} {'.' * 90}\r\n".encode() for i in range(6000)))
    size = log.stat().st_size
    page.goto(f"{studio.url}/runs/{run['id']}")
    terminal = page.get_by_test_id("terminal")
    expect(terminal).to_have_attribute("data-bytes", str(size))
    expect(terminal).to_contain_text("line 005999")  # the end is shown first
    assert int(terminal.get_attribute("data-start") or "0") == size - 256 * 1024
    expect(page.get_by_test_id("load-earlier")).to_be_visible()
    page.get_by_test_id("load-earlier").click()  # (scrolling to the top asks the same; headless wheels do not scroll)
    expect(terminal).to_have_attribute("data-start", "0")  # everything from the first byte is there now
    expect(terminal).to_contain_text(
        "line 00"
    )  # the reader stays about where the earlier part ends  # everything from the first byte is there now
