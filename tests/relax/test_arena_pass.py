"""PlanArena and the tvm_sched pipeline: TVM really allocates the arena, outputs unchanged."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tvm
from tvm import relax

import tvm_sched.relax as tsr
from tvm_sched import zoo
from tvm_sched.errors import ExtractionError, InvalidScheduleError
from tvm_sched.memory import plan_arena
from tvm_sched.relax.arena import planned_storage

pytestmark = pytest.mark.integration


def _run(mod, imported, pipeline):
    return tsr.run_module(mod, imported, relax_pipeline=pipeline)


@pytest.fixture(scope="module", params=["inception", "nasnet", "transformer"])
def model(request):
    imported = zoo.load(request.param)
    return imported, tsr.prepare(imported.mod)


def test_pipeline_allocates_the_planned_arena_with_equal_outputs(model):
    imported, mod = model
    scheduled = tsr.ScheduleOperators(arena=True)(mod)
    arena = tsr.PlanArena()
    with tvm.target.Target("llvm"):
        lowered = tsr.arena_pipeline(arena)(scheduled)
    (main,) = [r for r in arena.report if r.func == "main"]
    assert main.rewritten and main.arena_bytes < main.tvm_bytes
    # the compiled module allocates exactly the plan of the extracted graph in the same order
    graph = tsr.extract_op_graphs(scheduled)[0]
    plan = plan_arena(graph, np.arange(graph.num_nodes), method="auto", budget=1.0)
    assert main.lower_bound == plan.lower_bound
    assert main.arena_bytes == plan.arena_bytes
    assert plan.arena_bytes in planned_storage(lowered)
    assert main.arena_bytes <= 1.05 * main.lower_bound
    # never more than TVM's default pipeline on the module as given
    default = tsr.allocated_bytes(mod, "default")
    ours = tsr.allocated_bytes(mod, "tvm_sched")
    assert ours < default
    reference = _run(mod, imported, None)
    for a, b in zip(_run(mod, imported, "tvm_sched"), reference, strict=True):
        np.testing.assert_array_equal(a, b)


def test_arena_without_reordering_keeps_numerics_and_each_order_is_safe():
    imported = zoo.load("nasnet")
    mod = tsr.prepare(imported.mod)
    graph = tsr.extract_op_graphs(mod)[0]
    reference = _run(mod, imported, None)
    rng = np.random.default_rng(0)
    from tvm_sched.solvers import solve

    for seed in range(2):  # random topological orders: the arena is re-planned for each
        order = solve(graph, "peak_memory", solver="random", seed=int(rng.integers(1 << 30)),
                      budget=None).best.order
        reordered = tsr.apply_order(mod, graph, order)
        out = _run(reordered, imported, tsr.arena_pipeline(tsr.PlanArena(method="greedy")))
        for a, b in zip(out, reference, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"order {seed}")


def _symbolic_module():
    bb = relax.BlockBuilder()
    n = tvm.tirx.Var("n", "int64")
    x = relax.Var("x", relax.TensorType([n, 4], "float32"))
    y = relax.Var("y", relax.TensorType([4, 4], "float32"))
    with bb.function("main", [x, y]):
        with bb.dataflow():
            a = bb.emit(relax.op.add(x, x))
            b = bb.emit(relax.op.multiply(a, a))
            c = bb.emit(relax.op.add(y, y))
            d = bb.emit(relax.op.multiply(c, c))
            e = bb.emit(relax.op.add(d, d))
            out = bb.emit_output(relax.Tuple([b, e]))
        bb.emit_func_output(out)
    mod = bb.get()
    return mod


def test_symbolic_shapes_keep_tvms_plan_with_a_warning_naming_the_binding():
    mod = _symbolic_module()
    mod["main"] = mod["main"].with_attr("tir_var_upper_bound", {"n": 16})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tvm.target.Target("llvm"):
            tsr.arena_pipeline()(relax.transform.LegalizeOps()(mod))
    msgs = [str(w.message) for w in caught if "PlanArena keeps TVM's plan" in str(w.message)]
    assert msgs and any("not a constant shape" in m for m in msgs), msgs
    # numerics through the full pipeline still equal TVM's default
    x = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    y = np.random.default_rng(1).standard_normal((4, 4)).astype("float32")
    outs = []
    for pipe in ("default", "tvm_sched"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ex = tvm.compile(mod, "llvm", relax_pipeline=pipe)
        vm = relax.VirtualMachine(ex, tvm.cpu())
        res = vm["main"](tvm.runtime.tensor(x), tvm.runtime.tensor(y))
        outs.append([r.numpy() for r in res])
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_pass_on_a_fused_module_with_reshape_views_keeps_its_bindings():
    mod = tsr.prepare(zoo.load("transformer").mod)
    viewed = relax.transform.RewriteDataflowReshape()(mod)
    reshape = tvm.ir.Op.get("relax.reshape")
    views = [b for b in viewed["main"].body.blocks[0].bindings
             if isinstance(b.value, relax.Call) and b.value.op.same_as(reshape)]
    assert views, "the transformer should have reshape views after RewriteDataflowReshape"
    assert tsr.is_fused(viewed)
    out = tsr.ScheduleOperators()(viewed)
    before = len(viewed["main"].body.blocks[0].bindings)
    assert len(out["main"].body.blocks[0].bindings) == before
    calls = [b for b in out["main"].body.blocks[0].bindings
             if isinstance(b.value, relax.Call) and b.value.op.same_as(reshape)]
    assert len(calls) == len(views)


def test_pass_errors_reach_the_caller_with_their_own_type():
    mod = tsr.prepare(zoo.load("inception").mod)
    graph = tsr.extract_op_graphs(mod)[0]
    with pytest.raises(ExtractionError, match="no function 'nope'"):
        tsr.ScheduleOperators(func="nope")(mod)
    backwards = list(range(graph.num_nodes))[::-1]
    with pytest.raises(InvalidScheduleError, match="is violated"):
        tsr.ReorderBindings([(graph, backwards)])(mod)
    with pytest.raises(ValueError, match="multiple of 64"):
        tsr.PlanArena(align=32)
