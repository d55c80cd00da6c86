"""The API keeps the contract its OpenAPI schema states, as schemathesis checks it (see contract_run.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .contract_run import run_contract

# The checks this gate stands on; schemathesis runs more (content types, headers, Allow, auth-free ones).
GATES = {
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "unsupported_method",
}
# Seeded ids that list answers hand to schemathesis: these reads must have found something.
READS_BY_ID = [
    "GET /api/experiments/{experiment_id}",
    "GET /api/runs/{run_id}",
    "GET /api/runs/{run_id}/metrics",
    "GET /api/artifacts/{artifact_id}",
]


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_undocumented_status_or_schema_violation(tmp_path: Path) -> None:
    report = run_contract(tmp_path / "data")

    assert report.errors == []
    assert report.failures == [], "\n\n".join(failure.describe() for failure in report.failures)
    # It did run: every operation, every gate, well past a request per operation.
    assert report.operations == report.documented >= 20
    assert set(report.checks) >= GATES
    assert report.requests > 2000
    assert all(report.statuses[operation][200] > 0 for operation in READS_BY_ID), report.statuses
