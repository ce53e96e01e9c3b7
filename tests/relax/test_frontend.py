"""Torch frontend: import, prepare and numerics of every zoo model against torch."""

import numpy as np
import pytest
import torch
from tvm import relax

from tvm_sched import zoo
from tvm_sched.errors import ExtractionError
from tvm_sched.relax.frontend import from_torch, prepare, run_module

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_matches_torch(name):
    imported = zoo.load(name)
    assert imported.name == name
    assert int(imported.mod["main"].attrs["num_input"]) == len(imported.inputs)
    assert len(imported.mod["main"].params) == len(imported.inputs) + len(imported.params)
    prepared = prepare(imported.mod)
    names = {gv.name_hint for gv in prepared.get_global_vars()}
    assert "main_transform_params" in names
    blocks = prepared["main"].body.blocks
    assert isinstance(blocks[0], relax.DataflowBlock)
    assert len(blocks[0].bindings) >= 15  # BatchNorm folded into the conv epilogues
    outputs = run_module(prepared, imported)
    assert len(outputs) == len(imported.reference)
    for out, ref in zip(outputs, imported.reference, strict=True):
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_same_seed_same_params():
    a, b = zoo.load("unet", seed=1), zoo.load("unet", seed=1)
    assert len(a.params) == len(b.params)
    for x, y in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(x, y)


class _DataDependent(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x + 1
        return x - 1


def test_export_failure_raises_extraction_error():
    with pytest.raises(ExtractionError, match="torch.export failed") as info:
        from_torch(_DataDependent(), (torch.randn(4),), name="bad")
    assert info.value.__cause__ is not None


def test_run_unprepared_module():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    imported = from_torch(model, (torch.randn(1, 3, 8, 8),), name="tiny")
    out = run_module(imported.mod, imported)
    np.testing.assert_allclose(out[0], imported.reference[0], rtol=1e-4, atol=1e-4)


def _conv_data_layouts(mod) -> set[str]:
    """The data layouts of the 2-D convolutions in ``mod`` before fusion."""
    found = set()

    def visit(expr):
        if isinstance(expr, relax.Call) and getattr(expr.op, "name", "") == "relax.nn.conv2d":
            found.add(str(expr.attrs.data_layout))

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    return found


@pytest.mark.parametrize("name", ["resnet", "nasnet", "inception", "hrnet", "darts"])
def test_nhwc_preparation_computes_the_same_outputs(name, monkeypatch):
    """Every convolution of the multi-branch zoo models in NHWC (pooling, concatenation,
    depthwise and strided convolutions follow), the weights transposed at load, outputs as in
    torch, and main still takes and returns NCHW tensors."""
    imported = zoo.load(name)
    assert _conv_data_layouts(imported.mod) == {"NCHW"}
    seen = []
    real = relax.transform.ConvertLayout

    def spy(desired):
        def run(mod):
            out = real(desired)(mod)
            seen.append(_conv_data_layouts(out))
            return out
        return run

    monkeypatch.setattr(relax.transform, "ConvertLayout", spy)
    prepared = prepare(imported.mod, "NHWC")
    assert seen == [{"NHWC"}]
    weights = [tuple(int(d) for d in p.ty.shape.values)
               for p in list(prepared["main"].params)[len(imported.inputs):]
               if p.ty.ndim == 4]
    kernel = next(tuple(p.shape) for p in imported.params if np.ndim(p) == 4)
    assert (kernel[2], kernel[3], kernel[1], kernel[0]) in weights  # OIHW -> HWIO, lifted
    for out, ref in zip(run_module(prepared, imported), imported.reference, strict=True):
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_an_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="unknown layout 'NCWH'"):
        prepare(zoo.load("resnet").mod, "NCWH")
