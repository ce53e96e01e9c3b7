"""Shared fixtures of the lane runtime tests: zoo models compiled once per session."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def compiled():
    """name -> (LaneKernels, inputs, Relax VM outputs), built on first use."""
    pytest.importorskip("tvm")
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

    n = graph.num_nodes
    indeg = np.array([len(graph.preds(v)) for v in range(n)])
    ready = [v for v in range(n) if indeg[v] == 0]
    order = []
    while ready:
        v = ready.pop(int(rng.integers(len(ready))))
        order.append(v)
        for w in graph.succs(v):
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    return Schedule(order=tuple(order), lane=tuple(int(x) for x in rng.integers(0, lanes, n)))


@pytest.fixture(scope="session")
def random_schedule():
    """``f(graph, lanes, rng)``: a random valid lane schedule."""
    return _random_schedule
