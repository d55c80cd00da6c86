"""Where this TuneLab installation came from: git commit, dirty flag, version."""

from __future__ import annotations

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


# Asked afresh at every create, never cached: the checkout changes under a long-running server (commits, edits)
# and the training subprocess runs whatever is checked out then. Both calls together take about 5 ms.
def installed_commit() -> str | None:
    """The commit of the checkout TuneLab runs from, or None outside a checkout."""
    return _git("rev-parse", "HEAD")


def installed_dirty() -> bool | None:
    """Whether tracked files of the checkout differ from its commit, or None outside a checkout."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def capture(given: Provenance | None) -> Provenance:
    """Fill what the caller did not say with facts about this installation and now.

    The dirty flag describes a commit: it comes from the installation only when the commit does too. A caller
    that names its own commit and says nothing of its state gets null, not the state of our checkout.
    """
    given = given or Provenance()
    commit: str | None
    dirty: bool | None
    if given.git_commit is not None:
        commit, dirty = given.git_commit, given.git_dirty
    else:
        commit = installed_commit()
        dirty = given.git_dirty if given.git_dirty is not None else (installed_dirty() if commit else None)
    return Provenance(
        git_commit=commit,
        git_dirty=dirty,
        engine_version=given.engine_version or tunelab.__version__,
        created_at=as_naive_utc(given.created_at) if given.created_at else utcnow(),
    )
