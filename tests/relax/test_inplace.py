"""In-place calls and packed functions through extraction, fusion and the ``tvm_sched`` pipeline.

The modules here are small TVMScript programs whose numbers are checked against numpy, against
TVM's default pipeline (which does not fuse on CPU) and against TVM's own memory planner.
"""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T

import tvm_sched.relax as tsr
from tvm_sched.cost import planned_memory
from tvm_sched.errors import InvalidScheduleError
from tvm_sched.relax.inplace import inplace_hazards
from tvm_sched.solvers import solve

pytestmark = pytest.mark.integration

F32 = "float32"


# fmt: off
@I.ir_module
class WriteAfterRead:
    """``b`` reads ``a`` before ``c`` adds ``y`` into ``a`` in place. Running ``b`` after ``c``
    allocates less (its 64 KB output is live for a shorter time) and reads the wrong ``a``."""

    @T.prim_func(private=True, s_tir=True)
    def add_inplace(a: T.Buffer((T.int64(16), T.int64(64)), "float32"),
                    b: T.Buffer((T.int64(16), T.int64(64)), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i, j in T.grid(T.int64(16), T.int64(64)):
            with T.sblock("add"):
                vi, vj = T.axis.remap("SS", [i, j])
                a[vi, vj] = a[vi, vj] + b[vi, vj]

    @R.function
    def main(x: R.Tensor((16, 64), "float32"), y: R.Tensor((16, 64), "float32"),
             p: R.Tensor((256, 16), "float32"), w: R.Tensor((64, 64), "float32")):
        cls = WriteAfterRead
        with R.dataflow():
            a = R.exp(x)
            b = R.matmul(p, a)
            c = R.call_tir_inplace(cls.add_inplace, (a, y), 0, R.Tensor((16, 64), "float32"))
            e1 = R.matmul(p, c)
            e2 = R.matmul(e1, w)
            e3 = R.matmul(e2, w)
            out = R.add(e3, b)
            R.output(out)
        return out


@I.ir_module
class FusedReader:
    """``FuseOps`` would fuse the reader ``b = exp(a)`` into ``add(c, b)``, after the in-place
    running sum overwrites ``a`` (a loop nest without blocks, which ``FuseTIR`` cannot fuse)."""

    @T.prim_func(private=True, s_tir=True)
    def cumsum_rows_inplace(a: T.Buffer((T.int64(4), T.int64(8)), "float32")):
        for i in range(T.int64(4)):
            for j in range(T.int64(1), T.int64(8)):
                a[i, j] = a[i, j] + a[i, j - T.int64(1)]

    @R.function
    def main(x: R.Tensor((4, 8), "float32"), y: R.Tensor((4, 8), "float32")):
        cls = FusedReader
        with R.dataflow():
            a = R.add(x, y)
            b = R.exp(a)
            c = R.call_tir_inplace(cls.cumsum_rows_inplace, (a,), 0, R.Tensor((4, 8), "float32"))
            out = R.add(c, b)
            R.output(out)
        return out


@I.ir_module
class PublicReader:
    """The reader before the write calls a public kernel that a later binding calls too: its
    unfused copy must not export the same symbol."""

    @T.prim_func(s_tir=True)
    def double(a: T.Buffer((T.int64(4), T.int64(8)), "float32"),
               o: T.Buffer((T.int64(4), T.int64(8)), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i, j in T.grid(T.int64(4), T.int64(8)):
            with T.sblock("double"):
                vi, vj = T.axis.remap("SS", [i, j])
                o[vi, vj] = a[vi, vj] * T.float32(2)

    @T.prim_func(private=True, s_tir=True)
    def cumsum_rows_inplace(a: T.Buffer((T.int64(4), T.int64(8)), "float32")):
        for i in range(T.int64(4)):
            for j in range(T.int64(1), T.int64(8)):
                a[i, j] = a[i, j] + a[i, j - T.int64(1)]

    @R.function
    def main(x: R.Tensor((4, 8), "float32"), y: R.Tensor((4, 8), "float32")):
        cls = PublicReader
        with R.dataflow():
            a = R.add(x, y)
            b = R.call_tir(cls.double, (a,), R.Tensor((4, 8), "float32"))
            c = R.call_tir_inplace(cls.cumsum_rows_inplace, (a,), 0, R.Tensor((4, 8), "float32"))
            d = R.call_tir(cls.double, (c,), R.Tensor((4, 8), "float32"))
            out = R.add(d, b)
            R.output(out)
        return out


@I.ir_module
class MixedOutputs:
    """An in-place call that also returns a fresh tensor, among branches the scheduler may
    reorder (``FuseTIR`` failed with an ``IndexError`` on its fused group)."""

    @T.prim_func(private=True, s_tir=True)
    def add_and_mul(a: T.Buffer((T.int64(32), T.int64(32)), "float32"),
                    b: T.Buffer((T.int64(32), T.int64(32)), "float32"),
                    prod: T.Buffer((T.int64(32), T.int64(32)), "float32")):
        T.func_attr({"tirx.noalias": True})
        for i, j in T.grid(T.int64(32), T.int64(32)):
            with T.sblock("update"):
                vi, vj = T.axis.remap("SS", [i, j])
                prod[vi, vj] = a[vi, vj] * b[vi, vj]
                a[vi, vj] = a[vi, vj] + b[vi, vj]

    @R.function
    def main(x: R.Tensor((32, 32), "float32"), y: R.Tensor((32, 32), "float32"),
             w: R.Tensor((32, 32), "float32")):
        cls = MixedOutputs
        with R.dataflow():
            a = R.matmul(x, w)
            r = R.matmul(a, w)
            s = R.nn.relu(R.matmul(y, w))
            t = R.call_tir_inplace(cls.add_and_mul, (a, s), [0, -1],
                                   [R.Tensor((32, 32), "float32"), R.Tensor((32, 32), "float32")])
            u = R.matmul(t[0], w)
            v = R.matmul(t[1], w)
            q = R.tanh(R.matmul(x, x))
            out = R.add(R.add(u, v), R.add(r, q))
            R.output(out)
        return out
# fmt: on


def _inputs(mod, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [[int(d) for d in p.ty.shape.values] for p in mod["main"].params]
    return [(0.1 * rng.standard_normal(s)).astype(F32) for s in shapes]


def _run(mod, inputs, pipeline):
    ex = tvm.compile(mod, "llvm", relax_pipeline=pipeline)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    # fresh copies: an in-place kernel may write into an argument
    out = vm["main"](*[tvm.runtime.tensor(x.copy()) for x in inputs])
    return [o.numpy() for o in tsr.flatten_values(out)]


def _reference(name, inputs):
    if name == "WriteAfterRead":
        x, y, p, w = inputs
        a = np.exp(x)
        return (p @ (a + y)) @ w @ w + p @ a
    if name == "FusedReader":
        x, y = inputs
        a = x + y
        return np.cumsum(a, axis=1) + np.exp(a)
    if name == "PublicReader":
        x, y = inputs
        a = x + y
        return 2 * np.cumsum(a, axis=1) + 2 * a
    x, y, w = inputs
    a = x @ w
    s = np.maximum(y @ w, 0)
    return (a + s) @ w + (a * s) @ w + a @ w + np.tanh(x @ x)


@pytest.mark.parametrize("name", ["WriteAfterRead", "FusedReader", "PublicReader",
                                  "MixedOutputs"])
def test_pipeline_runs_inplace_calls_like_the_default_pipeline(name):
    mod = globals()[name]
    inputs = _inputs(mod)
    expected = _reference(name, inputs)
    (default,) = _run(mod, inputs, "default")
    (ours,) = _run(mod, inputs, "tvm_sched")
    np.testing.assert_allclose(default, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours, default, rtol=1e-5, atol=1e-6)
    assert tsr.allocated_bytes(mod, "tvm_sched") <= tsr.allocated_bytes(mod, "default")


def test_fusion_keeps_inplace_calls_and_earlier_readers_unfused():
    fused = tsr.prepare(FusedReader)
    block = fused["main"].body.blocks[0]
    calls = [b.value for b in block.bindings if isinstance(b.value, relax.Call)]
    kernels = [c.args[0].name_hint for c in calls]
    assert kernels[1:3] == ["tir_exp_before_inplace", "cumsum_rows_inplace"]
    assert calls[2].op.name == "relax.call_tir_inplace"
    assert int(fused[calls[2].args[0]].attrs["op_pattern"]) == 8  # opaque: never fused
    assert tsr.is_fused(fused)


def test_inplace_hazards_pair_the_write_with_every_access_of_the_old_tensor():
    block = tsr.prepare(WriteAfterRead)["main"].body.blocks[0]
    names = [b.var.name for b in block.bindings]
    pos = {n: i for i, n in enumerate(names)}
    # b reads a before c overwrites it; e1 reads the new value through c (a data edge too);
    # a's producer and the kernels that never touch a are free
    assert inplace_hazards(block) == [(pos["b"], pos["c"]), (pos["c"], pos["e1"])]


def test_reordering_cannot_move_a_reader_after_the_inplace_write():
    fused = tsr.prepare(WriteAfterRead)
    (graph,) = tsr.extract_op_graphs(fused)
    node = {n: v for v, n in enumerate(graph.names)}
    assert (node["b"], node["c"]) in set(graph.edges)
    # the order that planned fewer bytes when the hazard was not an edge: b after the write
    late_reader = [node[n] for n in ("a", "c", "e1", "e2", "b")] + [
        v for v in range(graph.num_nodes) if graph.names[v] not in ("a", "b", "c", "e1", "e2")]
    with pytest.raises(InvalidScheduleError, match="'b' -> 'c'"):
        tsr.apply_order(fused, graph, late_reader)
    # every solver's order keeps b first, so the pass keeps the numbers
    inputs = _inputs(WriteAfterRead)
    for order in (solve(graph, "peak_memory", solver="random", seed=s, budget=None).best.order
                  for s in range(5)):
        assert list(order).index(node["b"]) < list(order).index(node["c"])
    scheduled = tsr.ScheduleOperators(arena=True)(fused)
    (out,) = _run(scheduled, inputs, tsr.arena_pipeline())
    np.testing.assert_allclose(out, _reference("WriteAfterRead", inputs), rtol=1e-4, atol=1e-5)


def test_replica_equals_tvm_planner_with_inplace_and_fresh_outputs():
    fused = tsr.prepare(MixedOutputs)
    (graph,) = tsr.extract_op_graphs(fused)
    kinds = graph.meta["planner"]["kind"]
    assert kinds.count("inplace") == 1
    inputs = _inputs(MixedOutputs)
    (expected,) = _run(MixedOutputs, inputs, "default")
    seen = set()
    for seed in range(6):
        order = tuple(solve(graph, "peak_memory", solver="random", seed=seed,
                            budget=None).best.order)
        if order in seen:
            continue
        seen.add(order)
        reordered = tsr.apply_order(fused, graph, order)
        assert planned_memory(graph, order) == tsr.planned_bytes(reordered), order
        (out,) = _run(reordered, inputs, tsr.arena_pipeline())
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert len(seen) > 1


@tvm.register_global_func("tvm_sched_tests.double_into", override=True)
def _double_into(x, out):
    out.copyfrom(2 * x.numpy())


@tvm.register_global_func("tvm_sched_tests.negate", override=True)
def _negate(x):
    return tvm.runtime.tensor(-x.numpy())


# fmt: off
@I.ir_module
class Packed:
    @R.function
    def main(x: R.Tensor((8, 8), "float32"), y: R.Tensor((8, 8), "float32")):
        with R.dataflow():
            a = R.add(x, y)
            b = R.call_dps_packed("tvm_sched_tests.double_into", (a,),
                                  out_ty=R.Tensor((8, 8), "float32"))
            c = R.call_pure_packed("tvm_sched_tests.negate", b,
                                   ty_args=R.Tensor((8, 8), "float32"))
            e = R.exp(y)
            f = R.add(R.multiply(a, c), e)
            R.output(f)
        return f
# fmt: on


def test_packed_calls_in_a_dataflow_block_go_through_the_pipeline():
    inputs = _inputs(Packed)
    x, y = inputs
    (default,) = _run(Packed, inputs, "default")
    (ours,) = _run(Packed, inputs, "tvm_sched")
    np.testing.assert_allclose(default, (x + y) * (-2 * (x + y)) + np.exp(y), rtol=1e-5)
    np.testing.assert_allclose(ours, default, rtol=1e-5)
    assert tsr.allocated_bytes(Packed, "tvm_sched") <= tsr.allocated_bytes(Packed, "default")
    fused = tsr.prepare(Packed)
    (graph,) = tsr.extract_op_graphs(fused)
    assert "relax.call_dps_packed" in graph.ops and "relax.call_pure_packed" in graph.ops
    # TVM's planner plans the tensor handed to the packed function (it trusts it not to keep
    # its arguments): the replica must count it too
    order = list(range(graph.num_nodes))
    assert planned_memory(graph, order) == tsr.planned_bytes(fused)
