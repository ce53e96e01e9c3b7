"""Random DAG families: shape, attribute ranges, determinism, parameters and errors."""

from __future__ import annotations

import random

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_sched.datasets import (
    FAMILIES,
    barabasi_albert,
    erdos_renyi,
    generate,
    layered,
    sbm,
    watts_strogatz,
)
from tvm_sched.datasets.generators import MAX_OUT_BYTES, PAGE_BYTES

families = st.sampled_from(FAMILIES)
sizes = st.integers(1, 60)
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=150, deadline=None)
@given(family=families, n=sizes, seed=seeds)
def test_every_family_gives_a_program_ordered_dag(family, n, seed):
    g = generate(family, n, seed=seed)
    assert g.num_nodes == n
    assert np.all(g.src < g.dst)  # ids are a topological order
    assert len(g.topological_order) == n
    assert len(set(g.edges)) == g.num_edges
    assert np.all((g.duration >= 0) & (g.duration < 1))
    assert np.all(g.out_bytes > 0) and np.all(g.out_bytes <= MAX_OUT_BYTES)
    assert np.all(g.out_bytes % PAGE_BYTES == 0)
    assert g.edge_bytes.tolist() == g.out_bytes[g.src].tolist()
    assert set(g.ops) <= {family}
    meta = g.meta
    assert (meta["family"], meta["seed"], meta["n"]) == (family, seed, n)


@settings(max_examples=60, deadline=None)
@given(family=families, n=sizes, seed=seeds)
def test_same_seed_gives_the_same_graph(family, n, seed):
    a = generate(family, n, seed=seed)
    b = generate(family, n, seed=seed)
    assert a.fingerprint == b.fingerprint and a == b


@settings(max_examples=60, deadline=None)
@given(family=families, n=st.integers(2, 60), seed=seeds, delta=st.integers(1, 1000))
def test_different_seeds_give_different_graphs(family, n, seed, delta):
    # Durations are continuous draws, so two seeds collide with probability ~0.
    assert generate(family, n, seed=seed).fingerprint != generate(
        family, n, seed=seed + delta).fingerprint


@pytest.mark.parametrize("family", FAMILIES)
def test_structure_varies_with_the_seed(family):
    shapes = {tuple(generate(family, 40, seed=s).edges) for s in range(10)}
    assert len(shapes) >= 9


@pytest.mark.parametrize("family", FAMILIES)
def test_defaults_give_sparse_mostly_connected_graphs(family):
    for seed in range(3):
        g = generate(family, 300, seed=seed)
        assert 2.0 <= 2 * g.num_edges / g.num_nodes <= 5.0
        giant = max(len(c) for c in nx.weakly_connected_components(g.to_networkx()))
        assert giant >= 0.8 * g.num_nodes
        assert g.depth.max() >= 3  # not a flat bipartite graph


@pytest.mark.parametrize("family", FAMILIES)
def test_unit_durations_keep_structure_and_sizes(family):
    u = generate(family, 25, seed=7)
    d = generate(family, 25, seed=7, duration="unit")
    assert np.all(d.duration == 1.0)
    assert d.edges == u.edges and d.out_bytes.tolist() == u.out_bytes.tolist()
    assert d.meta["duration"] == "unit"


@pytest.mark.parametrize("family", FAMILIES)
def test_global_random_state_is_untouched(family):
    py_state = random.getstate()
    np_state = np.random.get_state()[1].copy()
    generate(family, 30, seed=1)
    assert random.getstate() == py_state
    assert np.array_equal(np.random.get_state()[1], np_state)


def test_family_parameters_are_honoured_and_recorded():
    assert erdos_renyi(20, p=0.0, seed=0).num_edges == 0
    assert erdos_renyi(20, p=1.0, seed=0).num_edges == 20 * 19 // 2
    assert erdos_renyi(20, p=0.25, seed=0).meta["p"] == 0.25

    chain = layered(12, layers=12, skip=0.0, seed=0)
    assert chain.edges == [(i, i + 1) for i in range(11)]
    flat = layered(12, layers=1, seed=0)
    assert flat.num_edges == 0 and flat.meta["layer_sizes"] == [12]
    g = layered(50, layers=5, p=0.3, skip=0.0, seed=3)
    sizes = g.meta["layer_sizes"]
    assert sum(sizes) == 50 and len(sizes) == 5 and min(sizes) >= 1
    assert int(g.depth.max()) == 4  # without skip edges every edge goes to the next layer
    starts = np.cumsum([0, *sizes])
    layer = np.searchsorted(starts, np.arange(50), side="right") - 1
    assert np.all(layer[g.dst] == layer[g.src] + 1)
    assert np.all(g.in_degree[sizes[0]:] >= 1)  # every later node has a predecessor
    with_skips = layered(200, layers=10, skip=2.0, seed=3)
    starts = np.cumsum([0, *with_skips.meta["layer_sizes"]])
    layer = np.searchsorted(starts, np.arange(200), side="right") - 1
    assert np.any(layer[with_skips.dst] >= layer[with_skips.src] + 2)

    s = sbm(60, blocks=3, p_in=0.5, p_out=0.0, seed=2)
    assert s.meta["block_sizes"] == [20, 20, 20]
    comps = list(nx.weakly_connected_components(s.to_networkx()))
    assert len(comps) >= 3  # no edges between the blocks

    assert watts_strogatz(30, k=4, p=0.0, seed=0).num_edges == 60
    assert watts_strogatz(3, seed=0).meta["k"] == 2  # capped at n - 1
    assert barabasi_albert(30, m=1, seed=0).num_edges == 29  # a tree
    assert barabasi_albert(2, m=5, seed=0).meta["m"] == 1
    assert barabasi_albert(1, seed=0).num_edges == 0


def test_meta_records_the_resolved_defaults():
    meta = erdos_renyi(31, seed=4).meta
    assert meta["p"] == pytest.approx(0.1) and meta["name"] == "erdos_renyi-n31-s4"
    assert layered(16, seed=0).meta["layers"] == 4
    assert watts_strogatz(10, seed=0).meta == {
        "family": "watts_strogatz", "seed": 0, "n": 10, "duration": "uniform",
        "name": "watts_strogatz-n10-s0", "k": 4, "p": 0.1,
    }


@pytest.mark.parametrize(
    "family, n, params",
    [
        ("erdos_renyi", 0, {}),
        ("erdos_renyi", 5, {"p": 1.5}),
        ("erdos_renyi", 5, {"seed": -1}),
        ("erdos_renyi", 5, {"seed": 1.5}),
        ("layered", 5, {"layers": 0}),
        ("layered", 5, {"layers": 6}),
        ("layered", 5, {"skip": -1.0}),
        ("layered", 5, {"p": -0.1}),
        ("sbm", 5, {"blocks": 9}),
        ("sbm", 5, {"p_out": 2.0}),
        ("watts_strogatz", 5, {"k": -2}),
        ("watts_strogatz", 5, {"p": 1.1}),
        ("barabasi_albert", 5, {"m": 0}),
        ("barabasi_albert", 5, {"duration": "normal"}),
    ],
)
def test_invalid_parameters_raise_value_error(family, n, params):
    params = {"seed": 0, **params}
    seed = params.pop("seed")
    with pytest.raises(ValueError):
        generate(family, n, seed=seed, **params)


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        generate("small_world", 10, seed=0)
    for name in FAMILIES:
        assert name in str(info.value)


def test_unknown_parameter_is_a_type_error():
    with pytest.raises(TypeError):
        generate("sbm", 10, seed=0, k=3)
