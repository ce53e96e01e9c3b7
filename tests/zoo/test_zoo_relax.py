"""The zoo through TVM: the new multi-branch models match torch at small size, and every model
imports at bench size with the operator count it is sized for.

The numerics of every zoo model at small size are also checked by tests/relax/test_frontend.py
(parametrized over ``zoo.names()``); here the new models get their structural checks too.
"""

import numpy as np
import pytest

from tvm_sched import zoo
from tvm_sched.relax.arena import allocated_bytes
from tvm_sched.relax.extract import extract
from tvm_sched.relax.frontend import prepare, run_module
from tvm_sched.solvers import solve

pytestmark = pytest.mark.integration

# fused operators of main's block at bench size, TVM 0.27, with BatchNorm folded into the
# convolution's weights (or decomposed before fusion) and pre-activation ReLUs inside their
# consumers (nasnet 117 -> 78, darts 226 -> 169; benchmarks/results/zoo_sizes.md counted before
# both)
BENCH_OPS = {"inception": 35, "resnet": 17, "transformer": 80, "randwire": 60, "nasnet": 78,
             "unet": 17, "densenet": 40, "darts": 169, "hrnet": 100, "bert": 58}
MULTI_BRANCH = ("darts", "hrnet")


def _speedup2(g) -> float:
    """Σ durations / makespan of list scheduling on 2 lanes (roofline durations)."""
    return g.total_duration / solve(g, "makespan", solver="list", lanes=2).value


@pytest.mark.parametrize("name", MULTI_BRANCH)
def test_multi_branch_model_matches_torch_and_is_wide(name):
    imported = zoo.load(name)
    mod = prepare(imported.mod)
    g = extract(mod)[0]
    assert 30 <= g.num_nodes <= 120  # BatchNorm folded into the conv epilogues
    assert _speedup2(g) > 1.4  # independent branches: two lanes nearly halve the makespan
    outputs = run_module(mod, imported)
    assert len(outputs) == len(imported.reference) == 1
    np.testing.assert_allclose(outputs[0], imported.reference[0], rtol=1e-4, atol=1e-4)


def test_bench_table_covers_the_zoo():
    assert set(BENCH_OPS) == set(zoo.names())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BENCH_OPS))
def test_bench_size_imports_with_expected_op_count(name):
    small = extract(prepare(zoo.load(name).mod))[0]
    imported = zoo.load(name, size="bench")
    assert imported.inputs[0].size > zoo.load(name).inputs[0].size
    g = extract(prepare(imported.mod))[0]
    expected = BENCH_OPS[name]
    assert 0.85 * expected <= g.num_nodes <= 1.15 * expected
    assert small.num_nodes <= g.num_nodes <= 400  # hundreds at most
    if name in MULTI_BRANCH:
        assert _speedup2(g) >= 1.5


@pytest.fixture(scope="module")
def bert():
    imported = zoo.load("bert")
    return imported, prepare(imported.mod)


def test_bert_graph_embeds_masks_and_attends(bert):
    imported, mod = bert
    assert [str(x.dtype) for x in imported.inputs] == ["int64"] * 3
    (g,) = extract(mod)
    ops = " ".join(g.ops)
    assert g.num_nodes == 58
    # the word and token-type lookups stay in main (the position lookup is weight-only: lifted)
    assert sum(op.startswith("take") for op in g.ops) == 3
    assert "layer_norm" in ops and "gelu" in ops and "softmax" in ops
    assert ops.count("subtract_multiply") == 1  # the additive mask, built once from the input
    assert _speedup2(g) > 1.2  # query, key and value projections are independent


def test_bert_through_the_pass_matches_the_default_pipeline(bert):
    imported, mod = bert
    default = run_module(mod, imported)
    ours = run_module(mod, imported, relax_pipeline="tvm_sched")
    assert len(ours) == len(default) == len(imported.reference) == 2
    for a, b, ref in zip(ours, default, imported.reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a, ref, rtol=1e-4, atol=1e-4)
    for m in (mod, imported.mod):  # fused, and as imported (the pass fuses it itself)
        assert allocated_bytes(m, "tvm_sched") <= allocated_bytes(m, "default")


def test_bert_on_two_lanes_matches_the_vm(bert):
    import tvm_sched.runtime as rt
    from tvm_sched.runtime import native_engine as native
    from tvm_sched.tune import load_model

    model = load_model(model="bert")
    assert all(np.array_equal(a, b) for a, b in zip(model.inputs, bert[0].inputs, strict=True))
    with rt.build(model.mod, "llvm", lanes=2, params=model.params, engine="python",
                  allow_oversubscribe=True) as lm:
        assert lm.plan.num_lanes == 2
        vm = lm.kernels.reference(*model.inputs)
        modules = [lm] + ([lm.kernels.module(lm.plan, engine="native", allow_oversubscribe=True)]
                          if native.available() else [])
        for m in modules:
            outs = m(*model.inputs)
            assert len(outs) == len(vm) == 2
            for a, b in zip(outs, vm, strict=True):
                np.testing.assert_array_equal(a, b)
            for a, ref in zip(outs, model.reference, strict=True):
                np.testing.assert_allclose(a, ref, rtol=1e-4, atol=1e-4)
        for m in modules[1:]:
            m.close()
