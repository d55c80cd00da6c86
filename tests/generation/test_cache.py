"""The adapter cache on its own, with fake load and unload: least recently used out past the budget, never an
adapter of the batch at hand, never the last one; pre-loading only into free room; its counters."""

from __future__ import annotations

import pytest

from tunelab.generation.cache import AdapterCache


class Fake:
    """Records loads and unloads; each adapter takes `sizes[id]` bytes (40 unless told)."""

    def __init__(self, budget: int, **sizes: int) -> None:
        self.sizes = sizes
        self.loaded: list[str] = []
        self.unloaded: list[str] = []
        self.cache = AdapterCache(budget, self.load, self.unload)

    def load(self, adapter_id: str, path: str) -> int:
        assert path == f"/adapters/{adapter_id}"
        if adapter_id == "broken":
            raise OSError("no such file")
        self.loaded.append(adapter_id)
        return self.sizes.get(adapter_id, 40)

    def unload(self, adapter_id: str) -> None:
        self.unloaded.append(adapter_id)

    def use(self, *ids: str) -> list[str]:
        return self.cache.use((i, f"/adapters/{i}") for i in ids)


def test_the_least_recently_used_adapter_goes_once_past_the_budget() -> None:
    fake = Fake(100)
    assert fake.use("a") == ["a"]
    assert fake.use("b") == ["b"]
    assert fake.use("a") == []  # already loaded: only marked used
    assert fake.cache.ids() == ["a", "b"] and fake.cache.used_bytes == 80

    assert fake.use("c") == ["c"]  # 120 > 100: b, used longest ago, goes
    assert fake.unloaded == ["b"] and fake.cache.ids() == ["c", "a"] and "b" not in fake.cache
    assert fake.cache.used_bytes == 80

    fake.use("b")  # back again: now a is the oldest
    assert fake.unloaded == ["b", "a"] and fake.cache.ids() == ["b", "c"]
    assert (fake.cache.loads, fake.cache.evictions) == (4, 2)
    assert fake.loaded == ["a", "b", "c", "b"]


def test_adapters_of_the_batch_at_hand_are_never_evicted_even_past_the_budget() -> None:
    fake = Fake(50)
    fake.use("a", "b", "c")  # 120 bytes for a batch that needs all three: all stay
    assert sorted(fake.cache.ids()) == ["a", "b", "c"] and fake.unloaded == []
    assert fake.cache.used_bytes == 120

    fake.use("a", "d")  # a is the oldest, but this batch uses it: b and c go instead
    assert fake.unloaded == ["b", "c"] and sorted(fake.cache.ids()) == ["a", "d"]
    assert fake.cache.evictions == 2


def test_the_last_adapter_stays_whatever_its_size() -> None:
    fake = Fake(10, a=40, b=40)
    fake.use("a")
    assert fake.cache.ids() == ["a"] and fake.unloaded == []  # a PEFT model needs one adapter left
    fake.use("b")
    assert fake.cache.ids() == ["b"] and fake.unloaded == ["a"]
    fake.use("b")
    assert fake.cache.ids() == ["b"] and fake.cache.loads == 2


def test_a_budget_of_one_byte_keeps_exactly_the_adapters_in_use() -> None:
    fake = Fake(1)
    fake.use("a", "b")
    fake.use("c")
    assert fake.cache.ids() == ["c"] and sorted(fake.unloaded) == ["a", "b"]
    fake.use("a", "b", "c")
    assert sorted(fake.cache.ids()) == ["a", "b", "c"]
    assert (fake.cache.loads, fake.cache.evictions) == (5, 2)


def test_preload_loads_only_into_free_room_and_puts_the_adapter_first_in_line_to_go() -> None:
    fake = Fake(100)
    fake.use("a")
    assert fake.cache.preload("b", "/adapters/b", 40) is True
    assert fake.cache.ids() == ["a", "b"]  # preloaded, not used: a was used more recently
    assert fake.cache.preload("b", "/adapters/b", 40) is True and fake.loaded == ["a", "b"]  # already there

    assert fake.cache.preload("c", "/adapters/c", 40) is False  # it would not fit without evicting
    assert fake.loaded == ["a", "b"] and fake.unloaded == [] and "c" not in fake.cache

    fake.use("d")  # room is needed: the preloaded b goes before a
    assert fake.unloaded == ["b"] and fake.cache.ids() == ["d", "a"]
    assert (fake.cache.loads, fake.cache.evictions) == (3, 1)


def test_preload_evicts_nothing_even_when_the_adapter_is_bigger_loaded_than_on_disk() -> None:
    # The engine estimates by the file's size; weights saved in half precision take twice that once loaded.
    fake = Fake(100, b=80)
    fake.use("a")
    assert fake.cache.preload("b", "/adapters/b", 40) is False  # 40 + 80 > 100 once loaded: it goes, a stays
    assert fake.cache.ids() == ["a"] and fake.unloaded == ["b"]
    assert fake.cache.used_bytes == 40

    alone = Fake(10, b=80)  # into an empty cache it stays: the last adapter always does
    assert alone.cache.preload("b", "/adapters/b", 5) is True and alone.cache.ids() == ["b"]


def test_an_adapter_that_fails_to_load_leaves_the_cache_as_it_was() -> None:
    fake = Fake(100)
    fake.use("a")
    with pytest.raises(OSError, match="no such file"):
        fake.use("broken")
    assert fake.cache.ids() == ["a"] and fake.cache.loads == 1 and fake.cache.used_bytes == 40
    assert "broken" not in fake.cache
