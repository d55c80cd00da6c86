"""Where this TuneLab installation came from: git commit, dirty flag, version."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import tunelab
from tunelab.domain.common import as_naive_utc, utcnow
from tunelab.domain.experiments import Provenance

_PACKAGE_DIR = Path(tunelab.__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=_PACKAGE_DIR, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def installation() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout TuneLab runs from, or (None, None) outside a checkout."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, bool(status)


def capture(given: Provenance | None) -> Provenance:
    """Fill what the caller did not say with facts about this installation and now."""
    commit, dirty = installation()
    given = given or Provenance()
    return Provenance(
        git_commit=given.git_commit if given.git_commit is not None else commit,
        git_dirty=given.git_dirty if given.git_dirty is not None else dirty,
        engine_version=given.engine_version or tunelab.__version__,
        created_at=as_naive_utc(given.created_at) if given.created_at else utcnow(),
    )
