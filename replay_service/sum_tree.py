"""A sum tree over a growable array: the O(log n) core of the ``Prioritized`` selector.

Leaf ``i`` holds a non-negative weight ``w_i``; every inner node holds the sum of its two
children, so the root is ``sum(w)`` and a prefix-sum search walks one root-to-leaf path.
"""

from __future__ import annotations

import numpy as np


class SumTree:
    """Weights ``w_0 .. w_{capacity-1}`` with O(log n) ``set``, ``total`` and ``find``.

    The tree is a flat list (Python floats are faster than numpy scalars for the
    per-element walks): the root is at 1, node ``j`` has children ``2j`` and ``2j + 1``
    and the leaves are ``[capacity, 2 * capacity)``. The capacity is a power of two and
    doubles when a leaf beyond it is set. A parent is always recomputed as the sum of its
    children (never adjusted by a delta), so rounding errors cannot accumulate.
    """

    def __init__(self, capacity: int = 1024) -> None:
        cap = 1
        while cap < capacity:
            cap *= 2
        self._capacity = cap
        self._tree: list[float] = [0.0] * (2 * cap)

    @property
    def capacity(self) -> int:
        """Number of leaves currently allocated."""
        return self._capacity

    def total(self) -> float:
        """Sum of all weights."""
        return self._tree[1]

    def get(self, index: int) -> float:
        """Weight of leaf ``index``."""
        return self._tree[self._capacity + index]

    def set(self, index: int, weight: float) -> None:
        """Sets leaf ``index`` to ``weight`` (>= 0) and recomputes its ancestors."""
        if index >= self._capacity:
            self._grow(index + 1)
        tree = self._tree
        j = self._capacity + index
        tree[j] = weight
        j >>= 1
        while j:
            tree[j] = tree[2 * j] + tree[2 * j + 1]
            j >>= 1

    def find(self, target: float) -> int:
        """Index of the leaf whose cumulative range ``[W_{i-1}, W_i)`` holds ``target``.

        Requires ``total() > 0``. Only subtrees of positive weight are entered, so a leaf
        of weight zero is never returned even when rounding pushes ``target`` past a range
        boundary (or past the total).
        """
        tree = self._tree
        cap = self._capacity
        j = 1
        while j < cap:
            left = tree[2 * j]
            right = tree[2 * j + 1]
            if right > 0.0 and (target >= left or left <= 0.0):
                target -= left
                j = 2 * j + 1
            else:
                j = 2 * j
        return j - cap

    def _grow(self, needed: int) -> None:
        """Doubles the capacity until ``needed`` leaves fit, rebuilding the sums (O(n), amortized)."""
        cap = self._capacity
        while cap < needed:
            cap *= 2
        leaves = np.zeros(cap, dtype=np.float64)
        leaves[: self._capacity] = self._tree[self._capacity :]
        tree = np.zeros(2 * cap, dtype=np.float64)
        tree[cap:] = leaves
        level, start = leaves, cap
        while start > 1:
            level = level.reshape(-1, 2).sum(axis=1)  # each parent = left + right, one addition
            start //= 2
            tree[start : 2 * start] = level
        self._capacity = cap
        self._tree = tree.tolist()
