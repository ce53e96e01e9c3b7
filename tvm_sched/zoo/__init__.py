"""Small built-in models (random weights, built offline) for demos and tests.

``import tvm_sched.zoo`` imports torch but not TVM; TVM is imported by :func:`load`.
"""

from tvm_sched.zoo.models import load, names, torch_model

__all__ = ["load", "names", "torch_model"]
