"""The real-model corpus: torchvision's architectures, built offline with random weights.

Thirteen published architectures (``weights=None``: nothing is downloaded) that the project tests
and benchmarks on, next to its own multi-branch models: :data:`CORPUS`. Each has two sizes like
every zoo model: ``"small"`` (a small image; for the transformers also few layers) for tests,
``"bench"`` (a mid-size image) for benchmarks. The architectures are torchvision's own (torchvision
0.28.0, the release built for torch 2.13, is the ``vision`` extra); only the input side, and for
``vit_b_16`` the depth, are reduced.

Why a loader of our own: PyPI's torchvision wheel cannot register its C++ operators beside the
CPU build of torch this project pins (``operator torchvision::nms does not exist`` at import:
the package's ``__init__`` registers fake kernels for them). The architectures need none of
those operators, so when that import fails, :func:`torchvision_models` loads the package's
Python modules without running its ``__init__`` (the models' code itself runs unchanged).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable

import torch

__all__ = ["CORPUS", "BUILDERS", "torchvision_models"]

#: The corpus, in the order benchmarks run it.
CORPUS = ("googlenet", "inception_v3", "squeezenet1_1", "shufflenet_v2_x1_0", "mnasnet1_0",
          "mobilenet_v3_small", "efficientnet_b0", "regnet_x_400mf", "densenet121", "resnet50",
          "convnext_tiny", "swin_t", "vit_b_16")


def torchvision_models():
    """``torchvision.models``, imported even where torchvision's C++ operators cannot load.

    Raises
    ------
    ImportError
        torchvision is not installed (``pip install -e '.[vision]'``).
    """
    try:
        return importlib.import_module("torchvision.models")
    except RuntimeError as err:  # its __init__ registers operators this torch does not have
        if "torchvision::" not in str(err):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # the half-imported package
    spec = importlib.util.find_spec("torchvision")
    pkg = types.ModuleType("torchvision")
    pkg.__file__, pkg.__path__, pkg.__spec__ = spec.origin, list(spec.submodule_search_locations
                                                                 or []), spec
    sys.modules["torchvision"] = pkg
    return importlib.import_module("torchvision.models")


def _tv(arch: str, **kw) -> Callable[[int], torch.nn.Module]:
    def build(seed: int) -> torch.nn.Module:
        return getattr(torchvision_models(), arch)(weights=None, **kw)

    return build


def _vit(image: int, layers: int) -> Callable[[int], torch.nn.Module]:
    def build(seed: int) -> torch.nn.Module:
        torchvision_models()
        vt = importlib.import_module("torchvision.models.vision_transformer")
        # vit_b_16's patch, width, heads and MLP; a smaller image and fewer layers
        return vt.VisionTransformer(image_size=image, patch_size=16, num_layers=layers,
                                    num_heads=12, hidden_dim=768, mlp_dim=3072)

    return build


def _image(side: int):
    return lambda: (torch.randn(1, 3, side, side),)


_NO_AUX = {"aux_logits": False, "init_weights": False}

#: name -> size -> (model from seed, example inputs), as the zoo's registry takes them.
BUILDERS: dict[str, dict[str, tuple]] = {
    "googlenet": {"small": (_tv("googlenet", **_NO_AUX), _image(64)),
                  "bench": (_tv("googlenet", **_NO_AUX), _image(128))},
    "inception_v3": {"small": (_tv("inception_v3", **_NO_AUX), _image(80)),
                     "bench": (_tv("inception_v3", **_NO_AUX), _image(160))},
    "squeezenet1_1": {"small": (_tv("squeezenet1_1"), _image(64)),
                      "bench": (_tv("squeezenet1_1"), _image(160))},
    "shufflenet_v2_x1_0": {"small": (_tv("shufflenet_v2_x1_0"), _image(64)),
                           "bench": (_tv("shufflenet_v2_x1_0"), _image(160))},
    "mnasnet1_0": {"small": (_tv("mnasnet1_0"), _image(64)),
                   "bench": (_tv("mnasnet1_0"), _image(160))},
    "mobilenet_v3_small": {"small": (_tv("mobilenet_v3_small"), _image(64)),
                           "bench": (_tv("mobilenet_v3_small"), _image(160))},
    "efficientnet_b0": {"small": (_tv("efficientnet_b0"), _image(64)),
                        "bench": (_tv("efficientnet_b0"), _image(128))},
    "regnet_x_400mf": {"small": (_tv("regnet_x_400mf"), _image(64)),
                       "bench": (_tv("regnet_x_400mf"), _image(128))},
    "densenet121": {"small": (_tv("densenet121"), _image(64)),
                    "bench": (_tv("densenet121"), _image(96))},
    "resnet50": {"small": (_tv("resnet50"), _image(64)),
                 "bench": (_tv("resnet50"), _image(128))},
    "convnext_tiny": {"small": (_tv("convnext_tiny"), _image(64)),
                      "bench": (_tv("convnext_tiny"), _image(96))},
    "swin_t": {"small": (_tv("swin_t"), _image(64)),
               "bench": (_tv("swin_t"), _image(112))},
    "vit_b_16": {"small": (_vit(32, 2), _image(32)),
                 "bench": (_vit(64, 4), _image(64))},
}
