"""The fusion prefix decomposes inference-only ops first (issue 22): BatchNorm becomes a
multiply-add that fuses into the convolution before it, no ``batch_norm`` op is left, and the
prepared module computes what torch does within 1e-5 relative."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tvm
from tvm import relax

from tvm_sched import zoo
from tvm_sched.relax.frontend import from_torch, prepare, run_module
from tvm_sched.relax.passes import fusion_prefix

pytestmark = pytest.mark.integration


def _relax_texts(mod: tvm.IRModule) -> dict[str, str]:
    """The TVMScript of every Relax function of ``mod``, by name."""
    return {gv.name_hint: mod[gv].script() for gv in mod.get_global_vars()
            if isinstance(mod[gv], relax.Function)}


def _assert_close(outputs, reference, rtol=1e-5):
    """Every output within ``rtol`` of torch's, relative to the output's largest magnitude
    (float32 sums in another order differ by a few ulps where values cross zero)."""
    assert len(outputs) == len(reference)
    for out, ref in zip(outputs, reference, strict=True):
        assert out.shape == ref.shape
        scale = float(np.max(np.abs(ref))) or 1.0
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("name", [
    "resnet", "darts",
    pytest.param("nasnet", marks=pytest.mark.slow),
    pytest.param("inception", marks=pytest.mark.slow),
])
def test_zoo_batchnorm_is_decomposed_and_matches_torch(name):
    imported = zoo.load(name)
    assert any("R.nn.batch_norm" in text for text in _relax_texts(imported.mod).values())
    prepared = prepare(imported.mod)
    left = [fn for fn, text in _relax_texts(prepared).items() if "batch_norm" in text]
    assert not left, f"batch_norm left in {left}"
    assert not [gv.name_hint for gv in prepared.get_global_vars()
                if "batch_norm" in gv.name_hint]
    _assert_close(run_module(prepared, imported), imported.reference)


def _conv_bn_relu():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                torch.nn.ReLU())
    bn = model[1]
    with torch.no_grad():  # eval statistics that are not the identity
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return from_torch(model, (torch.randn(1, 3, 10, 10),), name="conv-bn-relu")


def test_batchnorm_becomes_the_convolutions_epilogue():
    imported = _conv_bn_relu()
    prepared = prepare(imported.mod)
    bindings = prepared["main"].body.blocks[0].bindings
    calls = [b.value for b in bindings if isinstance(b.value, relax.Call)]
    assert len(calls) == 1  # one kernel: conv, batch norm and relu together
    callee = calls[0].args[0]
    assert isinstance(callee, relax.GlobalVar) and callee.name_hint.startswith("fused_conv2d")
    _assert_close(run_module(prepared, imported), imported.reference)


def test_the_prefix_alone_decomposes_an_unlifted_module():
    """``ScheduleOperators`` runs the prefix without lifting the weights: the same
    decomposition, the same numbers."""
    imported = _conv_bn_relu()
    fused = fusion_prefix()(imported.mod)
    assert not any("batch_norm" in text for text in _relax_texts(fused).values())
    _assert_close(run_module(fused, imported), imported.reference)
