"""The API contract, checked by schemathesis: a fresh TuneLab served on loopback, seeded, then a bounded run.

One function, run_contract, shared by tests/api/test_schemathesis.py (part of `make test`) and bench/contract.py
(which prints its summary), so that the gate and the figure come from the same session. The run is schemathesis'
own engine, as `schemathesis run` drives it: every phase (examples, coverage, fuzzing, stateful along the schema's
links) and every check, with a fixed seed and one worker, so that the same code makes the same requests.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import schemathesis
import uvicorn
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.engine import events, from_schema
from schemathesis.engine.statistic import Statistic
from starlette.types import ASGIApp, Receive, Scope, Send

from tunelab.app import create_app
from tunelab.config import Settings

SEED = 20260101
# About two minutes on a 2-core machine with every phase on (examples, coverage, fuzzing, stateful).
MAX_EXAMPLES = 200
# What schema-valid input may be answered with: 404 for ids that name nothing, 409 for a state that forbids it.
ACCEPTED = ["2xx", "404", "409"]
# Refusals of schema-valid input that no schema can state, as they depend on what is stored; each is a documented
# status with its own code.
REFUSED_BY_STATE = {
    "POST /api/experiments": ["422"],  # unknown_artifacts: inputs name artifacts that must exist
    "POST /api/experiments/{experiment_id}/results": ["422"],  # unknown_artifacts
    "POST /api/experiments/{experiment_id}/runs": ["400"],  # dataset_required, training_unavailable
    # path_not_allowed / path_not_found / invalid_model: the folder a path names, and what is in it
    "POST /api/models": ["422"],
    "PATCH /api/settings": ["422"],  # model_not_found: the model must be registered
    "POST /api/datasets/{dataset_id}/items": ["422"],  # invalid_audio / invalid_item: what the files hold
    "POST /api/datasets/{dataset_id}/export": ["422"],  # dataset_empty
    # path_not_allowed / path_not_found / invalid_adapter / base_model_required: the folder and what is in it
    "POST /api/adapters": ["422"],
    "POST /api/adapters/import": ["422"],  # invalid_archive / name_required: what the uploaded zip holds
    "POST /api/datasets/from-ratings": ["422"],  # no_rated_generations: what has been rated
    "POST /api/abtests/{abtest_id}/dataset": ["422"],  # no_decisive_votes: what has been voted
}
# Every check schemathesis has, but use_after_free: nothing in TuneLab is hard-deleted, DELETE /api/experiments/{id}
# archives (DESIGN.md), so the experiment is still there afterwards, by design.
OFF = {"use_after_free": {"enabled": False}}


def config(seed: int, max_examples: int) -> schemathesis.Config:
    operations = [
        {"include-name": name, "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, *extra]}}}
        for name, extra in REFUSED_BY_STATE.items()
    ]
    return schemathesis.Config.from_dict(
        {
            "seed": seed,
            # No example database: a run replays nothing from an earlier one, and writes nothing into the tree.
            "generation": {"max-examples": max_examples, "database": "none"},
            "checks": {"enabled": True, "positive_data_acceptance": {"expected-statuses": ACCEPTED}, **OFF},
            "workers": 1,
            # Failures show the values sent: nothing here is secret, and `key` (a metric key) reads as one.
            "output": {"sanitization": {"enabled": False}},
            "operations": operations,
            # Scenarios follow the links from creates; unique inputs keep generated names and ids from colliding.
            "phases": {"stateful": {"generation": {"unique-inputs": True, "database": "none"}}},
        }
    )


@dataclass
class Failure:
    operation: str
    title: str
    code: str
    message: str
    reproduce: str
    response: str

    def describe(self) -> str:
        return f"{self.operation}: {self.title} ({self.code})\n{self.message}\n{self.reproduce}\n=> {self.response}"


@dataclass
class ContractReport:
    requests: int
    checks: list[str]
    seconds: float
    seed: int
    max_examples: int
    operations: int  # operations tested
    documented: int  # operations in the schema
    failures: list[Failure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Per operation, how many answers of each status it got: whether ids were exercised beyond 404s.
    statuses: dict[str, Counter[int]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The figures: requests the server received, failures found (target 0), checks run, time, seed."""
        return {
            "requests": self.requests,
            "failures": len(self.failures),
            "errors": len(self.errors),
            "checks": self.checks,
            "seconds": round(self.seconds, 1),
            "seed": self.seed,
            "max_examples": self.max_examples,
            "operations": f"{self.operations}/{self.documented}",
        }


class RequestCounter:
    """Counts the HTTP requests the app receives: the run's figure is what the server saw."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.count += 1
        await self.app(scope, receive, send)


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Accepted connections inherit it: without it each keep-alive answer waits ~40 ms for a delayed ACK
    # (Nagle), which would make the run twenty times slower.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # "error": schemathesis sends malformed requests on purpose, which uvicorn would warn about, one by one.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def seed_data(client: httpx.Client) -> None:
    """An artifact, an experiment that used it, runs with metrics (some still running, one completed): ids for
    schemathesis to find in list answers, so that routes with ids are exercised beyond 404s."""

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(path, json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    artifact = post("/api/artifacts", {"type": "dataset_export", "uri": "file:///data/export.jsonl", "size": 10})
    experiment = post(
        "/api/experiments",
        {"name": "seeded", "inputs": {"dataset_export": [artifact["id"]]}, "config": {"epochs": 1}},
    )
    points = [
        {"key": key, "value": 1.0 / (step + 1), "step": step} for key in ("loss", "accuracy") for step in range(5)
    ]
    runs = [post(f"/api/experiments/{experiment['id']}/runs", {"external": True}) for _ in range(4)]
    for run in runs:
        post(f"/api/runs/{run['id']}/metrics", {"points": points})
    post(f"/api/runs/{runs[0]['id']}/status", {"status": "completed"})
    post(f"/api/experiments/{experiment['id']}/results", {"outputs": {"dataset_export": artifact["id"]}})


def _answer(response: Any) -> str:
    if response is None:
        return "no response"
    return f"{response.status_code} {response.content[:500]!r}"


def run_contract(data_dir: Path, *, seed: int = SEED, max_examples: int = MAX_EXAMPLES) -> ContractReport:
    """Serve a fresh TuneLab on `data_dir`, seed it, and run every schemathesis phase and check against it."""
    app = RequestCounter(create_app(Settings(data_dir=data_dir)))  # a real DuckDB file under data_dir
    # Hypothesis caches what it learns (the constants in our modules) under .hypothesis in the working directory;
    # here it goes beside the run's data.
    set_hypothesis_home_dir(data_dir / "hypothesis")
    try:
        return _run(app, seed, max_examples)
    finally:
        set_hypothesis_home_dir(None)


def _run(app: RequestCounter, seed: int, max_examples: int) -> ContractReport:
    with serve(app) as url:
        with httpx.Client(base_url=url) as client:
            seed_data(client)
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config(seed, max_examples))
        documented = sum(len(operations) for operations in schema.raw_schema["paths"].values())
        app.count = 0  # the seeding and the schema's download are not the run's
        started = time.monotonic()
        statistic = Statistic()
        errors: list[str] = []
        checks: set[str] = set()
        statuses: dict[str, Counter[int]] = {}
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                statistic.on_scenario_finished(event.recorder)
                for case_id, interaction in event.recorder.interactions.items():
                    if interaction.response is not None:
                        label = event.recorder.cases[case_id].value.operation.label
                        statuses.setdefault(label, Counter())[interaction.response.status_code] += 1
                checks.update(check.name for nodes in event.recorder.checks.values() for check in nodes)
            elif isinstance(event, events.NonFatalError):
                errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
            elif isinstance(event, events.FatalError):
                errors.append(f"fatal: {event.exception!r}")
        seconds = time.monotonic() - started
    failures = [
        Failure(label, failure.title, failure.code, failure.message, group.code_sample or "", _answer(group.response))
        for label, grouped in statistic.failures.items()
        for group in grouped.values()
        for failure in group.failures
    ]
    return ContractReport(
        requests=app.count,
        checks=sorted(checks),
        seconds=seconds,
        seed=seed,
        max_examples=max_examples,
        operations=len(statistic.tested_operations),
        documented=documented,
        failures=failures,
        errors=errors,
        statuses=statuses,
    )
