"""Other web sites: unsafe requests from another origin are 403, only our own host names are served, and no answer
may be framed by another site."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tunelab.api.security import allowed_hosts, same_origin
from tunelab.app import create_app
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
    assert set(allowed_hosts(settings)) == {"localhost", "127.0.0.1", "[::1]", "[::]", "studio.lan", "192.168.1.20"}


def test_the_test_clients_host_is_served_only_where_a_test_allows_it(tmp_path: Path) -> None:
    # TestClient sends `Host: testserver`; a real server must not answer to a name anyone could point anywhere.
    assert "testserver" not in allowed_hosts(Settings())
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        response = client.get("/api/health")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_host"


@pytest.mark.parametrize(
    ("base_url", "origin", "status"),
    [
        ("https://testserver", "http://testserver", 403),
        ("http://testserver", "https://testserver", 403),
        ("https://testserver", "https://testserver", 201),
        ("https://testserver:8443", "https://testserver:8443", 201),
    ],
)
def test_the_origin_must_match_the_scheme_the_request_came_over(app, base_url: str, origin: str, status: int) -> None:
    with TestClient(app, base_url=base_url) as client:
        response = client.post("/api/experiments", json={"name": base_url + origin}, headers={"origin": origin})
    assert response.status_code == status, response.text


# --- Framing (clickjacking) and content sniffing --------------------------------------------------------------------

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/health", 200),
        ("GET", "/experiments", 200),
        ("GET", "/docs", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/static/vendor/swagger-ui-dist/swagger-ui.css", 200),
        ("GET", "/api/experiments/exp-nope", 404),
        ("GET", "/no/such/page", 404),
        ("PUT", "/api/experiments", 405),
        ("POST", "/api/experiments", 422),
    ],
)
def test_every_answer_forbids_framing_and_sniffing(client, method: str, path: str, status: int) -> None:
    response = client.request(method, path, headers={"accept": "text/html"})
    assert response.status_code == status
    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


def test_an_unexpected_error_carries_the_headers_too(app) -> None:
    # Starlette answers a 500 outside every middleware: the handler has to set them itself.
    def explode() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/explode", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/explode", headers={"accept": "text/html"})
    assert response.status_code == 500
    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


def test_refusals_before_any_route_carry_the_headers_too(app, client) -> None:
    forged = client.post("/api/experiments", json={"name": "x"}, headers=EVIL)
    with TestClient(app, base_url="http://rebound.evil.example") as rebound:
        foreign = rebound.get("/api/health")
    for response, status in ((forged, 403), (foreign, 400)):
        assert response.status_code == status
        assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "same"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "http", True),
        ("http://example.com", "example.com:80", "http", True),
        ("https://example.com", "example.com:443", "https", True),
        ("http://[::1]:8000", "[::1]:8000", "http", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws", True),  # a WebSocket opened by our own page
        ("https://127.0.0.1:8000", "127.0.0.1:8000", "wss", True),
        # Another scheme is another site. TLS ended by a proxy counts as https when the proxy says so
        # (X-Forwarded-Proto, which uvicorn puts in the scope for a trusted proxy).
        ("https://127.0.0.1:8000", "127.0.0.1:8000", "http", False),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "https", False),
        ("https://example.com", "example.com", "http", False),
        ("http://127.0.0.1:8000", "localhost:8000", "http", False),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", "http", False),
        ("http://127.0.0.1:notaport", "127.0.0.1:8000", "http", False),
        ("ftp://127.0.0.1:8000", "127.0.0.1:8000", "http", False),
        ("null", "127.0.0.1:8000", "http", False),
        ("http://127.0.0.1:8000", "", "http", False),
    ],
)
def test_same_origin(origin: str, host: str, scheme: str, same: bool) -> None:
    assert same_origin(origin, host, scheme) is same
