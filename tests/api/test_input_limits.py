"""One request must never break a page: whatever is accepted can be answered, and what cannot is refused first.

Each case comes from fuzzing the API: before, these were stored and then broke every page that showed them (500),
or were a 500 themselves.
"""

from __future__ import annotations

import json
import select
import socket

import pytest

from tunelab.domain.common import MAX_JSON_BYTES, MAX_JSON_DEPTH
from tunelab.domain.experiments import ExperimentCreate, ExperimentFilter
from tunelab.errors import TuneLabError
from web.live import serve  # tests/ is on sys.path: pytest's rootdir-relative imports


def raw_post(client, path: str, text: str):
    """A body as a careless client writes it (json.dumps keeps lone surrogates as \\udfff escapes)."""
    return client.post(path, content=text.encode(), headers={"content-type": "application/json"})


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def nested_text(depth: int) -> str:
    """nested(depth) as JSON text, written out: json.dumps itself stops at Python's recursion limit."""
    return '{"k":' * (depth - 1) + "{}" + "}" * (depth - 1)


def pages_still_answer(client, api) -> None:
    assert client.get("/api/experiments").status_code == 200
    assert client.get("/experiments", headers={"accept": "text/html"}).status_code == 200


def test_a_lone_surrogate_in_free_form_json_is_refused_and_nothing_stored(client, api) -> None:
    text = json.dumps({"name": "p", "config": {"k": "\udfff"}})
    assert "\\udfff" in text

    api.error(raw_post(client, "/api/experiments", text), 422, "invalid_json")

    assert api.get("/api/experiments")["total"] == 0
    pages_still_answer(client, api)


@pytest.mark.parametrize("field", ["name", "description", "config_key"])
def test_lone_surrogates_are_refused_in_every_stored_text_even_past_the_http_parser(services, field: str) -> None:
    """In process (the ops script, the CLI), models are built from json.loads output: the models refuse too."""
    fields: dict = {"name": "ok"}
    if field == "config_key":
        fields["config"] = {"\udfff": 1}
    else:
        fields[field] = "bad \udfff text"
    with pytest.raises(ValueError, match="(?i)unicode"):
        ExperimentCreate(**fields)


def test_the_store_refuses_what_it_could_not_answer_even_if_validation_were_bypassed(services) -> None:
    sneaked = ExperimentCreate.model_construct(
        id=None, name="sneaked", description=None, dataset_id=None, config={"k": "\udfff"}, inputs={},
        provenance=None, metric_goals={},
    )  # fmt: skip
    with pytest.raises((ValueError, TuneLabError)):
        services.experiments.create(sneaked)
    assert services.experiments.list_page(ExperimentFilter(include_archived=True)).total == 0


@pytest.mark.parametrize(("depth", "code"), [(MAX_JSON_DEPTH + 1, "invalid_json_value"), (256, "invalid_json"),
                                             (989, "invalid_json")])  # fmt: skip
def test_config_nested_too_deep_is_422_and_nothing_stored(client, api, depth: int, code: str) -> None:
    text = '{"name": "deep", "config": ' + nested_text(depth) + "}"

    error = api.error(raw_post(client, "/api/experiments", text), 422, code)

    assert error["message"]
    assert api.get("/api/experiments")["total"] == 0
    pages_still_answer(client, api)


def test_config_at_the_depth_limit_is_stored_and_read_back(client, api) -> None:
    exp = api.experiment("deep enough", config=nested(MAX_JSON_DEPTH))
    assert api.get(f"/api/experiments/{exp['id']}")["config"] == nested(MAX_JSON_DEPTH)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/experiments", {"name": "x", "config": {"blob": "x" * (MAX_JSON_BYTES + 1)}}),
        ("/api/experiments", {"name": "x", "config": {"list": list(range(60_000))}}),
        ("/api/artifacts", {"type": "audio", "uri": "file:///a", "metadata": {"blob": "y" * (MAX_JSON_BYTES + 1)}}),
    ],
)
def test_free_form_json_past_its_size_limit_is_422(client, api, path: str, body: dict) -> None:
    error = api.error(client.post(path, json=body), 422, "invalid_json_value")
    assert str(MAX_JSON_BYTES) in json.dumps(error["details"])


def test_run_config_is_checked_like_experiment_config(client, api) -> None:
    exp = api.experiment()
    response = client.post(f"/api/experiments/{exp['id']}/runs", json={"external": True, "config": nested(40)})
    api.error(response, 422, "invalid_json_value")
    assert api.get(f"/api/experiments/{exp['id']}/runs")["total"] == 0


def test_nan_is_not_json(client, api) -> None:
    api.error(raw_post(client, "/api/experiments", '{"name": "n", "config": {"lr": NaN}}'), 422, "invalid_json")


# --- bounds ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"created_before": "0001-01-01T00:00:00+05:00"},
        {"created_after": "9999-12-31T23:59:59-10:00"},
        {"page": str(10**26)},
        {"page": str(2**63)},
        {"page_size": "0"},
        {"sort": "name; DROP TABLE experiments"},
        {"status": "x" * 51},
    ],
)
def test_out_of_range_list_parameters_are_422(client, api, params: dict) -> None:
    api.error(client.get("/api/experiments", params=params), 422, "validation_error")


def test_the_last_page_allowed_answers(client, api) -> None:
    api.experiment()
    page = api.get("/api/experiments", page=1_000_000)
    assert (page["items"], page["total"], page["page"]) == ([], 1, 1_000_000)


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+05:00"])
def test_an_out_of_range_metric_time_is_422_and_nothing_stored(client, api, ts: str) -> None:
    run = api.run(api.experiment()["id"])
    response = api.metrics(run["id"], [{"key": "loss", "value": 1.0, "step": 0, "ts": ts}])
    api.error(response, 422, "validation_error")
    assert api.get(f"/api/runs/{run['id']}/metrics")["series"] == {}


def test_metric_times_at_the_edges_of_the_range_are_kept(client, api) -> None:
    run = api.run(api.experiment()["id"])
    points = [
        {"key": "loss", "value": 1.0, "step": 0, "ts": "0001-01-02T00:00:00Z"},
        {"key": "loss", "value": 2.0, "step": 1, "ts": "9999-12-30T00:00:00Z"},
    ]
    assert api.metrics(run["id"], points).json() == {"ingested": 2}
    got = api.get(f"/api/runs/{run['id']}/metrics")["series"]["loss"]
    assert [p["ts"] for p in got] == ["0001-01-02T00:00:00Z", "9999-12-30T00:00:00Z"]


@pytest.mark.parametrize("size", [2**63, -1, 10**30])
def test_an_artifact_size_past_bigint_is_422(client, api, size: int) -> None:
    api.error(client.post("/api/artifacts", json={"type": "audio", "uri": "file:///a", "size": size}), 422,
              "validation_error")  # fmt: skip
    assert api.artifact("audio", size=2**63 - 1)["size"] == 2**63 - 1


# --- body size ---------------------------------------------------------------------------------------------------


def test_a_json_body_past_1_mib_is_413_before_it_is_read(client, api) -> None:
    body = json.dumps({"name": "big", "config": {"blob": "x" * (2 * 1024 * 1024)}})

    error = api.error(raw_post(client, "/api/experiments", body), 413, "body_too_large")

    assert error["details"] == {"max_bytes": 1024 * 1024}
    assert api.get("/api/experiments")["total"] == 0


def test_a_chunked_body_without_length_is_counted_and_cut_at_the_limit(app) -> None:
    """A real server and a raw socket: the 413 comes while the client is still sending, not after 8 MiB."""
    sent = 0
    with serve(app) as server, socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(b"POST /api/experiments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        chunk = b" " * 65536
        answer = b""
        while sent < 8 * 1024 * 1024:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:  # the server answered and closed
                break
            sent += len(chunk)
            if select.select([sock], [], [], 0.01)[0]:
                break
        sock.settimeout(5)
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"body_too_large"' in answer
    assert sent < 4 * 1024 * 1024  # about the 1 MiB limit, give or take what was in flight


def test_a_body_within_the_limit_passes(client, api) -> None:
    config = {"blob": "x" * (MAX_JSON_BYTES - 100)}
    exp = api.experiment("near the limit", config=config)
    assert api.get(f"/api/experiments/{exp['id']}")["config"] == config
