"""Replaces ``NameCoref.cluster`` (the names stage's merging of name clusters), byte-identical to upstream.

Upstream compares every pair of name clusters (hundreds in a novel: several hundred thousand pairs),
summing both clusters' counts and their overlap in Python for each. A pair only merges when the
smaller cluster's names overlap the bigger one's by more than 90%, so a pair sharing no name can never
merge. Here an index says which clusters hold each name (kept up to date as clusters merge and gain
names), each cluster visits only the clusters sharing one of its names, in upstream's order (a name it
gains on the way adds the later clusters holding it), cluster sizes are running sums, and each visited
pair is computed with upstream's arithmetic (integer counts, one division), so every merge happens as
upstream's, in the same order.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Any


def make_cluster(names: Any) -> Any:
    """A drop-in ``cluster`` for one ``NameCoref`` instance."""

    def cluster(entities: list[list[str]], is_named: list[int], refs: list[int]) -> list[int]:
        return merge_clusters(entities, names.name_cluster(entities, is_named, refs))

    return cluster


def merge_clusters(entities: list[list[str]], refs: list[int]) -> list[int]:
    """Upstream's merging loop of ``NameCoref.cluster`` on the refs ``name_cluster`` gave."""
    clusters: dict[int, Counter[str] | None] = {}
    for i, ref in enumerate(refs):
        if ref not in clusters:
            clusters[ref] = Counter()
        clusters[ref][" ".join(entities[i])] += 1  # type: ignore[index]
    order = list(clusters)
    position = {ref: i for i, ref in enumerate(order)}
    holders: dict[str, set[int]] = {}
    for ref, names in clusters.items():
        for name in names or ():
            holders.setdefault(name, set()).add(ref)
    sums = {ref: sum(names.values()) for ref, names in clusters.items() if names is not None}

    for ref in order:
        mine = clusters[ref]
        if mine is None or ref in (-1, 0):
            continue  # upstream skips every pair of this ref
        # upstream's inner loop visits every cluster in order; only those sharing a name can merge
        pending = sorted({position[other] for name in mine for other in holders[name]})
        visited: set[int] = set()
        while pending and clusters[ref] is not None:
            at = heapq.heappop(pending)
            if at in visited:
                continue
            visited.add(at)
            ref2 = order[at]
            theirs = clusters[ref2]
            if ref2 == ref or theirs is None or ref2 in (-1, 0):
                continue
            big, small = (ref2, ref) if sums[ref2] > sums[ref] else (ref, ref2)
            small_names, big_names = clusters[small], clusters[big]
            assert small_names is not None and big_names is not None
            overlap = 0
            for name in small_names:
                if name in big_names:
                    overlap += small_names[name]
            if overlap / sums[small] > 0.9:
                for name, count in small_names.most_common():
                    if big == ref and name not in big_names:
                        # a name new to this ref: clusters later in the inner loop holding it become candidates
                        for other in holders[name]:
                            if position[other] > at:
                                heapq.heappush(pending, position[other])
                    big_names[name] += count
                    holders[name].add(big)
                sums[big] += sums[small]
                for idx, r in enumerate(refs):
                    if r == small:
                        refs[idx] = big
                clusters[small] = None
    return refs
