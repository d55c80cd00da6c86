"""Page routes and static files, without a browser."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from tunelab.app import create_app
from tunelab.config import Settings
from tunelab.web import render_error_page
from tunelab.web.app import NODE_MODULES

HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path, allowed_hosts=["testserver"]))) as client:
        yield client


def test_home_redirects_to_the_studio(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)

    assert response.status_code in (302, 303, 307)
    assert response.headers["location"] == "/studio"


def test_experiments_page_is_html_with_navigation(client: TestClient) -> None:
    response = client.get("/experiments", headers=HTML)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/experiments" aria-current="page"' in response.text
    assert 'href="/docs"' in response.text
    assert 'x-data="experimentsPage"' in response.text


def test_experiment_page_renders_for_a_known_id(client: TestClient) -> None:
    exp = client.post("/api/experiments", json={"name": "piano"}).json()

    response = client.get(f"/experiments/{exp['id']}", headers=HTML)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-testid="error-page"' not in response.text


def test_unknown_experiment_page_is_the_404_error_page_escaping_the_id(client: TestClient) -> None:
    response = client.get("/experiments/%22%3E%3Cb%3Ex", headers=HTML)

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-testid="error-page"' in response.text
    assert "experiment_not_found" in response.text
    assert '"><b>x' not in response.text
    assert "&#34;&gt;&lt;b&gt;x" in response.text


def test_unknown_page_renders_the_error_page(client: TestClient) -> None:
    response = client.get("/no-such-page", headers=HTML)

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-testid="error-page"' in response.text
    assert 'href="/experiments"' in response.text


def test_unknown_api_path_stays_json(client: TestClient) -> None:
    response = client.get("/api/no-such-thing", headers=HTML)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_own_static_files_are_served(client: TestClient) -> None:
    for path in (
        "/static/app.css",
        "/static/app.js",
        "/static/favicon.svg",
        "/static/pages/experiments.js",
        "/static/pages/experiment.js",
        "/static/pages/studio.js",
        "/static/player.js",
    ):
        assert client.get(path).status_code == 200, path


@pytest.mark.skipif(not NODE_MODULES.is_dir(), reason="front-end libraries not installed (npm ci)")
def test_vendor_libraries_are_served_but_not_the_rest_of_node_modules(client: TestClient) -> None:
    assert client.get("/static/vendor/alpinejs/cdn.min.js").status_code == 200
    assert client.get("/static/vendor/htmx.org/htmx.min.js").status_code == 200
    assert client.get("/static/vendor/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/vendor/wavesurfer.js/wavesurfer.min.js").status_code == 200
    assert client.get("/static/vendor/alpinejs/package.json").status_code == 404
    assert client.get("/static/vendor/@scarf/scarf/package.json").status_code == 404


@pytest.mark.skipif(not NODE_MODULES.is_dir(), reason="front-end libraries not installed (npm ci)")
def test_api_docs_load_swagger_ui_from_this_server_only(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*["']([^"']+)["']""", response.text)
    assert len(urls) >= 4, urls  # the script, the stylesheet, the icon and the OpenAPI document
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{url} is not served by TuneLab"
        assert client.get(url).status_code == 200, url
    assert "swagger-ui-bundle.js" in response.text and "swagger-ui.css" in response.text
    assert "cdn" not in response.text.lower() and "https://" not in response.text


def test_redoc_from_a_cdn_is_not_offered(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404


def test_missing_front_end_libraries_are_logged_and_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tunelab.web.app.NODE_MODULES", tmp_path / "node_modules")
    with caplog.at_level(logging.WARNING, logger="tunelab.web.app"):
        app = create_app(Settings(data_dir=tmp_path / "data", allowed_hosts=["testserver"]))
    assert "npm ci" in caplog.text

    with TestClient(app) as client:
        page = client.get("/experiments", headers=HTML)
        assert client.get("/static/vendor/alpinejs/cdn.min.js").status_code == 404

    assert page.status_code == 200
    assert "Run <code>npm ci</code>" in page.text


def test_render_error_page_shows_status_code_and_message(client: TestClient) -> None:
    request = Request({"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""})

    response = render_error_page(request, 409, "experiment_name_taken", "An experiment named 'a' exists")

    assert response.status_code == 409
    body = bytes(response.body).decode()
    assert "409" in body and "experiment_name_taken" in body and "named &#39;a&#39; exists" in body
