"""OpGraph: validation, derived structure against networkx, round trips, immutability."""

from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvm_sched.errors import CycleError, InvalidGraphError
from tvm_sched.graph import FORMAT_NAME, FORMAT_VERSION, OpGraph
from tvm_sched.testing.dags import (
    canonical_dags,
    chain,
    diamond,
    fork,
    fork_join,
    join,
    random_dag,
    wide,
)
from tvm_sched.testing.strategies import dags

NAMES = ["in", "conv", "relu", "out"]


def _g(edges, **kw):
    kw.setdefault("names", NAMES)
    return OpGraph(4, edges, **kw)


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"duration": [1, -2, 1, 1]}, r"node 1 \('conv'\) has duration = .*-2.*finite and >= 0"),
        ({"duration": [1, 1, float("nan"), 1]}, r"node 2 \('relu'\) has duration = .*nan"),
        ({"duration": [1, 1, 1, float("inf")]}, r"node 3 \('out'\) has duration = .*inf"),
        ({"out_bytes": [1, 1, -8, 1]}, r"node 2 \('relu'\) has out_bytes = .*-8"),
        ({"out_bytes": [1, float("nan"), 1, 1]}, r"node 1 \('conv'\) has out_bytes = .*nan"),
        ({"out_bytes": [1, 2.5, 1, 1]}, r"node 1 \('conv'\) has non-integer out_bytes = .*2.5"),
        ({"flops": [1, 1, 1, -1]}, r"node 3 \('out'\) has flops"),
        ({"duration": [1, 2, 3]}, r"duration has shape \(3,\), expected \(4,\)"),
        ({"out_bytes": [1, 2, 3, 4, 5]}, r"out_bytes has shape \(5,\), expected \(4,\)"),
        ({"flops": [[1, 2, 3, 4]]}, r"flops has shape \(1, 4\), expected \(4,\)"),
        ({"is_output": [True]}, r"is_output has shape \(1,\), expected \(4,\)"),
        ({"duration": ["a", 1, 1, 1]}, r"duration must be numbers"),
        ({"names": ["a", "b"]}, r"2 names given for 4 nodes"),
        ({"ops": ["x"]}, r"1 op kinds given for 4 nodes"),
        ({"edge_bytes": [1, 2]}, r"edge_bytes has shape \(2,\), expected \(1,\)"),
        ({"edge_bytes": [-1]}, r"edge 0 \(0 -> 1\) has bytes = .*-1.*non-negative integer"),
        ({"edge_bytes": [0.5]}, r"edge 0 \(0 -> 1\) has bytes"),
    ],
)
def test_attribute_errors_name_the_node(kw, pattern):
    with pytest.raises(InvalidGraphError, match=pattern):
        _g([(0, 1)], **kw)


def test_dangling_edge_names_the_missing_node():
    with pytest.raises(InvalidGraphError, match=r"edge 1 \(1 -> 7\) refers to node 7, which does "
                                                r"not exist \(the graph has 4 nodes\)"):
        _g([(0, 1), (1, 7)])
    with pytest.raises(InvalidGraphError, match=r"refers to node -1"):
        _g([(-1, 2)])


def test_self_loop_is_a_cycle_error():
    with pytest.raises(CycleError, match=r"node 2 \('relu'\) has an edge to itself") as info:
        _g([(0, 1), (2, 2)])
    assert info.value.cycle == [2]
    assert isinstance(info.value, InvalidGraphError) and isinstance(info.value, ValueError)


def test_duplicate_edge_names_both_ends():
    with pytest.raises(InvalidGraphError, match=r"duplicate edge 1 -> 3 \('conv' -> 'out'\)"):
        _g([(1, 3), (0, 1), (1, 3)])


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ((True, []), "num_nodes must be an int"),
        ((2.0, []), "num_nodes must be an int"),
        ((-1, []), r"num_nodes must be >= 0, got -1"),
        ((3, [(0, 1, 2)]), r"edge 0 is \(0, 1, 2\); expected a pair"),
        ((3, [("a", 1)]), "edge endpoints must be integers"),
    ],
)
def test_other_construction_errors(args, pattern):
    with pytest.raises(InvalidGraphError, match=pattern):
        OpGraph(*args)


def _assert_real_cycle(err: CycleError, edges: set[tuple[int, int]], names) -> None:
    cyc = err.cycle
    assert len(cyc) >= 2 and len(set(cyc)) == len(cyc)
    for a, b in zip(cyc, cyc[1:] + cyc[:1], strict=True):
        assert (a, b) in edges, f"{a} -> {b} is not an edge; cycle {cyc}"
    msg = str(err)
    for c in cyc:
        assert f"{c} ({names[c]!r})" in msg


def test_cycle_by_hand():
    edges = [(0, 1), (1, 2), (2, 3), (3, 1)]
    with pytest.raises(CycleError, match="the graph has a cycle") as info:
        _g(edges)
    _assert_real_cycle(info.value, set(edges), NAMES)
    assert sorted(info.value.cycle) == [1, 2, 3]


@given(dags(min_nodes=2, max_nodes=10), st.data())
def test_back_edge_gives_a_real_cycle(g, data):
    # pick u reaching v through at least one edge, then add v -> u
    nxg = nx.DiGraph(g.edges)
    pairs = sorted((u, v) for u in nxg for v in nx.descendants(nxg, u))
    if pairs:
        u, v = data.draw(st.sampled_from(pairs))
        edges = g.edges + [(v, u)]  # (v, u) is new: the graph was acyclic
    else:
        edges = [(0, 1), (1, 0)]
    with pytest.raises(CycleError) as info:
        OpGraph(g.num_nodes, edges, names=g.names)
    _assert_real_cycle(info.value, set(edges), g.names)


# ---------------------------------------------------------------------------- structure
def _nx(g: OpGraph) -> nx.DiGraph:
    h = nx.DiGraph()
    h.add_nodes_from(range(g.num_nodes))
    h.add_edges_from(g.edges)
    return h


@given(dags(max_nodes=12, exact=False))
def test_levels_and_depth_match_networkx(g):
    h = _nx(g)
    dur = g.duration.tolist()
    top, bottom = {}, {}
    for v in nx.topological_sort(h):
        top[v] = max((top[p] + dur[p] for p in h.predecessors(v)), default=0.0)
    for v in reversed(list(nx.topological_sort(h))):
        bottom[v] = dur[v] + max((bottom[s] for s in h.successors(v)), default=0.0)
    np.testing.assert_allclose(g.top_level, [top[v] for v in range(g.num_nodes)], rtol=1e-12)
    np.testing.assert_allclose(g.bottom_level, [bottom[v] for v in range(g.num_nodes)],
                               rtol=1e-12)
    # critical path: split each node into in -> out carrying its duration
    split = nx.DiGraph()
    for v in range(g.num_nodes):
        split.add_edge(("in", v), ("out", v), weight=dur[v])
    for u, v in g.edges:
        split.add_edge(("out", u), ("in", v), weight=0.0)
    cp = nx.dag_longest_path_length(split, weight="weight") if g.num_nodes else 0.0
    assert g.critical_path_length == pytest.approx(cp, rel=1e-12, abs=1e-12)
    for v in range(g.num_nodes):
        anc = nx.ancestors(h, v) | {v}
        assert g.depth[v] == nx.dag_longest_path_length(h.subgraph(anc))
    assert g.total_duration == pytest.approx(math.fsum(dur), rel=1e-12, abs=1e-12)


@given(dags(max_nodes=12))
def test_topological_order_and_adjacency(g):
    order = g.topological_order.tolist()
    assert sorted(order) == list(range(g.num_nodes))
    pos = {v: k for k, v in enumerate(order)}
    assert all(pos[u] < pos[v] for u, v in g.edges)
    # documented: Kahn, smallest ready index first
    assert order == list(nx.lexicographical_topological_sort(_nx(g)))
    assert g.program_order_is_topological == all(u < v for u, v in g.edges)
    edges = g.edges
    assert g.num_edges == len(edges) == len(set(edges))
    for v in range(g.num_nodes):
        assert g.preds(v) == tuple(sorted(u for u, w in edges if w == v)) == g.pred_lists[v]
        assert g.succs(v) == tuple(sorted(w for u, w in edges if u == v)) == g.succ_lists[v]
        lo, hi = g.pred_ptr[v], g.pred_ptr[v + 1]
        for k in range(lo, hi):
            assert edges[g.pred_eid[k]] == (g.pred_idx[k], v)
        lo, hi = g.succ_ptr[v], g.succ_ptr[v + 1]
        for k in range(lo, hi):
            assert edges[g.succ_eid[k]] == (v, g.succ_idx[k])
    assert g.in_degree.tolist() == [len(g.preds(v)) for v in range(g.num_nodes)]
    assert g.out_degree.tolist() == [len(g.succs(v)) for v in range(g.num_nodes)]
    assert len(g) == g.num_nodes


def test_default_attributes_and_docstring_example():
    g = OpGraph(3, [(0, 1), (1, 2)], duration=[1, 2, 3])
    assert (g.num_nodes, g.num_edges, g.critical_path_length) == (3, 2, 6.0)
    assert (g.preds(2), g.succs(0)) == ((1,), (1,))
    h = OpGraph(2, [(0, 1)], out_bytes=[7, 3])
    assert h.duration.tolist() == [1.0, 1.0] and h.flops.tolist() == [0.0, 0.0]
    assert h.names == ("n0", "n1") and h.ops == ("", "")
    assert h.is_output.tolist() == [False, False]
    assert h.edge_bytes.tolist() == [7]  # default: the producer's out_bytes
    assert h.out_bytes.dtype == np.int64 and h.edge_bytes.dtype == np.int64
    e = OpGraph(0)
    assert e.critical_path_length == 0.0 and e.topological_order.tolist() == []
    assert e.edges == [] and e.total_duration == 0.0


# ---------------------------------------------------------------------------- immutability
def test_arrays_are_read_only():
    g = diamond()
    arrays = [g.src, g.dst, g.edge_bytes, g.duration, g.out_bytes, g.flops, g.is_output,
              g.pred_ptr, g.pred_idx, g.pred_eid, g.succ_ptr, g.succ_idx, g.succ_eid,
              g.topological_order, g.top_level, g.bottom_level, g.depth]
    for a in arrays:
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 1


def test_inputs_are_copied_and_meta_is_protected():
    dur = np.array([1.0, 2.0])
    out = np.array([True, False])
    meta = {"model": "m"}
    g = OpGraph(2, [(0, 1)], duration=dur, is_output=out, meta=meta)
    dur[0] = 99.0
    out[1] = True
    meta["model"] = "changed"
    assert g.duration.tolist() == [1.0, 2.0] and g.is_output.tolist() == [True, False]
    assert g.meta == {"model": "m"}
    g.meta["model"] = "x"
    g.to_dict()["meta"]["model"] = "y"
    assert g.meta == {"model": "m"}
    assert g == OpGraph(2, [(0, 1)], duration=[1.0, 2.0], is_output=[True, False],
                        meta={"model": "m"})


# ---------------------------------------------------------------------------- round trips
def _edge_triples(g: OpGraph) -> list[tuple[int, int, int]]:
    return [(u, v, int(b)) for (u, v), b in zip(g.edges, g.edge_bytes.tolist(), strict=True)]


def _same(a: OpGraph, b: OpGraph, *, edge_order: bool = True) -> None:
    assert a == b and a.fingerprint == b.fingerprint and hash(a) == hash(b)
    assert a.names == b.names and a.ops == b.ops
    if edge_order:
        assert _edge_triples(a) == _edge_triples(b)
    else:
        assert sorted(_edge_triples(a)) == sorted(_edge_triples(b))
    for attr in ("duration", "out_bytes", "flops", "is_output"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert a.meta == b.meta


@given(dags(max_nodes=10, exact=False, with_meta=True))
def test_json_round_trip(g):
    _same(OpGraph.from_json(g.to_json()), g)
    _same(OpGraph.from_dict(json.loads(json.dumps(g.to_dict()))), g)
    _same(OpGraph.from_dict(g.to_dict()), g)
    d = g.to_dict()
    assert d["format"] == FORMAT_NAME and d["version"] == FORMAT_VERSION


@given(dags(max_nodes=10, exact=False, with_meta=True))
def test_networkx_round_trip(g):
    h = g.to_networkx()
    assert isinstance(h, nx.DiGraph)
    assert sorted(h.edges) == sorted(g.edges)
    for u, v in g.edges:
        k = g.edges.index((u, v))
        assert h.edges[u, v]["bytes"] == int(g.edge_bytes[k])
    # networkx keeps edges grouped by source: the order may change, the graph may not
    _same(OpGraph.from_networkx(h), g, edge_order=False)


def test_edge_listing_order_does_not_change_identity():
    a = OpGraph(3, [(1, 2), (0, 2)], out_bytes=[1, 2, 3], edge_bytes=[5, 6])
    b = OpGraph(3, [(0, 2), (1, 2)], out_bytes=[1, 2, 3], edge_bytes=[6, 5])
    assert a == b and a.fingerprint == b.fingerprint
    c = OpGraph(3, [(0, 2), (1, 2)], out_bytes=[1, 2, 3], edge_bytes=[5, 6])
    assert a != c  # same edges, different sizes


def test_from_networkx_defaults_and_errors():
    h = nx.DiGraph()
    h.add_edge("a", "b")
    h.add_edge("b", "c", bytes=5)
    h.nodes["a"]["out_bytes"] = 9
    g = OpGraph.from_networkx(h)
    assert g.names == ("a", "b", "c") and g.edges == [(0, 1), (1, 2)]
    assert g.edge_bytes.tolist() == [9, 5]  # missing bytes: the producer's out_bytes
    assert g.duration.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(InvalidGraphError, match="directed graph"):
        OpGraph.from_networkx(nx.Graph([(0, 1)]))
    with pytest.raises(CycleError):
        OpGraph.from_networkx(nx.DiGraph([(0, 1), (1, 2), (2, 0)]))


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda d: d.update(version=FORMAT_VERSION + 1),
         rf"version {FORMAT_VERSION + 1} is not supported .*versions 1..{FORMAT_VERSION}"),
        (lambda d: d.update(version=0), "version 0 is not supported"),
        (lambda d: d.update(version="1"), "version '1' is not supported"),
        (lambda d: d.update(format="something.else"), "not an OpGraph document"),
        (lambda d: d.pop("edges"), "malformed OpGraph document"),
        (lambda d: d["edges"].append([0]), "malformed OpGraph document"),
        (lambda d: d["nodes"].append(3), "malformed OpGraph document"),
        (lambda d: d["nodes"][1].update(duration=-1.0), r"node 1 \('diamond_1'\) has duration"),
        (lambda d: d["edges"].append([3, 0, 1]), "cycle"),
    ],
)
def test_from_dict_rejects_bad_documents(mutate, pattern):
    d = json.loads(diamond().to_json())
    mutate(d)
    with pytest.raises(InvalidGraphError, match=pattern):
        OpGraph.from_dict(d)


def test_from_json_rejects_bad_text():
    with pytest.raises(InvalidGraphError, match="not valid JSON"):
        OpGraph.from_json("{nope")
    with pytest.raises(InvalidGraphError, match="not an OpGraph document"):
        OpGraph.from_json("[1, 2]")


# ---------------------------------------------------------------------------- derived graphs
@given(dags(max_nodes=10, with_meta=True), st.data())
def test_subgraph_is_the_induced_graph(g, data):
    keep = sorted(data.draw(st.sets(st.sampled_from(range(g.num_nodes)))) if g.num_nodes else [])
    sub = g.subgraph(keep)
    new = {v: i for i, v in enumerate(keep)}
    expect = [(new[u], new[v], int(b)) for (u, v), b in zip(g.edges, g.edge_bytes, strict=True)
              if u in new and v in new]
    got = [(u, v, int(b)) for (u, v), b in zip(sub.edges, sub.edge_bytes, strict=True)]
    assert sorted(got) == sorted(expect)
    assert sub.names == tuple(g.names[v] for v in keep)
    assert sub.ops == tuple(g.ops[v] for v in keep)
    for attr in ("duration", "out_bytes", "flops", "is_output"):
        np.testing.assert_array_equal(getattr(sub, attr), getattr(g, attr)[keep])
    assert sub.meta == g.meta
    assert g.subgraph(range(g.num_nodes)) == g
    assert g.subgraph(keep, meta={"part": 1}).meta == {"part": 1}


def test_subgraph_rejects_missing_nodes():
    with pytest.raises(InvalidGraphError, match="subgraph node 4 does not exist"):
        diamond().subgraph([0, 4])


def test_replace():
    g = diamond()
    h = g.replace(duration=[3, 4, 5, 6], meta={"name": "other"})
    assert h.duration.tolist() == [3.0, 4.0, 5.0, 6.0] and h.meta == {"name": "other"}
    assert h.edges == g.edges and h.names == g.names
    np.testing.assert_array_equal(h.edge_bytes, g.edge_bytes)
    assert g.duration.tolist() == [1.0, 3.5, 2.5, 1.5]  # the original is unchanged
    assert g.replace() == g
    assert OpGraph(2, [(0, 1)]).replace(duration=[3, 4]).total_duration == 7.0
    with pytest.raises(TypeError, match=r"unknown attributes \['colour'\]"):
        g.replace(colour=[1, 2, 3, 4])
    with pytest.raises(InvalidGraphError, match=r"node 0 \('diamond_0'\) has duration"):
        g.replace(duration=[-1, 1, 1, 1])


# ---------------------------------------------------------------------------- fingerprint
@given(dags(min_nodes=1, max_nodes=8, with_meta=True), st.data())
def test_fingerprint_tracks_every_attribute(g, data):
    twin = OpGraph(g.num_nodes, g.edges, duration=g.duration.tolist(),
                   out_bytes=g.out_bytes.tolist(), flops=g.flops.tolist(),
                   is_output=g.is_output.tolist(), edge_bytes=g.edge_bytes.tolist(),
                   names=list(g.names), ops=list(g.ops), meta=g.meta)
    assert twin == g and twin.fingerprint == g.fingerprint and hash(twin) == hash(g)
    v = data.draw(st.integers(0, g.num_nodes - 1))
    changes = {
        "duration": g.duration + np.eye(g.num_nodes)[v],
        "out_bytes": g.out_bytes + np.eye(g.num_nodes, dtype=np.int64)[v],
        "flops": g.flops + np.eye(g.num_nodes)[v],
        "is_output": g.is_output ^ np.eye(g.num_nodes, dtype=bool)[v],
        "names": [n + ("x" if i == v else "") for i, n in enumerate(g.names)],
        "ops": [o + ("x" if i == v else "") for i, o in enumerate(g.ops)],
    }
    if g.num_edges:
        changes["edge_bytes"] = g.edge_bytes + np.eye(g.num_edges, dtype=np.int64)[0]
    for attr, value in changes.items():
        other = g.replace(**{attr: value})
        assert other.fingerprint != g.fingerprint, attr
        assert other != g
    # metadata is not part of the fingerprint, but is part of equality
    other = g.replace(meta={"different": True})
    assert other.fingerprint == g.fingerprint
    assert other != g or g.meta == {"different": True}
    if g.num_edges:
        fewer = OpGraph(g.num_nodes, g.edges[1:], names=g.names)
        assert fewer.fingerprint != OpGraph(g.num_nodes, g.edges, names=g.names).fingerprint


def test_equality_with_other_types():
    assert diamond() != "diamond"
    assert diamond() in {diamond()}
    assert repr(diamond()) == "OpGraph(n=4, edges=4, 'diamond')"
    assert repr(OpGraph(2)) == "OpGraph(n=2, edges=0)"


# ---------------------------------------------------------------------------- canonical DAGs
def test_canonical_dags_are_deterministic_and_shaped():
    a, b = canonical_dags(), canonical_dags()
    assert list(a) == ["chain", "diamond", "fork", "join", "wide", "fork_join", "random12",
                       "random30"]
    for name in a:
        assert a[name] == b[name]
        g = a[name]
        assert g.program_order_is_topological
        assert len(set(g.duration.tolist())) > 1 or g.num_nodes == 1
        assert np.all(g.out_bytes > 0)
    assert chain(5).edges == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert chain(5).is_output.tolist() == [False] * 4 + [True]
    assert fork(3).edges == [(0, 1), (0, 2), (0, 3)]
    assert join(3).edges == [(0, 3), (1, 3), (2, 3)] and join(3).is_output[3]
    assert wide(4).num_edges == 0 and wide(4).num_nodes == 4
    assert fork_join(2).edges == [(0, 1), (0, 2), (1, 3), (2, 3)]
    assert a["random12"].num_nodes == 12 and a["random30"].num_nodes == 30
    assert random_dag(10, 0.5, seed=1, int_durations=True).duration.tolist() == [
        float(int(d)) for d in random_dag(10, 0.5, seed=1, int_durations=True).duration]
    assert random_dag(20, 0.3, seed=1) != random_dag(20, 0.3, seed=2)
    assert random_dag(0, 0.5, seed=0).num_nodes == 0
    assert random_dag(6, 0.0, seed=0).num_edges == 0
    assert random_dag(6, 1.0, seed=0).num_edges == 15


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: chain(0), "chain length must be an integer >= 1"),
        (lambda: fork(0), "fork width"),
        (lambda: wide(-1), "wide width"),
        (lambda: random_dag(5, 1.5, seed=0), r"edge probability must lie in \[0, 1\]"),
        (lambda: random_dag(-1, 0.5, seed=0), "random_dag size"),
    ],
)
def test_dag_builders_reject_bad_sizes(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


@pytest.mark.parametrize("kw", [
    dict(out_bytes=[1e30, 1]), dict(out_bytes=[2**63, 1]), dict(out_bytes=[2**53 + 2, 0]),
    dict(edge_bytes=[1e30]), dict(edge_bytes=[2**64]),
])
def test_byte_counts_that_would_wrap_int64_are_rejected(kw):
    """Issue 15 item 3: 1e30 wrapped to a negative int64 and peak memory came out 0."""
    with pytest.raises(InvalidGraphError, match=r"at most 2\*\*53 bytes"):
        OpGraph(2, [(0, 1)], **kw)


def test_byte_totals_that_would_wrap_int64_are_rejected():
    n = 1025  # 1025 * 2**52 > 2**62
    with pytest.raises(InvalidGraphError, match=r"add up to .* at most 2\*\*62"):
        OpGraph(n, [], out_bytes=[2**52] * n)
    g = OpGraph(2, [(0, 1)], out_bytes=[2**53, 2**53])  # the largest sizes are fine
    assert int(g.out_bytes.sum()) == 2**54


def test_huge_sizes_in_a_json_file_are_a_format_error(tmp_path):
    from tvm_sched.datasets import read_graph
    from tvm_sched.errors import DatasetFormatError

    d = json.loads(OpGraph(2, [(0, 1)], out_bytes=[5, 5]).to_json())
    d["edges"][0][2] = 1e30
    path = tmp_path / "g.json"
    path.write_text(json.dumps(d))
    with pytest.raises((DatasetFormatError, InvalidGraphError), match="2\\*\\*53"):
        read_graph(path)
