"""The adapters loaded into the generation model, least recently used first out once past a memory budget.

The cache knows adapters by id and size only; loading and unloading are the engine's (PEFT's `load_adapter` and
`delete_adapter`). Adapters a batch is about to use are never evicted for that batch, and the last adapter loaded
stays: a PEFT model with no adapter left cannot generate, and one adapter is small beside the base model.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable


class AdapterCache:
    def __init__(self, budget_bytes: int, load: Callable[[str, str], int], unload: Callable[[str], None]) -> None:
        """`load(adapter_id, path)` loads an adapter and returns the bytes it takes; `unload(adapter_id)` frees it."""
        self.budget_bytes = budget_bytes
        self._load = load
        self._unload = unload
        self._sizes: OrderedDict[str, int] = OrderedDict()  # least recently used first
        self.loads = 0
        self.evictions = 0

    def __contains__(self, adapter_id: object) -> bool:
        return adapter_id in self._sizes

    @property
    def used_bytes(self) -> int:
        return sum(self._sizes.values())

    def ids(self) -> list[str]:
        """Loaded adapters, most recently used first."""
        return list(reversed(self._sizes))

    def use(self, adapters: Iterable[tuple[str, str]]) -> list[str]:
        """Make sure every (id, path) is loaded, mark them used, evict past the budget; the ids loaded now."""
        wanted = dict(adapters)
        loaded = []
        for adapter_id, path in wanted.items():
            if adapter_id in self._sizes:
                self._sizes.move_to_end(adapter_id)
                continue
            self._sizes[adapter_id] = self._load(adapter_id, path)
            self.loads += 1
            loaded.append(adapter_id)
        self._evict(keep=set(wanted))
        return loaded

    def preload(self, adapter_id: str, path: str, size_bytes: int) -> bool:
        """Load an adapter ahead of use when it fits the budget without evicting anything; whether it is loaded."""
        if adapter_id in self._sizes:
            return True
        if self.used_bytes + size_bytes > self.budget_bytes:
            return False
        self._sizes[adapter_id] = self._load(adapter_id, path)
        self.loads += 1
        self._sizes.move_to_end(adapter_id, last=False)  # preloaded, not used: first to go when room is needed
        if self.used_bytes > self.budget_bytes and len(self._sizes) > 1:
            # bigger loaded than `size_bytes` said (half-precision files load as float32): it goes, not the others
            del self._sizes[adapter_id]
            self._unload(adapter_id)
            self.evictions += 1
            return False
        return True

    def _evict(self, keep: set[str]) -> None:
        for adapter_id in list(self._sizes):
            if self.used_bytes <= self.budget_bytes or len(self._sizes) <= 1:
                return
            if adapter_id in keep:
                continue
            del self._sizes[adapter_id]
            self._unload(adapter_id)
            self.evictions += 1
