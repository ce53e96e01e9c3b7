"""Extraction, reordering and the ScheduleOperators pass on real Relax modules (TVM)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
import tvm
from tvm import relax
from tvm_ffi import structural_equal

from tvm_sched.errors import InvalidScheduleError
from tvm_sched.relax.extract import extract
from tvm_sched.relax.memory import planned_bytes
from tvm_sched.relax.passes import ScheduleOperators, is_fused, pipeline
from tvm_sched.relax.reorder import apply_order
from tvm_sched.solvers import solve, solver_names

pytestmark = pytest.mark.integration


class Branchy(torch.nn.Module):
    """Three branches of different widths off one stem, joined by a concat and a sum."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 1)
        self.a = torch.nn.Sequential(torch.nn.Conv2d(8, 32, 3, padding=1), torch.nn.ReLU(),
                                     torch.nn.Conv2d(32, 8, 1))
        self.b = torch.nn.Sequential(torch.nn.Conv2d(8, 4, 1), torch.nn.ReLU(),
                                     torch.nn.Conv2d(4, 8, 3, padding=1))
        self.c = torch.nn.Conv2d(8, 16, 1)
        self.head = torch.nn.Conv2d(24, 4, 1)

    def forward(self, x):
        s = torch.relu(self.stem(x))
        a, b, c = self.a(s), self.b(s), self.c(s)
        return self.head(torch.cat([a + b, c], 1)) + 1.0


@pytest.fixture(scope="module")
def imported():
    from tvm_sched.relax.frontend import from_torch, prepare

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Branchy()
    imp = from_torch(model, (torch.randn(1, 3, 8, 8),), name="branchy")
    return imp, prepare(imp.mod)


def kernel_calls(ex) -> list[str]:
    """Names of the kernels @main calls, in bytecode order (VM builtins left out)."""
    text = ex.as_text()
    main = text[text.index("@main:"):]
    main = main.split("\n@", 1)[0]
    return [m.group(1) for m in re.finditer(r"call\s+(\S+)\s+in:", main)
            if not m.group(1).startswith("vm.")]


def test_extract_reads_nodes_edges_and_sizes(imported):
    _, mod = imported
    graphs = extract(mod)
    assert len(graphs) == 1
    g = graphs[0]
    block = mod["main"].body.blocks[0]
    calls = [b for b in block.bindings if isinstance(b.value, relax.Call)]
    assert g.num_nodes == len(calls) and g.num_nodes >= 6
    for v, b in enumerate(calls):
        shape = [int(d) for d in b.var.ty.shape.values]
        assert g.out_bytes[v] == int(np.prod(shape)) * 4
        assert g.names[v] == b.var.name
    assert g.is_output.sum() == 1 and g.is_output[-1]
    assert g.program_order_is_topological
    assert (g.flops[[i for i, op in enumerate(g.ops) if "conv2d" in op]] > 0).all()
    assert g.num_edges >= g.num_nodes - 1


@pytest.mark.parametrize("solver", [s for s in solver_names() if s not in ("gaus", "gumbel")])
def test_every_solver_order_compiles_runs_equal_and_reaches_bytecode(imported, solver):
    from tvm_sched.relax.frontend import run_module

    imp, mod = imported
    g = extract(mod)[0]
    reference = run_module(mod, imp)
    res = solve(g, "peak_memory", solver=solver, budget=2.0, seed=3)
    new = apply_order(mod, g, res.best)
    assert extract(new)[0].names == tuple(g.names[v] for v in res.best.order)
    out = run_module(new, imp)
    for a, b in zip(out, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(reference[0], imp.reference[0], rtol=1e-4, atol=1e-4)
    ex = tvm.compile(new, "llvm")
    assert kernel_calls(ex) == [g.ops[v] for v in res.best.order]


def test_random_orders_change_planned_bytes_and_bytecode(imported):
    _, mod = imported
    g = extract(mod)[0]
    res = solve(g, "peak_memory", solver="random", samples=50, top_k=50, seed=0)
    planned = {planned_bytes(apply_order(mod, g, s)) for s in res}
    assert len(planned) > 1  # the planner is order-dependent


def test_non_topological_order_names_the_bindings(imported):
    _, mod = imported
    g = extract(mod)[0]
    order = list(reversed(range(g.num_nodes)))
    with pytest.raises(InvalidScheduleError, match=r"edge \d+ -> \d+ \('\w+' -> '\w+'\)"):
        apply_order(mod, g, order)


def test_reapplying_the_present_order_is_the_identity(imported):
    _, mod = imported
    g = extract(mod)[0]
    assert apply_order(mod, g, range(g.num_nodes)) is mod
    best = solve(g, "peak_memory", solver="topo-bfs").best
    once = apply_order(mod, g, best)
    g2 = extract(once)[0]
    twice = apply_order(once, g2, range(g2.num_nodes))
    assert structural_equal(once, twice)


def test_pass_never_increases_planned_bytes_and_runs_fusion(imported):
    imp, fused = imported
    before = planned_bytes(fused)
    p = ScheduleOperators(solver=["lpmf", "random"], budget=1.0)
    assert not is_fused(relax.transform.LiftTransformParams()(imp.mod))
    out = p(relax.transform.LiftTransformParams()(imp.mod))  # unfused in, fused out
    assert is_fused(out)
    assert planned_bytes(out) <= before
    assert p.report and p.report[0]["planned_after"] <= p.report[0]["planned_before"]


def test_pass_inside_sequential_and_registered_pipeline(imported):
    from tvm_sched.relax.frontend import run_module

    imp, mod = imported
    seq = tvm.transform.Sequential([ScheduleOperators(solver="lpmf")])
    assert is_fused(seq(mod))
    ref = run_module(mod, imp)
    for pl in (pipeline(solver="lpmf"), "tvm_sched"):
        out = run_module(mod, imp, relax_pipeline=pl)
        np.testing.assert_allclose(out[0], ref[0], rtol=1e-5, atol=1e-5)


def _builder_module(symbolic: bool, dataflow: bool):
    bb = relax.BlockBuilder()
    n = tvm.tirx.Var("n", "int64") if symbolic else 4
    x = relax.Var("x", relax.TensorType([n, 4], "float32"))
    with bb.function("main", [x]):
        if dataflow:
            with bb.dataflow():
                a = bb.emit(relax.op.add(x, x))
                b = bb.emit(relax.op.multiply(x, x))
                c = bb.emit_output(relax.op.add(a, b))
        else:
            c = bb.emit(relax.op.add(x, x))
        bb.emit_func_output(c)
    return bb.get()


def test_symbolic_block_is_skipped_with_a_warning_naming_it():
    mod = relax.transform.LegalizeOps()(_builder_module(symbolic=True, dataflow=True))
    with pytest.warns(UserWarning, match=r"main block 0: binding \d+ \(\w+\) has a symbolic shape"):
        assert extract(mod) == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ScheduleOperators()(mod)
    assert structural_equal(out, ScheduleOperators(select="proxy")(mod))


def test_module_without_dataflow_blocks_is_unchanged():
    mod = relax.transform.LegalizeOps()(_builder_module(symbolic=False, dataflow=False))
    assert extract(mod) == []
    assert structural_equal(ScheduleOperators()(mod), mod)
