"""Built-in models (random weights, built offline) in two sizes, for demos, tests and benchmarks.

``import tvm_sched.zoo`` imports torch but not TVM; TVM is imported by :func:`load`. Besides the
built-in models (:func:`names`) it builds the real-model corpus (:func:`corpus`: torchvision's
architectures, which need the ``vision`` extra; torchvision is imported when one is built).
"""

from tvm_sched.zoo.models import SIZES, corpus, load, names, torch_model

__all__ = ["SIZES", "corpus", "load", "names", "torch_model"]
