"""Reachable sets in sampled live-edge graphs, for exact lazy-greedy influence maximisation.

For each run (one live-edge graph) every node's reachable set is computed once: strongly
connected components are found with scipy, and sets are merged over the condensed DAG in
reverse topological order. A set is stored as a sorted ``int32`` index list while it is small
(at most ``2 × words`` entries, i.e. no more bytes than a bitset) and as a packed ``uint64``
bitset otherwise, so memory follows the total size of the sets — a few MB on sparse kNN
graphs — and never exceeds one bitset per component and run.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

__all__ = ["ReachIndex"]


def _bits_of(indices: np.ndarray, words: int) -> np.ndarray:
    out = np.zeros(words, dtype=np.uint64)
    np.bitwise_or.at(out, indices >> 6, np.left_shift(np.uint64(1), (indices & 63).astype(np.uint64)))
    return out


def _topological(n_comp: int, indptr: np.ndarray, children: np.ndarray) -> list[int]:
    indegree = np.bincount(children, minlength=n_comp)
    queue = deque(np.flatnonzero(indegree == 0).tolist())
    order = []
    while queue:
        c = queue.popleft()
        order.append(c)
        for d in children[indptr[c] : indptr[c + 1]].tolist():
            indegree[d] -= 1
            if indegree[d] == 0:
                queue.append(d)
    return order


class ReachIndex:
    """Reachable set (the node included) of every node in each of ``runs`` live-edge graphs.

    Args:
        nbrs: ``[n, K]`` out-neighbours.
        live: ``[runs, n, K]`` booleans, edge ``(v, nbrs[v, j])`` live in run ``r``.
    """

    def __init__(self, nbrs: np.ndarray, live: np.ndarray) -> None:
        self.runs, self.n, _ = live.shape
        self.words = (self.n + 63) // 64
        self.limit = 2 * self.words
        self.kind = np.zeros((self.runs, self.n), dtype=np.int8)  # 0: list, 1: bitset
        self.ptr = np.zeros((self.runs, self.n), dtype=np.int64)  # list start, or bitset row
        self.length = np.zeros((self.runs, self.n), dtype=np.int64)
        lists: list[np.ndarray] = []
        bitsets: list[np.ndarray] = []
        list_offset = 0
        for r in range(self.runs):
            src, col = np.nonzero(live[r])
            comp_sets, members = self._one_run(src, nbrs[src, col])
            for s, nodes in zip(comp_sets, members):  # a component's nodes share its reachable set
                if s.dtype == np.uint64:
                    self.kind[r, nodes] = 1
                    self.ptr[r, nodes] = len(bitsets)
                    self.length[r, nodes] = int(np.bitwise_count(s).sum())
                    bitsets.append(s)
                else:
                    self.ptr[r, nodes] = list_offset
                    self.length[r, nodes] = s.size
                    lists.append(s)
                    list_offset += s.size
        self.lists = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int32)
        self.bits = np.stack(bitsets) if bitsets else np.zeros((0, self.words), dtype=np.uint64)

    def _one_run(self, src: np.ndarray, dst: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Reachable set of every strongly connected component, and each component's nodes."""
        n = self.n
        graph = sp.csr_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n, n))
        n_comp, labels = connected_components(graph, directed=True, connection="strong")
        order = np.argsort(labels, kind="stable")
        members = np.split(order.astype(np.int32), np.cumsum(np.bincount(labels, minlength=n_comp))[:-1])
        cs, cd = labels[src], labels[dst]
        keep = cs != cd
        dag = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.int8), (cs[keep], cd[keep])), shape=(n_comp, n_comp))
        dag.sum_duplicates()
        sets: list[np.ndarray] = [np.zeros(0, dtype=np.int32)] * n_comp
        for c in reversed(_topological(n_comp, dag.indptr, dag.indices)):  # children before parents
            kids = [sets[d] for d in dag.indices[dag.indptr[c] : dag.indptr[c + 1]].tolist()]
            if any(k.dtype == np.uint64 for k in kids):
                acc = _bits_of(members[c], self.words)
                for k in kids:
                    acc |= k if k.dtype == np.uint64 else _bits_of(k, self.words)
                sets[c] = acc
            else:
                merged = np.unique(np.concatenate([members[c], *kids])) if kids else members[c]
                sets[c] = _bits_of(merged, self.words) if merged.size > self.limit else merged
        return sets, members

    def _list(self, r: int, v: int) -> np.ndarray:
        return self.lists[self.ptr[r, v] : self.ptr[r, v] + self.length[r, v]]

    def sizes(self) -> np.ndarray:
        """``[n]`` reach of each node summed over runs."""
        return self.length.sum(axis=0)

    def new_covered(self) -> tuple[np.ndarray, np.ndarray]:
        """An empty coverage state: ``(bool [runs, n], packed bits [runs, words])``."""
        return np.zeros((self.runs, self.n), dtype=bool), np.zeros((self.runs, self.words), dtype=np.uint64)

    def gain(self, v: int, covered: tuple[np.ndarray, np.ndarray]) -> int:
        """Nodes newly reached, summed over runs, if ``v`` joins a selection with coverage ``covered``."""
        flags, bits = covered
        total = 0
        for r in range(self.runs):
            if self.kind[r, v]:
                total += int(np.bitwise_count(self.bits[self.ptr[r, v]] & ~bits[r]).sum())
            else:
                total += int(self.length[r, v] - flags[r, self._list(r, v)].sum())
        return total

    def cover(self, v: int, covered: tuple[np.ndarray, np.ndarray]) -> None:
        """Add ``v``'s reachable sets to ``covered`` in place."""
        flags, bits = covered
        for r in range(self.runs):
            if self.kind[r, v]:
                row = self.bits[self.ptr[r, v]]
                flags[r] |= np.unpackbits(row.view(np.uint8), bitorder="little")[: self.n].astype(bool)
            else:
                flags[r, self._list(r, v)] = True
            bits[r] = np.packbits(np.concatenate([flags[r], np.zeros(self.words * 64 - self.n, dtype=bool)]), bitorder="little").view(
                np.uint64
            )

    def spread(self, seeds: list[int]) -> float:
        """Mean number of nodes reached from ``seeds`` over the runs."""
        covered = self.new_covered()
        for s in seeds:
            self.cover(s, covered)
        return float(covered[0].sum() / self.runs)

    def nbytes(self) -> int:
        """Bytes held by the stored sets."""
        return int(self.lists.nbytes + self.bits.nbytes + self.kind.nbytes + self.ptr.nbytes + self.length.nbytes)
