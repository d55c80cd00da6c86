"""The API contract benchmark: the schemathesis session of tests/api/test_schemathesis.py, or a longer one; prints
one JSON object {"requests", "failures" (target 0), "checks", "seconds", "seed", …}.

    .venv/bin/python bench/contract.py [--max-examples N] [--seed S]

Each failure is printed to stderr with a curl line that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

# The session's one implementation lives beside the test that gates on it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.api.contract_run import MAX_EXAMPLES, SEED, run_contract  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=MAX_EXAMPLES, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        report = run_contract(Path(tmp) / "data", seed=args.seed, max_examples=args.max_examples)
    for failure in report.failures:
        print(failure.describe(), end="\n\n", file=sys.stderr)
    for error in report.errors:
        print(error, file=sys.stderr)
    print(json.dumps(report.summary()))


if __name__ == "__main__":
    main()
