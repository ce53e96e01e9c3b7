"""The one typed reader of ``graph.meta["planner"]``."""

from __future__ import annotations

import pytest

from tvm_sched.cost import planned_memory
from tvm_sched.errors import InvalidGraphError
from tvm_sched.graph import OpGraph
from tvm_sched.memory.arena import arena_tensors
from tvm_sched.memory.planner import OutputTensor, PlannerMeta


def _graph(out, reads, **extra):
    n = len(out)
    edges = sorted({(u, v) for v in range(n) for u, _ in reads[v] if 0 <= u < n and u != v})
    meta = {"dtypes": ["float32", "int64"], "kind": ["alloc"] * n, "out": out, "reads": reads,
            **extra}
    return OpGraph(n, edges, meta={"planner": meta})


def test_reads_the_extraction_metadata_into_typed_data():
    g = _graph([[[256, 0, True]], [[64, 1, True], [32, 0, False]], [[16, 0, True]]],
               [[], [[0, 0]], [[1, 0], [0, 0], [1, 1]]])
    meta = PlannerMeta.from_graph(g)
    assert meta.dtypes == ("float32", "int64") and meta.kind == ("alloc",) * 3
    assert meta.out[1] == (OutputTensor(64, 1, True), OutputTensor(32, 0, False))
    assert meta.reads[2] == ((1, 0), (0, 0), (1, 1))
    assert [(v, k) for v, k, _ in meta.planned()] == [(0, 0), (1, 0), (2, 0)]
    assert meta.num_dtypes == 2 and meta.merged == ()
    assert PlannerMeta.from_graph(g) is meta  # read once per graph


def test_default_is_one_tensor_per_node_read_by_its_successors():
    g = OpGraph(3, [(0, 1), (0, 2), (1, 2)], out_bytes=[100, 0, 8], is_output=[0, 0, 1])
    meta = PlannerMeta.from_graph(g)
    assert meta.out == ((OutputTensor(100, 0, True),), (OutputTensor(0, 0, False),),
                        (OutputTensor(8, 0, False),))
    assert meta.reads == ((), ((0, 0),), ((0, 0), (1, 0)))
    assert meta.num_dtypes == 1


def test_the_replica_and_the_arena_read_the_same_tensors():
    g = _graph([[[256, 0, True]], [[64, 1, True], [32, 0, False]], [[16, 0, True]],
                [[8, 0, False]]],
               [[], [[0, 0]], [[1, 0], [0, 0]], [[2, 0], [1, 1]]])
    planned = {(v, k): t.nbytes for v, k, t in PlannerMeta.from_graph(g).planned()}
    assert {(t.node, t.field): t.size for t in arena_tensors(g)} == planned
    # one order with every tensor live at once somewhere: the replica reserves at least them all
    assert planned_memory(g, range(4)) >= max(planned.values())


@pytest.mark.parametrize(("out", "reads", "pattern"), [
    ([[[4, 0, True]]], [[], []], "describes 1 nodes, the graph has 2"),
    ([[[-4, 0, True]], [[4, 0, True]]], [[], [[0, 0]]], "node 0 output 0 has -4 bytes"),
    ([[[4, 0, True]], [[4, 0, True]]], [[], [[5, 0]]], "node 1 reads a node outside 0..1"),
    ([[[4, 0]], [[4, 0, True]]], [[], [[0, 0]]], "malformed meta"),
    ([[["x", 0, True]], [[4, 0, True]]], [[], [[0, 0]]], "malformed meta"),
])
def test_malformed_metadata_raises(out, reads, pattern):
    g = OpGraph(2, [(0, 1)], meta={"planner": {"out": out, "reads": reads}})
    with pytest.raises(InvalidGraphError, match=pattern):
        PlannerMeta.from_graph(g)


def test_merged_tensors_are_read_as_integers():
    g = _graph([[[64, 0, True]], [[64, 0, True]], [[128, 0, True]], [[4, 0, False]]],
               [[], [], [[0, 0], [1, 0]], [[2, 0]]], merged=[[2, [[0, 0, 0], [1, 0, 64]]]])
    assert PlannerMeta.from_graph(g).merged == ((2, ((0, 0, 0), (1, 0, 64))),)
