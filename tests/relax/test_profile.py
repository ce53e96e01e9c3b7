"""Measured kernel durations: the VM instrument hook and per-kernel timing over RPC agree."""

from __future__ import annotations

import pytest
from tvm import rpc

from tvm_sched import zoo
from tvm_sched.relax.extract import extract
from tvm_sched.relax.frontend import prepare
from tvm_sched.relax.profile import profile_kernels

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_profiled_durations_feed_extract_and_both_methods_agree():
    mod = prepare(zoo.load("inception").mod)
    roofline = extract(mod)[0]
    local = profile_kernels(mod, repeat=3)
    remote = profile_kernels(mod, session=rpc.LocalSession(), number=3, repeat=3)
    kernels = set(roofline.ops)
    assert kernels <= set(local) and kernels <= set(remote)
    assert all(t > 0 for t in [*local.values(), *remote.values()])
    # the two methods time the same kernels: the slowest kernel is the same order of magnitude
    slowest = max(kernels, key=local.get)
    assert 1 / 3 < local[slowest] / remote[slowest] < 3
    g = extract(mod, kernel_times=local)[0]
    assert [g.duration[v] for v in range(g.num_nodes)] == [local[op] for op in g.ops]
    assert g.edges == roofline.edges and list(g.out_bytes) == list(roofline.out_bytes)
