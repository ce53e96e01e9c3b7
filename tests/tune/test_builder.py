"""The kernels-once builder against a full tvm.compile: same bytecode order, same outputs."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tvm
from tvm import relax

from tvm_sched.graph import priority_orders_batch
from tvm_sched.testing.calls import calls_in_order
from tvm_sched.tune import Builder

pytestmark = [pytest.mark.integration]


def kernel_calls(exe) -> list[str]:
    text = exe.as_text()
    main = text[text.index("@main:"):].split("\n@", 1)[0]
    return [m.group(1) for m in re.finditer(r"call\s+(\S+)\s+in:", main)
            if not m.group(1).startswith("vm.")]


def run(exe, args):
    vm = relax.VirtualMachine(exe, tvm.cpu())
    vm.set_input("main", *[tvm.runtime.tensor(a) for a in args])
    vm.invoke_stateful("main")
    out = vm.get_outputs("main")
    return [out.numpy()] if hasattr(out, "numpy") else [o.numpy() for o in out]



def test_fast_build_matches_full_compile(model, builder, reference):
    args, ref = reference
    g = model.graphs[0]
    orders = priority_orders_batch(g, np.random.default_rng(3).random((3, g.num_nodes)))
    for order in orders:
        built = builder.build([tuple(order)])
        assert built.error is None and built.needs_kernels
        # bytecode only: the kernels live in the shared library
        assert calls_in_order(kernel_calls(built.executable), [g.ops[v] for v in order])
        full = tvm.compile(builder.module([tuple(order)]), "llvm")
        # TVM's default pipeline keeps the concatenates the arena pipeline writes in place
        assert calls_in_order(kernel_calls(built.executable), kernel_calls(full))
        built.executable.mod.import_module(builder.kernels)
        for a, b, r in zip(run(built.executable, args), run(full, args), ref, strict=True):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, r)  # same kernels, same inputs: bit-identical


def test_invalid_order_is_a_recorded_error(model, builder):
    n = model.graphs[0].num_nodes
    built = builder.build([tuple(reversed(range(n)))])
    assert built.executable is None and "InvalidScheduleError" in built.error


def test_slow_path_is_a_full_compile(model):
    b = Builder(model, tvm.target.Target("llvm"), fast=False)
    built = b.build([tuple(range(model.graphs[0].num_nodes))])
    assert built.error is None and not built.needs_kernels and b.fallbacks == 1
    assert b.kernels is None
