"""Zero-copy concatenation in the ``tvm_sched`` pipeline (``PlanArena``) and the analysis behind
it (``tvm_sched.relax.concat``): pure concatenates are recognised by their TIR, eligible calls
vanish from the lowered module, the outputs stay bit-identical and the storage never grows."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import tirx as T

from tvm_sched.relax.arena import PlanArena, arena_pipeline
from tvm_sched.relax.concat import KeepConcatUnfused, concat_layout, concat_sites

pytestmark = pytest.mark.integration


def _fused(name: str):
    from tvm_sched import zoo
    from tvm_sched.relax.passes import fusion_prefix

    imp = zoo.load(name, size="small")
    mod = relax.transform.LiftTransformParams()(imp.mod)
    mod = relax.transform.CanonicalizeBindings()(relax.transform.DecomposeOpsForInference()(mod))
    return fusion_prefix()(mod), imp


@pytest.fixture(scope="module")
def nasnet():
    """The zoo's nasnet (small), fused after BatchNorm is decomposed, and its import.

    (darts, used before, no longer gains from its concatenates: with its pre-activation ReLUs
    inlined into their consumers, removing them would grow the arena, so the planner keeps
    them copying -- the rule tested here.)"""
    return _fused("nasnet")


def _lower(mod, zero_copy: bool):
    arena = PlanArena(zero_copy_concat=zero_copy)
    with tvm.target.Target("llvm"):
        low = arena_pipeline(arena)(mod)
    return low, next(r for r in arena.report if r.func == "main")


def _concat_calls(low, names) -> int:
    found = []

    def visit(e):
        if isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.GlobalVar) and \
                e.op.name_hint in names:
            found.append(e)

    relax.analysis.post_order_visit(low["main"].body, visit)
    return len(found)


def _concat_names(mod) -> set[str]:
    return {gv.name_hint for gv, f in mod.functions.items() if concat_layout(f) is not None}


def test_pipeline_removes_concatenates_bit_identically(nasnet):
    from tvm_sched.relax.frontend import run_module

    mod, imp = nasnet
    names = _concat_names(mod)
    low_copy, rep_copy = _lower(mod, False)
    low_zero, rep_zero = _lower(mod, True)
    assert rep_zero.concats_removed >= 2 and rep_copy.concats_removed == 0
    assert _concat_calls(low_zero, names) == _concat_calls(low_copy, names) - \
        rep_zero.concats_removed
    assert rep_zero.arena_bytes <= rep_zero.copying_arena_bytes == rep_copy.arena_bytes
    zero = run_module(mod, imp, relax_pipeline=arena_pipeline(PlanArena()))
    copy = run_module(mod, imp, relax_pipeline=arena_pipeline(PlanArena(zero_copy_concat=False)))
    for a, b in zip(zero, copy, strict=True):  # the copying plan itself: test_arena_pass
        assert np.array_equal(a, b)


def test_registered_pipeline_takes_the_switch(nasnet):
    from tvm_sched.relax.passes import pipeline

    mod, _ = nasnet
    with tvm.target.Target("llvm"):
        on = pipeline(solver="lpmf", baselines=(), budget=0.2)(mod)
        off = pipeline(solver="lpmf", baselines=(), budget=0.2, zero_copy_concat=False)(mod)
    names = _concat_names(mod)
    assert _concat_calls(on, names) < _concat_calls(off, names)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nasnet", "googlenet", "inception"])
def test_pipeline_on_zoo_models(name):
    from tvm_sched.relax.frontend import run_module

    mod, imp = _fused(name)
    low, rep = _lower(mod, True)
    assert rep.arena_bytes <= rep.copying_arena_bytes
    if name != "inception":  # there every merge would grow the arena: all kept copying
        assert rep.concats_removed >= 1
    zero = run_module(mod, imp, relax_pipeline=arena_pipeline(PlanArena()))
    ref = run_module(mod, imp)
    for a, b in zip(zero, ref, strict=True):
        assert np.array_equal(a, b)


# -- the analysis ---------------------------------------------------------------------------

@T.prim_func(private=True, s_tir=True)
def _concat(a: T.Buffer((1, 16, 4, 4), "float32"), b: T.Buffer((1, 32, 4, 4), "float32"),
            out: T.Buffer((1, 48, 4, 4), "float32")):
    for i0, i1, i2, i3 in T.grid(1, 48, 4, 4):
        with T.sblock("T_concat"):
            v0, v1, v2, v3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
            out[v0, v1, v2, v3] = T.if_then_else(16 <= v1, b[v0, v1 - 16, v2, v3],
                                                 a[v0, v1, v2, v3])


@T.prim_func(private=True, s_tir=True)
def _concat_relu(a: T.Buffer((1, 16, 4, 4), "float32"), b: T.Buffer((1, 32, 4, 4), "float32"),
                 out: T.Buffer((1, 48, 4, 4), "float32")):
    for i0, i1, i2, i3 in T.grid(1, 48, 4, 4):
        with T.sblock("T_concat"):
            v0, v1, v2, v3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
            out[v0, v1, v2, v3] = T.max(T.if_then_else(16 <= v1, b[v0, v1 - 16, v2, v3],
                                                       a[v0, v1, v2, v3]), T.float32(0))


@T.prim_func(private=True, s_tir=True)
def _concat_batch2(a: T.Buffer((2, 16, 4, 4), "float32"), b: T.Buffer((2, 32, 4, 4), "float32"),
                   out: T.Buffer((2, 48, 4, 4), "float32")):
    for i0, i1, i2, i3 in T.grid(2, 48, 4, 4):
        with T.sblock("T_concat"):
            v0, v1, v2, v3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
            out[v0, v1, v2, v3] = T.if_then_else(16 <= v1, b[v0, v1 - 16, v2, v3],
                                                 a[v0, v1, v2, v3])


@T.prim_func(private=True, s_tir=True)
def _concat_swapped(a: T.Buffer((1, 16, 4, 4), "float32"),
                    b: T.Buffer((1, 32, 4, 4), "float32"),
                    out: T.Buffer((1, 48, 4, 4), "float32")):
    for i0, i1, i2, i3 in T.grid(1, 48, 4, 4):
        with T.sblock("T_concat"):
            v0, v1, v2, v3 = T.axis.remap("SSSS", [i0, i1, i2, i3])
            out[v0, v1, v2, v3] = T.if_then_else(16 <= v1, b[v0, v1 - 15, v2, v3],
                                                 a[v0, v1, v2, v3])


def test_concat_layout_reads_pure_concatenates_only():
    lay = concat_layout(_concat)
    assert lay is not None and lay.axis == 1
    assert lay.offsets == (0, 16 * 16 * 4) and lay.sizes == (1024, 2048) and lay.nbytes == 3072
    assert concat_layout(_concat_relu) is None  # fused with something else
    assert concat_layout(_concat_batch2) is None  # strided slices
    assert concat_layout(_concat_swapped) is None  # not a tiling
    assert concat_layout(None) is None


def test_sites_and_the_fusion_switch_on_a_zoo_model(nasnet):
    from tvm_sched.relax.extract import extract

    mod, imp = nasnet
    (graph,) = extract(mod, "main", skip_symbolic=False)
    sites = concat_sites(mod, graph)
    assert len(sites) >= 2
    for s in sites:
        assert len({(u, k) for u, k, _ in s.inputs}) == len(s.inputs)
        assert [o for _, _, o in s.inputs] == sorted(o for _, _, o in s.inputs)
    # KeepConcatUnfused: every pure concatenate kernel is opaque to FuseOps
    raw = relax.transform.LiftTransformParams()(imp.mod)
    legal = relax.transform.AnnotateTIROpPattern()(relax.transform.LegalizeOps()(raw))
    marked = KeepConcatUnfused()(legal)
    pure = [f for _, f in marked.functions.items()
            if isinstance(f, tvm.tirx.PrimFunc) and concat_layout(f) is not None]
    assert pure and all(int(f.attrs["op_pattern"]) == 8 for f in pure)
