"""Other web sites: unsafe requests from another origin are 403, and only our own host names are served."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tunelab.api.app import create_app
from tunelab.api.security import allowed_hosts, same_origin
from tunelab.config import Settings

EVIL = {"origin": "https://evil.example"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/experiments"),
        ("PATCH", "/api/experiments/exp-1"),
        ("DELETE", "/api/experiments/exp-1"),
        ("PUT", "/api/experiments"),
        ("POST", "/api/experiments/exp-1/archive"),
    ],
)
def test_unsafe_requests_from_another_site_are_403(client, api, method: str, path: str) -> None:
    response = client.request(method, path, json={"name": "forged"}, headers=EVIL)

    error = api.error(response, 403, "forbidden_origin")
    assert error["details"] == {"origin": "https://evil.example"}


def test_a_refused_request_changes_nothing(client, api) -> None:
    exp = api.experiment("kept")

    api.error(client.post(f"/api/experiments/{exp['id']}/archive", headers=EVIL), 403, "forbidden_origin")
    api.error(client.post("/api/experiments", json={"name": "forged"}, headers=EVIL), 403, "forbidden_origin")

    assert api.get(f"/api/experiments/{exp['id']}")["status"] == "draft"
    assert [item["name"] for item in api.get("/api/experiments")["items"]] == ["kept"]


@pytest.mark.parametrize(
    "origin",
    ["null", "http://testserver:8080", "http://testserver.evil.example", "file://", "testserver", "http://localhost"],
)
def test_every_origin_but_our_own_is_refused(client, api, origin: str) -> None:
    response = client.post("/api/experiments", json={"name": "x"}, headers={"origin": origin})
    api.error(response, 403, "forbidden_origin")


@pytest.mark.parametrize("headers", [{}, {"origin": "http://testserver"}, {"origin": "http://TestServer:80"}])
def test_requests_without_origin_or_from_our_own_origin_pass(client, api, headers: dict[str, str]) -> None:
    response = client.post("/api/experiments", json={"name": "ok"}, headers=headers)
    assert response.status_code == 201, response.text


def test_safe_methods_from_another_site_pass(client, api) -> None:
    assert client.get("/api/experiments", headers=EVIL).status_code == 200
    assert client.get("/experiments", headers=EVIL).status_code == 200


def test_a_browser_posting_a_form_to_a_page_from_another_site_gets_the_error_page(client) -> None:
    response = client.post("/experiments", headers={**EVIL, "accept": "text/html"})
    assert response.status_code == 403
    assert 'data-testid="error-page"' in response.text and "forbidden_origin" in response.text


# --- Host header (DNS rebinding) ---------------------------------------------------------------------------------


def test_a_host_name_we_do_not_serve_is_400(app) -> None:
    with TestClient(app, base_url="http://rebound.evil.example") as client:
        response = client.get("/api/health")
        page = client.get("/experiments", headers={"accept": "text/html"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_host"
    assert response.json()["error"]["details"] == {"host": "rebound.evil.example"}
    assert page.status_code == 400
    assert 'data-testid="error-page"' in page.text and "invalid_host" in page.text


@pytest.mark.parametrize("host", ["", "bad host:80", "localhost:notaport", "localhost.evil.example"])
def test_a_missing_or_malformed_host_is_400(app, host: str) -> None:
    with TestClient(app) as client:
        response = client.get("/api/health", headers={"host": host})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_host"


@pytest.mark.parametrize("base_url", ["http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000"])
def test_loopback_names_are_served(app, base_url: str) -> None:
    with TestClient(app, base_url=base_url) as client:
        assert client.get("/api/health").status_code == 200
        # A page of the studio posts to its own origin, whichever loopback name it was loaded from.
        created = client.post("/api/experiments", json={"name": base_url}, headers={"origin": base_url})
        assert created.status_code == 201, created.text


def test_the_listen_address_and_configured_names_are_served(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, host="10.1.2.3", allowed_hosts=["studio.lan"])
    app = create_app(settings)
    for base_url in ("http://10.1.2.3:8000", "http://studio.lan", "http://STUDIO.lan:9000"):
        with TestClient(app, base_url=base_url) as client:
            assert client.get("/api/health").status_code == 200, base_url
    with TestClient(app, base_url="http://other.lan") as client:
        assert client.get("/api/health").status_code == 400


def test_allowed_hosts_come_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNELAB_ALLOWED_HOSTS", " studio.lan, 192.168.1.20 ,")
    settings = Settings(host="::")
    assert settings.allowed_hosts == ["studio.lan", "192.168.1.20"]
    assert set(allowed_hosts(settings)) == {
        "localhost", "127.0.0.1", "[::1]", "testserver", "[::]", "studio.lan", "192.168.1.20",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://example.com", "example.com:80", True),
        ("https://example.com", "example.com", True),  # TLS ended by a proxy that keeps the Host header
        ("http://[::1]:8000", "[::1]:8000", True),
        ("http://127.0.0.1:8000", "localhost:8000", False),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", False),
        ("http://127.0.0.1:notaport", "127.0.0.1:8000", False),
        ("ftp://127.0.0.1:8000", "127.0.0.1:8000", False),
        ("null", "127.0.0.1:8000", False),
        ("http://127.0.0.1:8000", "", False),
    ],
)
def test_same_origin(origin: str, host: str, same: bool) -> None:
    assert same_origin(origin, host) is same
