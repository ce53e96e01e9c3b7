"""BatchNorm folded into the convolution's weights (``tvm_sched.relax.fold``) and cheap
elementwise kernels inlined into their consumers (``tvm_sched.relax.prologue``): the kernels
that vanish, the ones that must stay, and the numbers (torch within 1e-5; the inlining
bit-identical to the module without it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tvm
from tvm import relax

from tvm_sched.relax import passes
from tvm_sched.relax.fold import FoldBatchNormIntoWeights
from tvm_sched.relax.frontend import from_torch, prepare, run_module
from tvm_sched.relax.prologue import InlineElementwisePrologues, is_cheap_elementwise

pytestmark = pytest.mark.integration


def _assert_close(outputs, reference, rtol=1e-5):
    assert len(outputs) == len(reference)
    for out, ref in zip(outputs, reference, strict=True):
        scale = float(np.max(np.abs(ref))) or 1.0
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * scale)


def _kernels(mod: tvm.IRModule) -> list[str]:
    """The PrimFunc names ``main`` calls, in order."""
    names = []
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            v = b.value
            if isinstance(v, relax.Call) and v.args and isinstance(v.args[0], relax.GlobalVar):
                names.append(v.args[0].name_hint)
    return names


def _randomise_bn(model):
    with torch.no_grad():  # eval statistics that are not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


class _PreActivation(torch.nn.Module):
    """``y = bn(conv(x))``; ``relu(y)`` feeds a depthwise and a pointwise convolution, ``y``
    itself the sum (NASNet's pattern), and a second ReLU is an output."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(8)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.pw = torch.nn.Conv2d(8, 8, 1, bias=False)

    def forward(self, x):
        y = self.bn(self.conv(x))
        r = torch.relu(y)
        return self.dw(r) + self.pw(r) + y, torch.relu(x)


def _pre_activation():
    torch.manual_seed(0)
    return from_torch(_randomise_bn(_PreActivation()), (torch.randn(1, 4, 12, 12),),
                      name="pre-activation")


def _divides(mod: tvm.IRModule) -> int:
    return sum(f.script().count(" / ") for gv, f in mod.functions.items()
               if isinstance(f, tvm.tirx.PrimFunc) and gv.name_hint.startswith("fused_conv2d"))


def test_batchnorm_goes_into_the_lifted_weights():
    imported = _pre_activation()
    prepared = prepare(imported.mod)
    kernels = _kernels(prepared)
    # the convolution's epilogue is one add (the folded shift), no per-element divide
    assert any(k.startswith("fused_conv2d") and "add" in k for k in kernels)
    assert not any("divide" in k or "subtract" in k for k in kernels), kernels
    assert _divides(prepared) == 0
    names = [gv.name_hint for gv in prepared.get_global_vars()]
    assert "main_transform_params" in names
    _assert_close(run_module(prepared, imported), imported.reference)


def test_weight_parameters_fold_only_when_asked():
    imported = _pre_activation()
    kept = FoldBatchNormIntoWeights()(imported.mod)  # weights are parameters, not constants
    assert "R.nn.batch_norm" in kept["main"].script()
    folded = FoldBatchNormIntoWeights(weight_params=True)(imported.mod)
    assert "R.nn.batch_norm" not in folded["main"].script()
    _assert_close(run_module(folded, imported), imported.reference)


def test_constant_weights_fold_in_the_prefix_alone():
    """``ScheduleOperators`` runs the prefix on a user's module: with the weights bound as
    constants the fold happens there, and ``FoldConstant`` computes the new weights."""
    imported = _pre_activation()
    bound = relax.transform.BindParams("main", {
        p: tvm.runtime.tensor(w) for p, w in
        zip(list(imported.mod["main"].params)[1:], imported.params, strict=True)})(imported.mod)
    fused = passes.fusion_prefix()(bound)
    assert _divides(fused) == 0
    assert not any("divide" in k for k in _kernels(fused))
    plain = type(imported)(name="bound", mod=fused, inputs=imported.inputs,
                           reference=imported.reference)
    _assert_close(run_module(fused, plain), imported.reference)


def _prefix_without_inlining(monkeypatch, mod):
    monkeypatch.setattr(passes, "InlineElementwisePrologues",
                        lambda: tvm.transform.Sequential([]))
    return passes.fusion_prefix()(mod)


def test_pre_activation_relu_runs_inside_its_consumers_bit_identically(monkeypatch):
    imported = _pre_activation()
    lifted = relax.transform.LiftTransformParams()(
        FoldBatchNormIntoWeights(weight_params=True)(imported.mod))
    inlined = passes.fusion_prefix()(lifted)
    kernels = _kernels(inlined)
    # relu(y) feeds two convolutions: it is computed inside both, never stored on its own;
    # relu(x) is an output of main, so its kernel stays
    assert sum(k.startswith("fused_relu") for k in kernels) == 2, kernels
    assert sum(k.startswith("relu") for k in kernels) == 1, kernels
    plain = _prefix_without_inlining(monkeypatch, lifted)
    assert sum(k.startswith("relu") for k in _kernels(plain)) == 2
    assert len(kernels) == len(_kernels(plain)) - 1
    for a, b in zip(run_module(inlined, imported), run_module(plain, imported), strict=True):
        assert np.array_equal(a, b)


def test_a_relu_feeding_a_pure_concatenate_stays(monkeypatch):
    """Zero-copy concatenation removes a pure concatenate; a ReLU inlined into it would make
    it a copying kernel, so a ReLU with such a consumer keeps its kernel."""

    class Cat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(4, 4, 1)
            self.b = torch.nn.Conv2d(4, 4, 1)

        def forward(self, x):
            r = torch.relu(self.a(x))
            return torch.cat([r, self.b(x)], dim=1) * 2.0

    torch.manual_seed(0)
    imported = from_torch(Cat(), (torch.randn(1, 4, 8, 8),), name="cat")
    fused = passes.fusion_prefix()(relax.transform.LiftTransformParams()(imported.mod))
    assert not any(k.startswith("fused_relu") for k in _kernels(fused))
    _assert_close(run_module(fused, imported), imported.reference)


def test_only_cheap_one_input_elementwise_kernels_qualify():
    class Ops(torch.nn.Module):
        def forward(self, x, y):
            return (torch.relu(x), torch.clamp(x, 0.0, 6.0), torch.sigmoid(x), x + y,
                    x / 3.0)

    args = (torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 4))
    imported = from_torch(Ops(), args, name="ops")
    legal = relax.transform.AnnotateTIROpPattern()(relax.transform.LegalizeOps()(
        imported.mod))
    verdict = {gv.name_hint: is_cheap_elementwise(f) for gv, f in legal.functions.items()
               if isinstance(f, tvm.tirx.PrimFunc)}
    assert verdict.pop("relu") and verdict.pop("tir_clip")
    assert not any(verdict.values()), verdict  # sigmoid, add, divide
    assert not is_cheap_elementwise(imported.mod["main"])


def test_the_pass_leaves_a_module_without_candidates_alone():
    torch.manual_seed(0)
    imported = from_torch(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()),
                          (torch.randn(1, 3, 8, 8),), name="conv-relu")
    legal = relax.transform.AnnotateTIROpPattern()(relax.transform.LegalizeOps()(
        relax.transform.LiftTransformParams()(imported.mod)))
    fused = relax.transform.FuseOps()(legal)
    after = InlineElementwisePrologues()(fused)
    assert after["main"].script() == fused["main"].script()
    assert len(after.functions) == len(fused.functions)
