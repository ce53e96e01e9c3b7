"""Random model inputs: one generator for the tuner and the profiler; their documented errors
on a parameter of symbolic shape (issue 15 items 9 and 12: both called ``name_hint``, which
TVM 0.27's Relax vars lack, and crashed with AttributeError instead)."""

from __future__ import annotations

import numpy as np
import pytest

from tvm_sched.errors import TuneInputError

SYMBOLIC = '''
from tvm.script import ir as I
from tvm.script import relax as R


@I.ir_module
class Module:
    @R.function
    def main(x: R.Tensor(("n", 8), "float32")):
        with R.dataflow():
            a = R.add(x, x)
            b = R.multiply(x, x)
            c = R.add(a, b)
            R.output(c)
        return c
'''

STATIC = SYMBOLIC.replace('("n", 8)', "(4, 8)").replace(
    'def main(x: R.Tensor((4, 8), "float32"))',
    'def main(x: R.Tensor((4, 8), "float32"), i: R.Tensor((3,), "int64"), '
    'm: R.Tensor((2,), "bool"))')


def module(text, tmp_path):
    import runpy

    path = tmp_path / "m.py"
    path.write_text(text)  # TVMScript reads the source of the class it parses
    return runpy.run_path(str(path))["Module"]


def test_random_args_one_generator_seeded_with_documented_ranges(tmp_path):
    from tvm_sched.relax.profile import random_args

    func = module(STATIC, tmp_path)["main"]
    a = random_args(func, np.random.default_rng(0))
    b = random_args(func, np.random.default_rng(0))
    assert [x.shape for x in a] == [(4, 8), (3,), (2,)]
    assert [str(x.dtype) for x in a] == ["float32", "int64", "bool"]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[1].min() >= 0 and a[1].max() < 4
    assert len(random_args(func, np.random.default_rng(0), count=1)) == 1


def test_symbolic_shape_is_a_value_error_naming_the_parameter(tmp_path):
    from tvm_sched.relax.profile import profile_kernels, random_args

    mod = module(SYMBOLIC, tmp_path)
    with pytest.raises(ValueError, match="parameter x .* not a tensor of static shape"):
        random_args(mod["main"], np.random.default_rng(0))
    with pytest.raises(ValueError, match="main: parameter x"):  # profile_kernels' documented error
        profile_kernels(mod, "llvm")


def test_tuner_names_the_symbolic_input_and_asks_for_inputs(tmp_path):
    from tvm_sched.tune.model import _random_inputs

    with pytest.raises(TuneInputError, match="parameter x .* static shape.*give inputs"):
        _random_inputs(module(SYMBOLIC, tmp_path)["main"], 1, seed=0)
