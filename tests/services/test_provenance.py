"""Provenance: what the caller says wins; the rest comes from the checkout, asked afresh each time."""

from __future__ import annotations

import subprocess
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


def test_commit_and_dirty_flag_follow_the_checkout_while_the_process_runs(checkout: Path) -> None:
    first = provenance.capture(None)
    assert (first.git_commit, first.git_dirty) == (git(checkout, "rev-parse", "HEAD"), False)

    (checkout / "code.py").write_text("x = 2\n")
    assert provenance.capture(None).git_dirty is True

    git(checkout, "commit", "-q", "-am", "second")
    after = provenance.capture(None)
    assert (after.git_commit, after.git_dirty) == (git(checkout, "rev-parse", "HEAD"), False)
    assert after.git_commit != first.git_commit


def test_outside_a_checkout_commit_and_dirty_are_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "_PACKAGE_DIR", tmp_path)
    captured = provenance.capture(Provenance(git_dirty=True))
    assert captured.git_commit is None
    assert provenance.capture(None).git_dirty is None
    assert captured.git_dirty is True  # what the caller said is kept
