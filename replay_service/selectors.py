"""Item selectors: which item a table samples next, or evicts next (Reverb semantics).

A table holds two selectors over the same keys: a *sampler* and a *remover*. Both see
every insert, priority update and delete; ``select()`` returns a key without removing it,
with the probability it had of being chosen (1.0 for the deterministic selectors).

Random selectors draw from a ``numpy.random.Generator``: pass one in, or let the table
bind its own seeded generator (``Table(seed=...)``) to selectors built without one.
"""

from __future__ import annotations

import abc
import collections
import heapq
import math
from typing import Any, ClassVar, Optional, Sequence, Union

import numpy as np

from replay_service.sum_tree import SumTree


Priorities = Union[Sequence[float], np.ndarray]


def check_priority(priority: float) -> float:
    """Returns ``priority`` as a float; ValueError unless finite and >= 0."""
    try:
        p = float(priority)
    except (TypeError, ValueError):
        raise ValueError(f"priority must be a number, got {priority!r}") from None
    if not (math.isfinite(p) and p >= 0.0):
        raise ValueError(f"priority must be finite and >= 0, got {p!r}")
    return p


def validate_priorities(priorities: Optional[Priorities], n: int) -> list[float]:
    """``n`` validated priorities (1.0 each when ``None``); errors name ``priorities``."""
    if priorities is None:
        return [1.0] * n
    try:
        arr = np.asarray(priorities, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"priorities: expected {n} numbers, got {priorities!r}") from None
    if arr.shape[0] != n:
        raise ValueError(f"priorities: expected {n} values (one per item), got {arr.shape[0]}")
    bad = ~(np.isfinite(arr) & (arr >= 0.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"priorities: must be finite and >= 0, got {arr[i]!r} at index {i}")
    return [float(p) for p in arr]


class ItemSelector(abc.ABC):
    """Common interface of samplers and removers: a set of keys with priorities."""

    name: ClassVar[str]
    deterministic: ClassVar[bool] = True

    def __init__(self, rng: Optional[np.random.Generator] = None) -> None:
        self._rng = rng

    def bind_rng(self, rng: np.random.Generator) -> None:
        """Gives the selector ``rng`` unless it was built with its own generator."""
        if self._rng is None:
            self._rng = rng

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:  # used standalone without a generator: still reproducible
            self._rng = np.random.default_rng(0)
        return self._rng

    @abc.abstractmethod
    def insert(self, key: int, priority: float) -> None:
        """Adds a new key (ValueError if present or the priority is invalid)."""

    @abc.abstractmethod
    def update(self, key: int, priority: float) -> None:
        """Sets the priority of a present key (KeyError if absent)."""

    @abc.abstractmethod
    def delete(self, key: int) -> None:
        """Removes a present key (KeyError if absent)."""

    @abc.abstractmethod
    def select(self) -> tuple[int, float]:
        """Chooses a key (not removing it) and the probability it had; IndexError when empty."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    def spec(self) -> dict[str, Any]:
        """JSON-able description from which :func:`make_selector` rebuilds the selector."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.spec().items() if k != "name")
        return f"{type(self).__name__}({args})"

    def _empty(self) -> IndexError:
        return IndexError(f"{type(self).__name__}: select from an empty selector")


class _Ordered(ItemSelector):
    """Keys in insertion order (an OrderedDict: O(1) at both ends and for deletes)."""

    def __init__(self, rng: Optional[np.random.Generator] = None) -> None:
        super().__init__(rng)
        self._keys: collections.OrderedDict[int, None] = collections.OrderedDict()

    def insert(self, key: int, priority: float) -> None:
        check_priority(priority)
        if key in self._keys:
            raise ValueError(f"key {key} already inserted")
        self._keys[key] = None

    def update(self, key: int, priority: float) -> None:
        check_priority(priority)
        if key not in self._keys:
            raise KeyError(key)

    def delete(self, key: int) -> None:
        del self._keys[key]

    def __len__(self) -> int:
        return len(self._keys)


class Fifo(_Ordered):
    """Oldest item first."""

    name = "fifo"

    def select(self) -> tuple[int, float]:
        if not self._keys:
            raise self._empty()
        return next(iter(self._keys)), 1.0


class Lifo(_Ordered):
    """Newest item first."""

    name = "lifo"

    def select(self) -> tuple[int, float]:
        if not self._keys:
            raise self._empty()
        return next(reversed(self._keys)), 1.0


class _Slots(ItemSelector):
    """Keys packed densely in slots ``0..n-1`` (a delete moves the last key into the hole)."""

    deterministic = False

    def __init__(self, rng: Optional[np.random.Generator] = None) -> None:
        super().__init__(rng)
        self._keys: list[int] = []
        self._slot: dict[int, int] = {}

    def _add(self, key: int) -> int:
        if key in self._slot:
            raise ValueError(f"key {key} already inserted")
        slot = len(self._keys)
        self._keys.append(key)
        self._slot[key] = slot
        return slot

    def _remove(self, key: int) -> tuple[int, int]:
        """Frees ``key``'s slot; returns (freed slot, old slot of the key moved into it)."""
        slot = self._slot.pop(key)
        last = len(self._keys) - 1
        last_key = self._keys.pop()
        if slot != last:
            self._keys[slot] = last_key
            self._slot[last_key] = slot
        return slot, last

    def __len__(self) -> int:
        return len(self._keys)


class Uniform(_Slots):
    """Every item with probability 1/n (priorities are validated and ignored)."""

    name = "uniform"

    def insert(self, key: int, priority: float) -> None:
        check_priority(priority)
        self._add(key)

    def update(self, key: int, priority: float) -> None:
        check_priority(priority)
        if key not in self._slot:
            raise KeyError(key)

    def delete(self, key: int) -> None:
        self._remove(key)

    def select(self) -> tuple[int, float]:
        n = len(self._keys)
        if n == 0:
            raise self._empty()
        slot = min(int(self.rng.random() * n), n - 1)
        return self._keys[slot], 1.0 / n


class Prioritized(_Slots):
    """Item ``i`` with probability ``p_i^α / Σ_j p_j^α`` (a sum tree of the weights ``p^α``).

    As in Reverb, a priority of 0 has weight 0 even when ``α = 0``, and when every weight
    is 0 the selector falls back to uniform.
    """

    name = "prioritized"

    def __init__(self, priority_exponent: float, rng: Optional[np.random.Generator] = None) -> None:
        super().__init__(rng)
        alpha = float(priority_exponent)
        if not (math.isfinite(alpha) and alpha >= 0.0):
            raise ValueError(f"priority_exponent must be finite and >= 0, got {priority_exponent!r}")
        self.priority_exponent = alpha
        self._tree = SumTree()

    def _weight(self, priority: float) -> float:
        p = check_priority(priority)
        if p == 0.0:
            return 0.0
        try:
            w = float(p**self.priority_exponent)
        except OverflowError:
            w = math.inf
        if not math.isfinite(w):
            raise ValueError(f"priority {p!r} ** {self.priority_exponent} overflows")
        return w

    def _set(self, slot: int, weight: float) -> None:
        old = self._tree.get(slot) if slot < self._tree.capacity else 0.0
        self._tree.set(slot, weight)
        if not math.isfinite(self._tree.total()):
            self._tree.set(slot, old)
            raise ValueError("priorities: the sum of priority ** exponent overflows")

    def insert(self, key: int, priority: float) -> None:
        w = self._weight(priority)
        slot = self._add(key)
        try:
            self._set(slot, w)
        except ValueError:
            self._remove(key)
            raise

    def update(self, key: int, priority: float) -> None:
        w = self._weight(priority)
        self._set(self._slot[key], w)

    def delete(self, key: int) -> None:
        slot, last = self._remove(key)
        if slot != last:
            self._tree.set(slot, self._tree.get(last))
        self._tree.set(last, 0.0)

    def select(self) -> tuple[int, float]:
        n = len(self._keys)
        if n == 0:
            raise self._empty()
        u = self.rng.random()
        total = self._tree.total()
        if total <= 0.0:
            return self._keys[min(int(u * n), n - 1)], 1.0 / n
        slot = self._tree.find(u * total)
        return self._keys[slot], self._tree.get(slot) / total

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "priority_exponent": self.priority_exponent}


class _Heap(ItemSelector):
    """The extreme priority first; ties go to the least recently inserted or updated key.

    (Reverb's tie-break: an update counts as a fresh arrival.) A binary heap with lazy
    deletion: stale entries are skipped at the top and compacted when they pile up.
    """

    _sign: ClassVar[float]

    def __init__(self, rng: Optional[np.random.Generator] = None) -> None:
        super().__init__(rng)
        self._heap: list[list[Any]] = []  # [sign * priority, update number, key or None]
        self._entries: dict[int, list[Any]] = {}
        self._counter = 0
        self._stale = 0

    def _push(self, key: int, priority: float) -> None:
        entry = [self._sign * priority, self._counter, key]
        self._counter += 1
        self._entries[key] = entry
        heapq.heappush(self._heap, entry)

    def _invalidate(self, key: int) -> None:
        self._entries.pop(key)[2] = None
        self._stale += 1
        if self._stale > 64 and self._stale > 2 * len(self._entries):
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._stale = 0

    def insert(self, key: int, priority: float) -> None:
        p = check_priority(priority)
        if key in self._entries:
            raise ValueError(f"key {key} already inserted")
        self._push(key, p)

    def update(self, key: int, priority: float) -> None:
        p = check_priority(priority)
        if key not in self._entries:
            raise KeyError(key)
        self._invalidate(key)
        self._push(key, p)

    def delete(self, key: int) -> None:
        self._invalidate(key)

    def select(self) -> tuple[int, float]:
        if not self._entries:
            raise self._empty()
        heap = self._heap
        while heap[0][2] is None:
            heapq.heappop(heap)
            self._stale -= 1
        return heap[0][2], 1.0

    def __len__(self) -> int:
        return len(self._entries)


class MaxHeap(_Heap):
    """Highest priority first."""

    name = "max_heap"
    _sign = -1.0


class MinHeap(_Heap):
    """Lowest priority first."""

    name = "min_heap"
    _sign = 1.0


SELECTORS: dict[str, type[ItemSelector]] = {
    cls.name: cls for cls in (Fifo, Lifo, Uniform, Prioritized, MaxHeap, MinHeap)
}


def make_selector(
    name: str, priority_exponent: Optional[float] = None, rng: Optional[np.random.Generator] = None
) -> ItemSelector:
    """Builds a selector by name (``SELECTORS``); ``priority_exponent`` only for ``prioritized``."""
    if name not in SELECTORS:
        raise ValueError(f"selector: unknown name {name!r}, expected one of {sorted(SELECTORS)}")
    if name == Prioritized.name:
        if priority_exponent is None:
            raise ValueError("priority_exponent: required by the prioritized selector")
        return Prioritized(priority_exponent, rng=rng)
    return SELECTORS[name](rng=rng)
