"""Schedule: validation messages, chains, round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvm_sched.errors import InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule
from tvm_sched.testing.dags import diamond
from tvm_sched.testing.strategies import dag_and_order, dags

# 0 -> {1, 2} -> 3, durations 1, 3.5, 2.5, 1.5
G = diamond()


def _first_violated_edge(g: OpGraph, order) -> tuple[int, int] | None:
    pos = {v: k for k, v in enumerate(order)}
    for u, v in g.edges:  # edge-id order
        if pos[u] >= pos[v]:
            return u, v
    return None


def _asap(g: OpGraph, order) -> list[float]:
    start = [0.0] * g.num_nodes
    for v in order:
        start[v] = max((start[p] + float(g.duration[p]) for p in g.preds(v)), default=0.0)
    return start


# ---------------------------------------------------------------------------- basics
def test_docstring_example():
    g = OpGraph(3, [(0, 2), (1, 2)])
    Schedule(order=(1, 0, 2)).validate(g)
    with pytest.raises(InvalidScheduleError, match=r"edge 0 -> 2 \('n0' -> 'n2'\) is violated: "
                                                   r"node 2 is at position 0 of the order, "
                                                   r"before its input 0 at position 1"):
        Schedule(order=(2, 0, 1)).validate(g)


def test_fields_are_normalised_to_python_tuples():
    s = Schedule(order=np.array([0, 2, 1, 3]), start=np.array([0, 1, 1, 4]),
                 lane=np.array([0, 1, 0, 0]))
    assert s.order == (0, 2, 1, 3) and type(s.order[0]) is int
    assert s.start == (0.0, 1.0, 1.0, 4.0) and type(s.start[0]) is float
    assert s.lane == (0, 1, 0, 0) and type(s.lane[0]) is int
    assert s.num_nodes == 4 and s.num_lanes == 2
    assert Schedule(order=(0,)).num_lanes == 1
    assert s.position().tolist() == [0, 2, 1, 3]
    # info is provenance, not identity
    assert Schedule(order=(0, 1), info={"a": 1}) == Schedule(order=(0, 1), info={"b": 2})
    assert hash(Schedule(order=(0, 1), info={"a": 1})) == hash(Schedule(order=(0, 1)))


def test_chains():
    assert Schedule(order=(0, 2, 1, 3)).chains() == [[0, 2, 1, 3]]
    s = Schedule(order=(0, 2, 1, 3), lane=(1, 0, 1, 1))
    assert s.chains() == [[1], [0, 2, 3]]
    # a lane that nobody uses gives an empty chain
    assert Schedule(order=(0, 1), lane=(2, 0)).chains() == [[1], [], [0]]


@given(dag_and_order(max_nodes=10), st.integers(1, 4), st.randoms(use_true_random=False))
def test_chains_partition_the_order(go, m, rnd):
    g, order = go
    lane = [rnd.randrange(m) for _ in range(g.num_nodes)]
    s = Schedule(order=order, lane=lane)
    chains = s.chains()
    assert sorted(v for c in chains for v in c) == list(range(g.num_nodes))
    for ln, chain in enumerate(chains):
        assert all(lane[v] == ln for v in chain)
        pos = [order.tolist().index(v) for v in chain]
        assert pos == sorted(pos)


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("sched", "kw", "pattern"),
    [
        (Schedule(order=(0, 1, 2)), {}, r"the order has 3 entries; the graph has 4 nodes"),
        (Schedule(order=(0, 1, 2, 3, 3)), {}, r"the order has 5 entries"),
        (Schedule(order=(0, 1, 1, 3)), {}, r"node 1 appears twice in the order"),
        (Schedule(order=(0, 1, 4, 3)), {}, r"order\[2\] = 4 is not a node of the graph"),
        (Schedule(order=(0, -1, 2, 3)), {}, r"order\[1\] = -1 is not a node of the graph"),
        (Schedule(order=(0, 3, 1, 2)), {}, r"edge 1 -> 3 \('diamond_1' -> 'diamond_3'\)"),
        (Schedule(order=(0, 1, 2, 3), lane=(0, 1)), {}, r"2 lanes given for 4 nodes"),
        (Schedule(order=(0, 1, 2, 3), lane=(0, 1, 2, 0)), {"lanes": 2},
         r"node 2 is on lane 2 \(the problem has 2 lanes\)"),
        (Schedule(order=(0, 1, 2, 3), lane=(0, -1, 0, 0)), {}, r"node 1 is on lane -1"),
        (Schedule(order=(0, 1, 2, 3), start=(0, 1, 1)), {}, r"3 start times given for 4 nodes"),
        (Schedule(order=(0, 1, 2, 3), start=(0, 1, float("nan"), 5)), {},
         r"node 2 has start .*nan"),
        (Schedule(order=(0, 1, 2, 3), start=(0, 1, 1, 4.4)), {},
         r"edge 1 -> 3 \('diamond_1' -> 'diamond_3'\) is violated: node 3 starts at 4.4, "
         r"before its input 1 is done at 4.5"),
        (Schedule(order=(0, 1, 2, 3), start=(0, 0.5, 1, 5)), {},
         r"edge 0 -> 1 .* node 1 starts at 0.5, before its input 0 is done at 1"),
        (Schedule(order=(0, 1, 2, 3), start=(0, 1, 1, 4.5), lane=(0, 0, 0, 0)), {},
         r"nodes 1 and 2 overlap on lane 0: 2 starts at 1 while 1 runs until 4.5"),
        (Schedule(order=(0, 1, 2, 3), start=(0, 0, 0, 0)), {"latency": [0, 0, 1, 0]},
         r"edge 2 -> 3 .* before its input 2 is done at 1"),
    ],
)
def test_validate_errors(sched, kw, pattern):
    with pytest.raises(InvalidScheduleError, match=pattern):
        sched.validate(G, **kw)
    assert not sched.is_valid(G, **kw)


def test_validate_accepts():
    Schedule(order=(0, 2, 1, 3)).validate(G)
    Schedule(order=(0, 1, 2, 3), start=(0, 1, 1, 4.5)).validate(G)  # no lanes: no overlap check
    Schedule(order=(0, 1, 2, 3), start=(0, 1, 1, 4.5), lane=(0, 0, 1, 0)).validate(G, lanes=2)
    # order need not follow start: lane 1's node is appended first but starts later
    Schedule(order=(0, 2, 1, 3), start=(0, 1, 1, 4.5), lane=(0, 0, 1, 0)).validate(G)
    # stage partitions: the same step is allowed with latency=0
    stages = Schedule(order=(0, 1, 2, 3), start=(0, 0, 0, 0))
    stages.validate(G, latency=0)
    assert stages.is_valid(G, latency=0.0) and not stages.is_valid(G)
    Schedule(order=(0, 1, 2, 3), start=(0, 0, 1, 1)).validate(G, latency=0)
    with pytest.raises(InvalidScheduleError, match=r"edge 1 -> 3"):
        Schedule(order=(0, 1, 2, 3), start=(0, 1, 1, 0)).validate(G, latency=0)
    Schedule(order=()).validate(OpGraph(0))


@given(dag_and_order(max_nodes=10))
def test_every_topological_order_validates(go):
    g, order = go
    s = Schedule(order=order)
    s.validate(g)
    assert s.is_valid(g)
    Schedule(order=order, start=_asap(g, order.tolist())).validate(g)
    Schedule(order=order, start=_asap(g, order.tolist()), lane=list(range(g.num_nodes))).validate(
        g, lanes=max(g.num_nodes, 1))


@given(dags(min_nodes=2, max_nodes=10), st.permutations(range(10)))
def test_validate_names_the_first_violated_edge(g, perm):
    order = [v for v in perm if v < g.num_nodes]
    bad = _first_violated_edge(g, order)
    s = Schedule(order=order)
    if bad is None:
        s.validate(g)
        return
    u, v = bad
    with pytest.raises(InvalidScheduleError, match=rf"^edge {u} -> {v} \("):
        s.validate(g)


@given(dag_and_order(min_nodes=2, max_nodes=10), st.data())
def test_validate_names_a_start_violation(go, data):
    g, order = go
    if not g.num_edges:
        return
    start = _asap(g, order.tolist())
    k = data.draw(st.integers(0, g.num_edges - 1))
    u, v = g.edges[k]
    if g.duration[u] == 0:
        return
    start[v] = start[u] + float(g.duration[u]) / 2  # v now starts before u is done
    s = Schedule(order=order, start=start)
    first = None
    for a, b in g.edges:
        if start[b] < start[a] + float(g.duration[a]) - 1e-9:
            first = (a, b)
            break
    assert first is not None
    with pytest.raises(InvalidScheduleError, match=rf"^edge {first[0]} -> {first[1]} \("):
        s.validate(g)


def test_overlap_needs_positive_durations():
    g = OpGraph(2, [], duration=[0, 1])
    Schedule(order=(0, 1), start=(0, 0), lane=(0, 0)).validate(g)  # zero-length node
    with pytest.raises(InvalidScheduleError, match="overlap on lane 0"):
        Schedule(order=(1, 0), start=(0, 0), lane=(0, 0)).validate(g)


# ---------------------------------------------------------------------------- round trip
@given(dag_and_order(max_nodes=10), st.booleans(), st.booleans(),
       st.randoms(use_true_random=False))
def test_dict_round_trip(go, with_start, with_lane, rnd):
    g, order = go
    n = g.num_nodes
    start = [rnd.random() * 10 for _ in range(n)] if with_start else None
    lane = [rnd.randrange(3) for _ in range(n)] if with_lane else None
    s = Schedule(order=order, start=start, lane=lane, info={"solver": "x", "k": 3})
    d = json.loads(json.dumps(s.to_dict()))
    back = Schedule.from_dict(d)
    assert back == s and back.info == {"solver": "x", "k": 3}
    assert ("start" in d) == with_start and ("lane" in d) == with_lane
    assert Schedule.from_dict(Schedule(order=order).to_dict()).info == {}


@pytest.mark.parametrize("doc", [{}, {"order": 5}, {"order": [0, "x"]}, {"start": [1]}])
def test_from_dict_rejects_malformed(doc):
    with pytest.raises(InvalidScheduleError, match="malformed schedule document"):
        Schedule.from_dict(doc)
