"""Shared fixtures of the tuner tests: one zoo model, loaded and built once per session.

TVM is a hard dependency: a broken TVM install fails these tests instead of skipping them.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def model():
    from tvm_sched.tune import load_model

    return load_model(model="inception")


@pytest.fixture(scope="session")
def builder(model):
    import tvm

    from tvm_sched.tune import Builder

    b = Builder(model, tvm.target.Target("llvm"))
    b.build_kernels()
    return b


@pytest.fixture(scope="session")
def reference(builder, model):
    """(args, outputs) of main in TVM's order, computed in-process."""
    from tvm_sched.tune.tuner import _reference

    return _reference(builder, model)
