"""The tiny MusicGen is trained once per recipe version into a cache folder and copied from there; another seed is
built (quickly) from that build, once, into a folder of its own.

A fake build (a few files, no training) stands in for the real one, so these tests take milliseconds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tunelab.musicgen import tiny


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every folder the (fake) build wrote to, in order."""
    made: list[Path] = []

    def fake_build(directory: Path, seed: int = 0, base: Path | None = None) -> Path:
        time.sleep(0.2)  # long enough for a racing caller to find the lock taken
        assert (base is None) == (seed == tiny.BASE_SEED)  # another seed starts from the cached base build
        assert base is None or tiny._complete(base)
        directory.mkdir(parents=True, exist_ok=True)
        for name in tiny._MODEL_FILES:
            (directory / name).write_text(f"{name} seed {seed}")
        made.append(directory)
        return directory

    monkeypatch.setattr(tiny, "build_tiny_musicgen", fake_build)
    return made


def test_the_first_call_builds_into_the_cache_and_later_calls_copy(tmp_path: Path, builds: list[Path]) -> None:
    cache = tmp_path / "cache"
    first = tiny.create_tiny_musicgen(tmp_path / "a", seed=3, cache_dir=cache)
    second = tiny.create_tiny_musicgen(tmp_path / "b", seed=3, cache_dir=cache)
    base = cache / f"tiny-musicgen-v{tiny.RECIPE_VERSION}-seed0"
    folder = cache / f"tiny-musicgen-v{tiny.RECIPE_VERSION}-seed3"
    assert [b.parent for b in builds] == [cache, cache]  # the base build first, then seed 3 from it
    assert builds[0].name.startswith(base.name + ".partial-") and builds[1].name.startswith(folder.name + ".partial-")
    names = sorted(p.name for p in cache.iterdir())  # the partials were renamed
    assert names == [base.name, base.name + ".lock", folder.name, folder.name + ".lock"]
    for made in (first, second):
        assert {p.name: p.read_text() for p in made.iterdir()} == {p.name: p.read_text() for p in folder.iterdir()}
    tiny.create_tiny_musicgen(tmp_path / "c", seed=4, cache_dir=cache)
    tiny.create_tiny_musicgen(tmp_path / "d", seed=0, cache_dir=cache)
    assert len(builds) == 3  # another seed is another model; seed 0 is the base build itself
    assert (tmp_path / "d" / "config.json").read_text() == "config.json seed 0"


def test_a_partial_build_left_behind_is_redone(tmp_path: Path, builds: list[Path]) -> None:
    cache = tmp_path / "cache"
    leftover = cache / f"tiny-musicgen-v{tiny.RECIPE_VERSION}-seed0.partial-1"
    leftover.mkdir(parents=True)
    (leftover / "config.json").write_text("cut short")
    tiny.create_tiny_musicgen(tmp_path / "model", cache_dir=cache)
    assert len(builds) == 1 and not leftover.exists()
    assert (tmp_path / "model" / "model.safetensors").read_text() == "model.safetensors seed 0"


def test_callers_that_race_share_one_build(tmp_path: Path, builds: list[Path]) -> None:
    cache = tmp_path / "cache"
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(tiny.cached_tiny_musicgen(0, cache))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len(set(results)) == 1 and len(results) == 3


def test_the_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tiny.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tiny.cache_root() == tmp_path / "xdg" / "tunelab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert tiny.cache_root() == Path.home() / ".cache" / "tunelab"
    monkeypatch.setenv(tiny.CACHE_ENV, str(tmp_path / "mine"))
    assert tiny.cache_root() == tmp_path / "mine"


def test_an_unwritable_cache_builds_straight_into_the_folder(tmp_path: Path, builds: list[Path]) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would go")
    made = tiny.create_tiny_musicgen(tmp_path / "model", cache_dir=blocked / "cache")
    assert builds == [tmp_path / "model"] == [made]
