"""Provenance: what the caller says wins; the rest comes from the checkout, kept current without asking git each time."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tunelab.domain.experiments import Provenance
from tunelab.services import provenance


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real git checkout that provenance takes as the installation's."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    git(repo, "add", "code.py")
    git(repo, "commit", "-q", "-m", "first")
    monkeypatch.setattr(provenance, "_PACKAGE_DIR", repo)
    return repo


def test_a_callers_commit_does_not_get_the_installations_dirty_flag(checkout: Path) -> None:
    (checkout / "code.py").write_text("x = 2\n")  # our checkout is dirty; the caller's commit says nothing

    assert provenance.capture(Provenance(git_commit="abc123")).git_dirty is None
    assert provenance.capture(Provenance(git_commit="abc123", git_dirty=False)).git_dirty is False
    assert provenance.capture(None).git_dirty is True


def dirty_within(seconds: float) -> bool | None:
    """The dirty flag once it has had `seconds` to follow an edit (it is refreshed in the background)."""
    deadline = time.monotonic() + seconds
    while (dirty := provenance.capture(None).git_dirty) is not True and time.monotonic() < deadline:
        time.sleep(0.05)
    return dirty


def test_commit_and_dirty_flag_follow_the_checkout_while_the_process_runs(checkout: Path) -> None:
    first = provenance.capture(None)
    assert (first.git_commit, first.git_dirty) == (git(checkout, "rev-parse", "HEAD"), False)

    (checkout / "code.py").write_text("x = 2\n")  # an edit changes nothing in .git: seen within about a second
    assert dirty_within(provenance.DIRTY_MAX_AGE + 2) is True

    git(checkout, "commit", "-q", "-am", "second")  # a commit is seen at once
    after = provenance.capture(None)
    assert (after.git_commit, after.git_dirty) == (git(checkout, "rev-parse", "HEAD"), False)
    assert after.git_commit != first.git_commit

    git(checkout, "checkout", "-q", first.git_commit)  # so is a checkout (detached HEAD)
    assert provenance.capture(None).git_commit == first.git_commit


def test_a_create_asks_git_nothing_while_the_checkout_stays_the_same(checkout: Path, monkeypatch) -> None:
    provenance.capture(None)
    calls: list[tuple[str, ...]] = []
    real = provenance._git
    monkeypatch.setattr(provenance, "_git", lambda cwd, *args: calls.append(args) or real(cwd, *args))

    for _ in range(20):
        provenance.capture(None)

    assert calls == []


def test_outside_a_checkout_commit_and_dirty_are_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "_PACKAGE_DIR", tmp_path)
    captured = provenance.capture(Provenance(git_dirty=True))
    assert captured.git_commit is None
    assert provenance.capture(None).git_dirty is None
    assert captured.git_dirty is True  # what the caller said is kept
