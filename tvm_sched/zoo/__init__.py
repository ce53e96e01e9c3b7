"""Built-in models (random weights, built offline) in two sizes, for demos, tests and benchmarks.

``import tvm_sched.zoo`` imports torch but not TVM; TVM is imported by :func:`load`.
"""

from tvm_sched.zoo.models import SIZES, load, names, torch_model

__all__ = ["SIZES", "load", "names", "torch_model"]
