"""The planner replica's rules on hand-built graphs (no TVM)."""

from __future__ import annotations

import numpy as np
import pytest

from tvm_sched.cost import make_objective, planned_memory, planned_memory_batch
from tvm_sched.cost.planned_memory import planned_memory_lower_bound
from tvm_sched.datasets.generators import layered
from tvm_sched.errors import InvalidGraphError, InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule


def chain(sizes, output_last=True) -> OpGraph:
    n = len(sizes)
    return OpGraph(n, [(i, i + 1) for i in range(n - 1)], out_bytes=sizes,
                   is_output=[output_last and i == n - 1 for i in range(n)])


def with_planner(n, edges, out, reads, kind=None, dtypes=("float32", "int32")) -> OpGraph:
    """A graph carrying the extraction metadata the replica reads."""
    meta = {"planner": {"dtypes": list(dtypes), "kind": kind or ["alloc"] * n,
                        "out": out, "reads": reads}}
    return OpGraph(n, edges, meta=meta)


def test_chain_reuses_every_other_token_and_outputs_are_not_planned():
    # A node's output is allocated before its inputs are freed: two tokens alternate.
    assert planned_memory(chain([100] * 5), range(5)) == 200
    assert planned_memory(chain([100] * 2), range(2)) == 100
    assert planned_memory(chain([100]), [0]) == 0


@pytest.mark.parametrize("free, size, expected", [
    (1600, 100, 1700),  # a free token up to 16 x size serves (inclusive)
    (1601, 100, 1801),  # larger: a new token
    (100, 100, 200),  # equal size serves
    (6, 100, 200),  # smaller down to size // 16 (integer division) grows to size
    (5, 100, 205),  # smaller still: a new token
])
def test_reuse_window(free, size, expected):
    # 0 (free) -> 1 (size) -> 2 (size) -> 3 (output): node 0's token is free when 2 allocates.
    g = chain([free, size, size, 1])
    assert planned_memory(g, range(4)) == expected


def test_smallest_sufficient_free_token_is_taken():
    # 0, 1, 2 (300, 200, 500) -> 3 -> 4 (250) -> 5 (450) -> 6 (output).
    # 4 takes 300 (not 500), so 5 finds 500 free: no growth.
    g = OpGraph(7, [(0, 3), (1, 3), (2, 3), (3, 4), (4, 5), (5, 6)],
                out_bytes=[300, 200, 500, 10, 250, 450, 1], is_output=[0, 0, 0, 0, 0, 0, 1])
    assert planned_memory(g, range(7)) == 300 + 200 + 500 + 10


def test_largest_smaller_free_token_grows():
    # 0, 1 (200, 300) -> 2 -> 3 (400) -> 4 (output): 3 grows the 300-byte token, not the 200.
    g = OpGraph(5, [(0, 2), (1, 2), (2, 3), (3, 4)], out_bytes=[200, 300, 10, 400, 1],
                is_output=[0, 0, 0, 0, 1])
    assert planned_memory(g, range(5)) == 200 + 400 + 10


def test_dtype_pools_do_not_share():
    out_same = [[[100, 0, True]], [[100, 0, True]], [[100, 0, True]], [[4, 0, False]]]
    out_mixed = [[[100, 0, True]], [[100, 0, True]], [[100, 1, True]], [[4, 0, False]]]
    reads = [[], [[0, 0]], [[1, 0]], [[2, 0]]]
    edges = [(0, 1), (1, 2), (2, 3)]
    assert planned_memory(with_planner(4, edges, out_same, reads), range(4)) == 200
    assert planned_memory(with_planner(4, edges, out_mixed, reads), range(4)) == 300


def test_tuple_fields_are_separate_tokens_and_unplanned_fields_cost_nothing():
    # Node 0 has two fields; 1 reads field 0 only, 2 reads field 1 (returned: unplanned).
    out = [[[400, 0, True], [80, 0, False]], [[400, 0, True]], [[8, 0, True]], [[4, 0, False]]]
    reads = [[], [[0, 0]], [[0, 1]], [[1, 0], [2, 0]]]
    g = with_planner(4, [(0, 1), (0, 2), (1, 3), (2, 3)], out, reads)
    # Order 0, 1, 2: field 0 is freed after 1, so 2 (8 bytes) cannot use it (400 > 8 * 16).
    assert planned_memory(g, [0, 1, 2, 3]) == 400 + 400 + 8
    assert planned_memory(g, [0, 2, 1, 3]) == 400 + 8 + 400


def test_views_share_their_input_token():
    # 1 is a view of 0 (reads recorded through it): 0 lives until 2 reads it through the view.
    out = [[[100, 0, True]], [], [[100, 0, True]], [[100, 0, True]], [[4, 0, False]]]
    reads = [[], [], [[0, 0]], [[2, 0]], [[3, 0]]]
    kind = ["alloc", "view", "alloc", "alloc", "alloc"]
    g = with_planner(5, [(0, 1), (1, 2), (2, 3), (3, 4)], out, reads, kind)
    assert planned_memory(g, range(5)) == 200


def test_order_changes_the_planned_bytes_and_batch_matches_singles():
    # Two independent chains of different sizes joined at the end.
    g = OpGraph(5, [(0, 1), (2, 3), (1, 4), (3, 4)], out_bytes=[1000, 10, 30, 900, 1],
                is_output=[0, 0, 0, 0, 1])
    orders = np.array([[0, 1, 2, 3, 4], [0, 2, 1, 3, 4], [2, 0, 3, 1, 4]])
    batch = planned_memory_batch(g, orders)
    assert batch.tolist() == [planned_memory(g, o) for o in orders]
    assert len(set(batch.tolist())) > 1


def test_lower_bound_holds_on_random_graphs():
    for seed in range(5):
        g = layered(40, seed=seed)
        rng = np.random.default_rng(seed)
        orders = []
        for _ in range(20):
            pr = rng.random(g.num_nodes)
            indeg = g.in_degree.copy()
            ready, o = [v for v in range(g.num_nodes) if indeg[v] == 0], []
            while ready:
                v = min(ready, key=lambda x: pr[x])
                ready.remove(v)
                o.append(v)
                for s in g.succs(v):
                    indeg[s] -= 1
                    if indeg[s] == 0:
                        ready.append(s)
            orders.append(o)
        vals = planned_memory_batch(g, np.array(orders))
        assert (vals >= planned_memory_lower_bound(g)).all()


def test_objective_is_registered_and_consistent():
    g = OpGraph(5, [(0, 1), (2, 3), (1, 4), (3, 4)], out_bytes=[1000, 10, 30, 900, 1],
                is_output=[0, 0, 0, 0, 1])
    obj = make_objective("planned_memory")
    assert obj.name == "planned_memory" and obj.lanes == 1 and obj.order_based
    order = (2, 0, 3, 1, 4)
    v = obj.evaluate(g, Schedule(order=order))
    assert v == planned_memory(g, order)
    assert obj.evaluate_orders(g, np.array([order])).tolist() == [v]
    assert obj.lower_bound(g) <= v
    with pytest.raises(ValueError, match="one lane"):
        make_objective("planned_memory", lanes=2)
    with pytest.raises(ValueError, match="does not take"):
        make_objective("planned_memory", stages=3)


def test_bad_orders_and_metadata_raise():
    g = chain([100] * 3)
    with pytest.raises(InvalidScheduleError, match="shape"):
        planned_memory_batch(g, np.zeros((2, 4), dtype=int))
    with pytest.raises(InvalidScheduleError, match="outside"):
        planned_memory(g, [0, 1, 3])
    bad = with_planner(2, [(0, 1)], [[[4, 0, True]]], [[], []])
    with pytest.raises(InvalidGraphError, match="planner"):
        planned_memory(bad, [0, 1])


def test_empty_batch_and_empty_graph():
    obj = make_objective("planned_memory")
    assert obj.evaluate_orders(chain([4] * 3), np.zeros((0, 3), dtype=np.int64)).shape == (0,)
    e = OpGraph(0)
    assert obj.evaluate_orders(e, np.zeros((2, 0), dtype=np.int64)).tolist() == [0.0, 0.0]
    assert obj.evaluate(e, Schedule(order=())) == 0.0
    assert obj.lower_bound(e) == 0.0
