"""Zoo registry tests (torch only; TVM-backed numerics live in tests/relax/test_frontend.py)."""

import subprocess
import sys

import pytest
import torch

from tvm_sched import zoo


def test_names():
    assert set(zoo.names()) == {
        "inception",
        "resnet",
        "transformer",
        "randwire",
        "nasnet",
        "unet",
        "densenet",
    }


def test_unknown_model_raises_value_error():
    with pytest.raises(ValueError, match="inception"):
        zoo.torch_model("nope")
    with pytest.raises(ValueError, match="known"):
        zoo.load("nope")


def test_same_seed_same_weights_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    a, args_a = zoo.torch_model("randwire", seed=3)
    b, args_b = zoo.torch_model("randwire", seed=3)
    c, _ = zoo.torch_model("randwire", seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (_, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y)
    assert torch.equal(args_a[0], args_b[0])
    assert any(
        not torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=False)
        if x.shape == y.shape
    )


@pytest.mark.parametrize(
    "name", ["inception", "resnet", "transformer", "randwire", "nasnet", "unet", "densenet"]
)
def test_torch_forward(name):
    model, args = zoo.torch_model(name)
    with torch.no_grad():
        out = model(*args)
    assert torch.isfinite(out).all()


def test_import_zoo_does_not_import_tvm():
    code = "import sys, tvm_sched.zoo; print('tvm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
