"""Where this TuneLab installation came from: git commit, dirty flag, version.

Asking git at every create cost two processes (~5 ms), more than the rest of a create. The facts are kept
instead, and kept current without a process per create: the commit is asked again whenever a cheap look at the
repository's HEAD, its branch ref and its index (a file read and three stats) shows that one of them changed —
a commit, a checkout, a reset, a `git add` — so it is never stale. The dirty flag also follows edits to tracked
files, which change nothing in .git: it is asked again in the background once it is DIRTY_MAX_AGE old, so it
lags an edit by about a second at most.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import tunelab
from tunelab.domain.common import as_naive_utc, utcnow
from tunelab.domain.experiments import Provenance

_PACKAGE_DIR = Path(tunelab.__file__).resolve().parent
DIRTY_MAX_AGE = 1.0  # seconds


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


@dataclass
class Checkout:
    """Git facts of one working directory, asked of git only when they may have changed."""

    directory: Path
    git_dir: Path | None = None
    common_dir: Path | None = None
    stamp: tuple[object, ...] | None = None
    commit: str | None = None
    dirty: bool | None = None
    dirty_at: float = 0.0
    refreshing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def find(cls, directory: Path) -> Checkout:
        found = _git(directory, "rev-parse", "--absolute-git-dir", "--git-common-dir")
        checkout = cls(directory)
        if found:
            git_dir, common = found.splitlines()
            checkout.git_dir = Path(git_dir)
            checkout.common_dir = (directory / common).resolve() if not os.path.isabs(common) else Path(common)
        return checkout

    def _stamp(self) -> tuple[object, ...]:
        """What changes whenever HEAD, the branch it names or the index changes (the index last)."""
        assert self.git_dir is not None and self.common_dir is not None
        try:
            head = (self.git_dir / "HEAD").read_text()
        except OSError:
            head = ""
        ref = head.removeprefix("ref:").strip() if head.startswith("ref:") else None
        return (
            head,
            _stat(self.common_dir / ref) if ref else None,
            _stat(self.common_dir / "packed-refs"),
            _stat(self.git_dir / "index"),
        )

    def facts(self) -> tuple[str | None, bool | None]:
        """(commit, dirty) now; None for both outside a checkout."""
        if self.git_dir is None:
            return None, None
        stamp = self._stamp()
        with self.lock:
            if stamp != self.stamp:
                self.commit = _git(self.directory, "rev-parse", "HEAD")
                self.dirty, self.dirty_at = self._ask_dirty(), time.monotonic()
                self.stamp = self._stamp()  # taken again: `git status` may have rewritten the index
            elif time.monotonic() - self.dirty_at > DIRTY_MAX_AGE and not self.refreshing:
                self.refreshing = True
                threading.Thread(target=self._refresh_dirty, daemon=True, name="git-status").start()
            return self.commit, self.dirty

    def _ask_dirty(self) -> bool | None:
        status = _git(self.directory, "status", "--porcelain", "--untracked-files=no")
        return None if status is None else bool(status)

    def _refresh_dirty(self) -> None:
        dirty = self._ask_dirty()
        fresh = self._stamp()
        with self.lock:
            self.dirty, self.dirty_at, self.refreshing = dirty, time.monotonic(), False
            if self.stamp is not None and fresh[:3] == self.stamp[:3]:
                self.stamp = fresh  # only the index moved (`git status` refreshes it): the commit still holds


_checkouts: dict[Path, Checkout] = {}
_checkouts_lock = threading.Lock()


def _checkout() -> Checkout:
    with _checkouts_lock:
        if _PACKAGE_DIR not in _checkouts:
            _checkouts[_PACKAGE_DIR] = Checkout.find(_PACKAGE_DIR)
        return _checkouts[_PACKAGE_DIR]


def installed_commit() -> str | None:
    """The commit of the checkout TuneLab runs from, or None outside a checkout."""
    return _checkout().facts()[0]


def installed_dirty() -> bool | None:
    """Whether tracked files of the checkout differ from its commit, or None outside a checkout."""
    return _checkout().facts()[1]


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
        commit, installed = _checkout().facts()
        dirty = given.git_dirty if given.git_dirty is not None else (installed if commit else None)
    return Provenance(
        git_commit=commit,
        git_dirty=dirty,
        engine_version=given.engine_version or tunelab.__version__,
        created_at=as_naive_utc(given.created_at) if given.created_at else utcnow(),
    )
