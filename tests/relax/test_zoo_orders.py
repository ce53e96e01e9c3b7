"""Every solver's order on three irregular zoo models: compiles, same outputs, order in bytecode."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tvm")
import tvm  # noqa: E402

from tvm_sched import zoo  # noqa: E402
from tvm_sched.cost import PeakMemory, planned_memory  # noqa: E402
from tvm_sched.relax.extract import extract  # noqa: E402
from tvm_sched.relax.frontend import prepare, run_module  # noqa: E402
from tvm_sched.relax.memory import planned_bytes  # noqa: E402
from tvm_sched.relax.reorder import apply  # noqa: E402
from tvm_sched.solvers import get_solver, solver_names  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = ["inception", "nasnet", "randwire"]
OPTIONS = {"cpsat": {"time_limit_s": 3.0}, "random": {"samples": 200},
           "random-list": {"samples": 200}}


def kernel_calls(ex) -> list[str]:
    import re

    text = ex.as_text()
    main = text[text.index("@main:"):].split("\n@", 1)[0]
    return [m.group(1) for m in re.finditer(r"call\s+(\S+)\s+in:", main)
            if not m.group(1).startswith("vm.")]


@pytest.mark.parametrize("model", MODELS)
def test_every_solver_order_is_numerically_equal(model):
    imp = zoo.load(model)
    mod = prepare(imp.mod)
    graph = extract(mod)[0]
    reference = run_module(mod, imp)
    tried = 0
    for name in solver_names():
        solver = get_solver(name, **OPTIONS.get(name, {}))
        if not solver.supports(PeakMemory()):
            continue
        sched = solver.solve(graph, PeakMemory(), budget=3.0, seed=0).best
        new = apply(mod, [(graph, sched)])
        ex = tvm.compile(new, "llvm")
        assert kernel_calls(ex) == [graph.ops[v] for v in sched.order], name
        assert planned_memory(graph, np.array(sched.order)) == planned_bytes(new), name
        vm = tvm.relax.VirtualMachine(ex, tvm.cpu())
        del vm  # compiled and loadable; numerics through the shared runner below
        out = run_module(new, imp)
        for a, b in zip(out, reference, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"{model}/{name}")
        tried += 1
    assert tried >= 7
