"""The zoo's registry: model builders by name, seeded without touching global RNG state."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from tvm_sched.zoo import cnn, irregular

if TYPE_CHECKING:
    from tvm_sched.relax.frontend import ImportedModule


def _image():
    return (torch.randn(1, 3, 32, 32),)


def _tokens():
    return (torch.randint(0, 64, (1, 16)),)


_BUILDERS = {
    "inception": (lambda seed: cnn.Inception(), _image),
    "resnet": (lambda seed: cnn.ResNet(), _image),
    "transformer": (lambda seed: irregular.Transformer(), _tokens),
    "randwire": (lambda seed: irregular.RandWire(seed=seed), _image),
    "nasnet": (lambda seed: irregular.NASNet(), _image),
    "unet": (lambda seed: cnn.UNet(), _image),
    "densenet": (lambda seed: cnn.DenseNet(), _image),
}


def names() -> list[str]:
    """Names of the built-in models."""
    return list(_BUILDERS)


def _check(name: str):
    if name not in _BUILDERS:
        raise ValueError(f"unknown zoo model {name!r}; known: {', '.join(names())}")
    return _BUILDERS[name]


def _randomize_bn(model: torch.nn.Module) -> None:
    # fresh BatchNorm has mean 0 / var 1 / weight 1: give it non-trivial eval statistics
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)


def torch_model(name: str, seed: int = 0):
    """Build model ``name`` with seeded random weights, in eval mode.

    Returns
    -------
    (model, example_args)

    Raises
    ------
    ValueError
        If ``name`` is not a zoo model.
    """
    build, make_args = _check(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build(seed)
        _randomize_bn(model)
        args = make_args()
    return model.eval(), args


def load(name: str, *, seed: int = 0) -> ImportedModule:
    """Import model ``name`` into Relax (see :func:`tvm_sched.relax.frontend.from_torch`).

    Raises
    ------
    ValueError
        If ``name`` is not a zoo model.
    """
    _check(name)
    from tvm_sched.relax.frontend import from_torch

    model, args = torch_model(name, seed)
    return from_torch(model, args, name=name)
