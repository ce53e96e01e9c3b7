"""Shared fixtures of the lane runtime tests: zoo models compiled once per session."""

from __future__ import annotations

import random

import numpy as np
import pytest


@pytest.fixture(scope="session")
def compiled():
    """name -> (LaneKernels, inputs, Relax VM outputs), built on first use."""
    from tvm_sched.runtime.builder import LaneKernels
    from tvm_sched.tune import load_model

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            model = load_model(model=name)
            kernels = LaneKernels(model.mod, "llvm", params=model.params)
            cache[name] = (kernels, model.inputs, kernels.reference(*model.inputs))
        return cache[name]

    return get


def _random_schedule(graph, lanes: int, rng: np.random.Generator):
    """A random valid lane schedule: a random topological order, random lanes."""
    from tvm_sched.schedule import Schedule
    from tvm_sched.testing.strategies import random_order

    order = random_order(graph, random.Random(int(rng.integers(2**31))))
    lane = tuple(int(x) for x in rng.integers(0, lanes, graph.num_nodes))
    return Schedule(order=tuple(order.tolist()), lane=lane)


@pytest.fixture(scope="session")
def random_schedule():
    """``f(graph, lanes, rng)``: a random valid lane schedule."""
    return _random_schedule
