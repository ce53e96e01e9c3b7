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
