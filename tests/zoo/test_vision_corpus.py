"""The torchvision corpus (models the project did not write) through the pass and the lane
runtime: outputs equal to TVM's default pipeline and to torch, never more bytes; lane plans on
two lanes bit-identical to the Relax VM on the same kernels.

Three small, quick models run in the default tier; the whole corpus in the slow tier.
"""

from __future__ import annotations

import numpy as np
import pytest

import tvm_sched.relax as tsr
from tvm_sched import zoo
from tvm_sched.zoo.vision import CORPUS

pytestmark = pytest.mark.integration

QUICK = ("squeezenet1_1", "shufflenet_v2_x1_0", "mobilenet_v3_small")


def test_the_corpus_is_known_to_the_zoo_and_the_tuner():
    assert set(QUICK) <= set(CORPUS) and len(CORPUS) == 13
    assert zoo.corpus() == list(CORPUS)
    assert not set(CORPUS) & set(zoo.names())  # the zoo's own models stay apart
    model, (x,) = zoo.torch_model("googlenet")
    assert tuple(x.shape) == (1, 3, 64, 64) and not model.training


def _check_model(name: str) -> None:
    from tvm_sched.runtime.builder import LaneKernels

    imported = zoo.load(name)
    mod = tsr.prepare(imported.mod)
    graph = tsr.extract_op_graphs(mod)[0]
    assert graph.num_nodes >= 20
    default = tsr.run_module(mod, imported)
    ours = tsr.run_module(mod, imported, relax_pipeline="tvm_sched")
    for a, b, ref in zip(ours, default, imported.reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(a, ref, rtol=1e-3, atol=1e-3)
    assert tsr.allocated_bytes(mod, "tvm_sched") <= tsr.allocated_bytes(mod, "default")
    k = LaneKernels(mod, "llvm", params=imported.params)
    k.profile()
    vm = k.reference(*imported.inputs)
    with k.module(k.schedule(2, "list", budget=1.0), allow_oversubscribe=True) as lanes:
        assert lanes.plan.num_lanes == 2
        for a, b in zip(lanes(*imported.inputs), vm, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", QUICK)
def test_quick_corpus_models_through_the_pass_and_two_lanes(name):
    _check_model(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in CORPUS if n not in QUICK])
def test_corpus_model_through_the_pass_and_two_lanes(name):
    _check_model(name)
