"""``NameCoref.cluster``'s replacement gives upstream's refs exactly, on generated name lists."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booknlp_api.engine.components import upstream_data
from booknlp_api.engine.name_cluster_merge import make_cluster, merge_clusters
from booknlp_api.models.bert import import_upstream

name_coref = import_upstream("booknlp.english.name_coref")
NAMES = name_coref.NameCoref(upstream_data("aliases.txt"))
UPSTREAM = type(NAMES).cluster

# few distinct words, so that clusters share names and merge (upstream's path with the arithmetic)
WORD = st.sampled_from(["Emma", "Woodhouse", "Miss", "mr.", "Knightley", "Harriet", "Smith", "Em", "Frank", "Jane"])
MENTION = st.lists(WORD, min_size=1, max_size=3)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mentions=st.lists(st.tuples(MENTION, st.integers(-1, 12)), min_size=0, max_size=60))
def test_merging_gives_upstreams_refs_on_any_clustering(mentions: list[tuple[list[str], int]]) -> None:
    """The merge loop alone, from any starting refs (-1 and 0 included, which upstream never merges)."""
    entities = [words for words, _ in mentions]
    refs = [ref for _, ref in mentions]
    ours = merge_clusters(copy.deepcopy(entities), list(refs))

    # upstream's cluster() with name_cluster replaced by "these refs", the rest of the method unchanged
    stand_in = copy.copy(NAMES)
    stand_in.name_cluster = lambda _entities, _named, _refs: list(refs)
    assert ours == UPSTREAM(stand_in, copy.deepcopy(entities), [], [])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=st.lists(st.tuples(st.sampled_from(["A", "B", "C", "D", "A B"]), st.integers(1, 6), st.integers(1, 12)),
                       min_size=1, max_size=25))
def test_merging_gives_upstreams_refs_when_clusters_grow_into_others(groups: list[tuple[str, int, int]]) -> None:
    """Repeated names, so that a cluster absorbs one that carries a name new to it (>90% overlap needs
    counts) and then reaches clusters it shared nothing with before."""
    entities = [name.split(" ") for name, _, times in groups for _ in range(times)]
    refs = [ref for _, ref, times in groups for _ in range(times)]
    stand_in = copy.copy(NAMES)
    stand_in.name_cluster = lambda _entities, _named, _refs: list(refs)
    assert merge_clusters(copy.deepcopy(entities), list(refs)) == UPSTREAM(stand_in, copy.deepcopy(entities), [], [])


def test_a_name_gained_by_merging_makes_new_candidates() -> None:
    # cluster 1 (11 x "Ann") absorbs cluster 2 (10 x "Ann", 1 x "Bo"; a tie in size, so the outer one is the
    # bigger) and gains "Bo"; cluster 3 (22 x "Bo") shared nothing with it before, and is now its equal in
    # size and wholly inside it: upstream merges 3 into 1 in the same pass. Visited the other way round
    # later (3 the bigger by the tie rule), 1 would not merge into 3 (1 of its 22 names in 3).
    entities = [["Ann"]] * 11 + [["Ann"]] * 10 + [["Bo"]] + [["Bo"]] * 22
    refs = [1] * 11 + [2] * 11 + [3] * 22
    stand_in = copy.copy(NAMES)
    stand_in.name_cluster = lambda _entities, _named, _refs: list(refs)
    expected = UPSTREAM(stand_in, copy.deepcopy(entities), [], [])
    assert expected == [1] * 44
    assert merge_clusters(copy.deepcopy(entities), list(refs)) == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mentions=st.lists(st.tuples(MENTION, st.booleans()), min_size=0, max_size=60),
       existing=st.data())
def test_the_installed_cluster_gives_upstreams_refs(mentions: list[tuple[list[str], bool]],
                                                    existing: st.DataObject) -> None:
    """Through upstream's own ``name_cluster`` (aliases, variants) as the names stage calls it."""
    entities = [words for words, _ in mentions]
    is_named = [int(named) for _, named in mentions]
    refs = existing.draw(st.lists(st.sampled_from([-1, 0, 1, 2, 3]), min_size=len(mentions), max_size=len(mentions)))
    ours = make_cluster(NAMES)(copy.deepcopy(entities), list(is_named), list(refs))
    assert ours == UPSTREAM(NAMES, copy.deepcopy(entities), list(is_named), list(refs))
