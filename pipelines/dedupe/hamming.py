"""Near-duplicate search over 64-bit perceptual hashes, without comparing all pairs.

Multi-index hashing: split the 64 bits into ``k + 1`` bands. Two hashes within Hamming
distance ``k`` differ in at most ``k`` bits, so by the pigeonhole principle at least one band
is identical in both. Grouping by ``(band index, band value)`` therefore yields every pair at
distance <= k as a candidate (recall is exact); candidates are then verified on all 64 bits.

The same functions serve the Beam stage (one group per ``GroupByKey`` key) and the in-memory
version used by the benchmark and tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

HASH_BITS = 64


def band_layout(k: int, bits: int = HASH_BITS) -> list[tuple[int, int]]:
    """(shift, width) of each of the ``k + 1`` bands, widths as equal as possible."""
    if not 0 <= k < bits:
        raise ValueError(f"distance k must be in [0, {bits - 1}], got {k}")
    n = k + 1
    base, extra = divmod(bits, n)
    widths = [base + (1 if i < extra else 0) for i in range(n)]
    layout, shift = [], bits
    for w in widths:
        shift -= w
        layout.append((shift, w))
    return layout


def band_keys(h: int, k: int) -> list[tuple[int, int]]:
    """The ``(band index, band value)`` keys of one hash."""
    return [(i, (h >> shift) & ((1 << w) - 1)) for i, (shift, w) in enumerate(band_layout(k))]


def popcount64(x: np.ndarray) -> np.ndarray:
    """Bit count of each uint64 (numpy >= 2 has it built in)."""
    return np.bitwise_count(x.astype(np.uint64, copy=False))


def pairs_within(hashes: np.ndarray, k: int, block: int = 1024) -> Iterator[tuple[int, int, int]]:
    """All index pairs ``(i, j, d)``, i < j, of one candidate group with distance d <= k.

    Compares blocks of rows against the rest of the group with one broadcast XOR + popcount,
    so a group of g hashes costs O(g^2) vectorised word operations and no Python-level pairs.
    """
    h = np.asarray(hashes, dtype=np.uint64)
    n = len(h)
    for start in range(0, n - 1, block):
        rows = h[start : start + block]
        d = popcount64(rows[:, None] ^ h[None, start:])  # shape (rows, n - start)
        ii, jj = np.nonzero(d <= k)
        keep = jj > ii  # column index is relative to start: only pairs i < j
        for i, j in zip(ii[keep], jj[keep]):
            yield start + int(i), start + int(j), int(d[i, j])


def near_duplicate_pairs(hashes: np.ndarray, k: int) -> set[tuple[int, int]]:
    """Every pair of indices whose hashes are within distance ``k`` (in memory, banded)."""
    h = np.asarray(hashes, dtype=np.uint64)
    found: set[tuple[int, int]] = set()
    for shift, width in band_layout(k):
        band = (h >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(band, kind="stable")
        sorted_band = band[order]
        starts = np.flatnonzero(np.r_[True, sorted_band[1:] != sorted_band[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
            members = order[s:e]
            for a, b, _ in pairs_within(h[members], k):
                i, j = int(members[a]), int(members[b])
                found.add((i, j) if i < j else (j, i))
    return found


def all_pairs(hashes: np.ndarray, k: int) -> set[tuple[int, int]]:
    """The brute-force baseline: every pair compared (O(n^2)), one vectorised row at a time.

    Row by row is the fastest plain-numpy form on one core (no large temporaries); it is what
    the benchmark times as the all-pairs baseline.
    """
    h = np.asarray(hashes, dtype=np.uint64)
    found: set[tuple[int, int]] = set()
    for i in range(len(h) - 1):
        close = np.flatnonzero(popcount64(h[i + 1 :] ^ h[i]) <= k)
        found.update((i, i + 1 + int(j)) for j in close)
    return found


class UnionFind:
    """Disjoint sets over hashable keys, with path halving and union by size."""

    def __init__(self) -> None:
        self._parent: dict = {}
        self._size: dict = {}

    def find(self, x):
        parent = self._parent
        if x not in parent:
            parent[x] = x
            self._size[x] = 1
            return x
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size[rb]

    def groups(self) -> list[list]:
        out: dict = {}
        for x in self._parent:
            out.setdefault(self.find(x), []).append(x)
        return list(out.values())


def clusters(edges: Iterable[tuple[object, object]]) -> list[list]:
    """Connected components of an edge list, each sorted, the list sorted by first member."""
    uf = UnionFind()
    for a, b in edges:
        uf.union(a, b)
    return sorted((sorted(g) for g in uf.groups()), key=lambda g: g[0])
