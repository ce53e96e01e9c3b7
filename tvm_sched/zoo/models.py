"""The zoo's registry: model builders by name and size, seeded without touching global RNG state.

Contract
--------
Every model has two sizes:

- ``"small"`` (the default): tiny inputs and channels, for tests and quick demos; a model's
  small graph never changes (tests rely on it);
- ``"bench"``: for benchmarks and the lane demo: 20-300 ms per inference with TVM's default
  (untuned, single-threaded) CPU kernels, a few hundred fused operators at most, and shapes
  repeated across cells so that few distinct kernels are built. Measured figures per model are
  in ``benchmarks/results/zoo_sizes.md`` (``benchmarks/zoo_sizes.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from tvm_sched.zoo import bert, cnn, darts, hrnet, irregular, vision

if TYPE_CHECKING:
    from tvm_sched.relax.frontend import ImportedModule

#: The sizes every model has.
SIZES = ("small", "bench")


def _image(side: int = 32):
    return lambda: (torch.randn(1, 3, side, side),)


def _tokens(length: int = 16, vocab: int = 64):
    return lambda: (torch.randint(0, vocab, (1, length)),)


Builder = tuple[Callable[[int], torch.nn.Module], Callable[[], tuple]]

# name -> size -> (model from seed, example inputs)
_BUILDERS: dict[str, dict[str, Builder]] = {
    "inception": {
        "small": (lambda seed: cnn.Inception(), _image()),
        "bench": (lambda seed: cnn.Inception(c=32, blocks=4), _image(80)),
    },
    "resnet": {
        "small": (lambda seed: cnn.ResNet(), _image()),
        "bench": (lambda seed: cnn.ResNet(widths=(32, 64, 128)), _image(48)),
    },
    "transformer": {
        "small": (lambda seed: irregular.Transformer(), _tokens()),
        "bench": (lambda seed: irregular.Transformer(d=256, heads=8, layers=3, vocab=1000),
                  _tokens(96, 1000)),
    },
    "randwire": {
        "small": (lambda seed: irregular.RandWire(seed=seed), _image()),
        "bench": (lambda seed: irregular.RandWire(nodes=32, c=32, seed=seed), _image(64)),
    },
    "nasnet": {
        "small": (lambda seed: irregular.NASNet(), _image()),
        "bench": (lambda seed: irregular.NASNet(c=32, cells=5), _image(96)),
    },
    "unet": {
        "small": (lambda seed: cnn.UNet(), _image()),
        "bench": (lambda seed: cnn.UNet(c=16), _image(96)),
    },
    "densenet": {
        "small": (lambda seed: cnn.DenseNet(), _image()),
        "bench": (lambda seed: cnn.DenseNet(c=32, growth=16, layers=12), _image(96)),
    },
    "darts": {
        "small": (lambda seed: darts.DARTS(c=4, cells=3), _image(16)),
        "bench": (lambda seed: darts.DARTS(c=16, cells=8), _image(64)),
    },
    "hrnet": {
        "small": (lambda seed: hrnet.HRNet(width=4, modules=(1, 1)), _image(32)),
        "bench": (lambda seed: hrnet.HRNet(width=16, modules=(1, 2, 1), blocks=2), _image(96)),
    },
    "bert": {
        "small": (lambda seed: bert.BERT(), lambda: bert.bert_inputs(16, 64, pad=4)),
        "bench": (lambda seed: bert.BERT(vocab=1000, d=256, heads=4, ffn=1024, layers=2,
                                         max_len=128),
                  lambda: bert.bert_inputs(128, 1000, pad=16)),
    },
}


def names() -> list[str]:
    """Names of the built-in models."""
    return list(_BUILDERS)


def corpus() -> list[str]:
    """Names of the real-model corpus (torchvision's architectures, :mod:`tvm_sched.zoo.vision`);
    :func:`torch_model` and :func:`load` take them like the built-in names."""
    return list(vision.CORPUS)


def _check(name: str, size: str = "small") -> Builder:
    builders = vision.BUILDERS.get(name) or _BUILDERS.get(name)
    if builders is None:
        raise ValueError(f"unknown zoo model {name!r}; known: {', '.join(names())}; the "
                         f"corpus: {', '.join(corpus())}")
    if size not in SIZES:
        raise ValueError(f"unknown zoo size {size!r}; choose one of: {', '.join(SIZES)}")
    return builders[size]


def _randomize_bn(model: torch.nn.Module) -> None:
    # fresh BatchNorm has mean 0 / var 1 / weight 1: give it non-trivial eval statistics
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)


def torch_model(name: str, seed: int = 0, *, size: str = "small"):
    """Build model ``name`` at ``size`` with seeded random weights, in eval mode.

    Parameters
    ----------
    name
        A zoo model (:func:`names`).
    seed
        Seeds the weights and the example inputs (the global RNG state is left untouched).
    size
        ``"small"`` (tests) or ``"bench"`` (benchmarks; see the module docstring).

    Returns
    -------
    (model, example_args)

    Raises
    ------
    ValueError
        If ``name`` is not a zoo model or ``size`` not a zoo size.

    Examples
    --------
    >>> model, (x,) = torch_model("hrnet", size="bench")
    >>> tuple(x.shape), len(model.stages[-1][0].branches)
    ((1, 3, 96, 96), 4)
    >>> torch_model("hrnet", size="large")
    Traceback (most recent call last):
    ValueError: unknown zoo size 'large'; choose one of: small, bench
    """
    build, make_args = _check(name, size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build(seed)
        _randomize_bn(model)
        args = make_args()
    return model.eval(), args


def load(name: str, *, seed: int = 0, size: str = "small") -> ImportedModule:
    """Import model ``name`` at ``size`` into Relax (see
    :func:`tvm_sched.relax.frontend.from_torch`).

    Raises
    ------
    ValueError
        If ``name`` is not a zoo model or ``size`` not a zoo size.
    """
    _check(name, size)
    from tvm_sched.relax.frontend import from_torch

    model, args = torch_model(name, seed, size=size)
    return from_torch(model, args, name=name)
