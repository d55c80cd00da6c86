"""Entry point of `python -m tunelab.training`."""

from __future__ import annotations

import sys


def run() -> int:
    """Import the trainer (and torch) only after a cheap start, then train."""
    from tunelab.training.train import main

    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(run())
