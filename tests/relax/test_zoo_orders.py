"""Every solver's order on three irregular zoo models: compiles, same outputs, order in bytecode."""

from __future__ import annotations

import numpy as np
import pytest
import tvm

from tvm_sched import zoo
from tvm_sched.cost import PeakMemory, planned_memory
from tvm_sched.relax.arena import allocated_bytes
from tvm_sched.relax.memory import planned_bytes
from tvm_sched.relax.reorder import apply
from tvm_sched.solvers import get_solver, solver_names
from tvm_sched.testing.calls import calls_in_order

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = ["inception", "nasnet", "randwire"]
OPTIONS = {"cpsat": {"time_limit_s": 1.0}, "random": {"samples": 200},
           "random-list": {"samples": 200}}


def kernel_calls(ex) -> list[str]:
    import re

    text = ex.as_text()
    main = text[text.index("@main:"):].split("\n@", 1)[0]
    return [m.group(1) for m in re.finditer(r"call\s+(\S+)\s+in:", main)
            if not m.group(1).startswith("vm.")]



@pytest.mark.parametrize("model", MODELS)
def test_every_solver_order_is_numerically_equal(model):
    # kernels built once per model (the tuner's builder; tests/tune checks it against a full
    # tvm.compile), then per solver only the Relax VM: bytecode order, planned bytes, outputs
    from tvm_sched.tune import Builder, load_model
    from tvm_sched.tune.tuner import _reference

    tm = load_model(model=model)
    graph = tm.graphs[0]
    # the reference: TVM's default pipeline in the module's own order; the candidates: the
    # tvm_sched lowering (one arena, re-planned for each order)
    args, reference = _reference(Builder(tm, tvm.target.Target("llvm"), arena=False), tm)
    builder = Builder(tm, tvm.target.Target("llvm"), arena=True)
    imp = zoo.load(model)
    np.testing.assert_allclose(reference[0], imp.reference[0], rtol=1e-4, atol=1e-5)
    tried = 0
    for name in solver_names():
        solver = get_solver(name, **OPTIONS.get(name, {}))
        if not solver.supports(PeakMemory()):
            continue
        sched = solver.solve(graph, PeakMemory(), budget=1.0, seed=0).best
        built = builder.build([sched.order])
        assert built.error is None and built.needs_kernels, (name, built.error)
        ex = built.executable
        assert calls_in_order(kernel_calls(ex), [graph.ops[v] for v in sched.order]), name
        new = apply(tm.mod, [(graph, sched)])
        assert planned_memory(graph, np.array(sched.order)) == planned_bytes(new), name
        assert built.allocated_bytes <= allocated_bytes(new, "default"), name
        ex.mod.import_module(builder.kernels)
        vm = tvm.relax.VirtualMachine(ex, tvm.cpu())
        vm.set_input("main", *[tvm.runtime.tensor(a) for a in args])
        vm.invoke_stateful("main")
        out = vm.get_outputs("main")
        out = [out.numpy()] if hasattr(out, "numpy") else [o.numpy() for o in out]
        for a, b in zip(out, reference, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{model}/{name}")
        tried += 1
    assert tried >= 7
