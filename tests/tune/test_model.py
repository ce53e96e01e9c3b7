"""Model sources of the tuner: ONNX files and Relax Python files, good and bad."""

from __future__ import annotations

import numpy as np
import pytest

from tvm_sched.errors import TuneInputError
from tvm_sched.tune import InProcessDevices, TuneConfig, load_model, tune

pytestmark = [pytest.mark.integration]

RELAX_FILE = '''
import numpy as np
from tvm.script import ir as I
from tvm.script import relax as R


@I.ir_module
class Module:
    @R.function
    def main(x: R.Tensor((16, 16), "float32"), w: R.Tensor((16, 16), "float32")):
        with R.dataflow():
            a = R.matmul(x, w)
            b = R.matmul(w, x)
            c = R.matmul(a, b)
            R.output(c)
        return c


inputs = [np.ones((16, 16), "float32")]
params = [np.eye(16, dtype="float32") * 2]
'''


def branches_onnx(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    for i in range(3):
        inits.append(numpy_helper.from_array(
            rng.standard_normal((4, 4, 3, 3)).astype("float32"), f"w{i}"))
        nodes.append(helper.make_node("Conv", ["x", f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
    nodes.append(helper.make_node("Concat", ["r0", "r1", "r2"], ["y"], axis=1))
    graph = helper.make_graph(
        nodes, "branches", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12, 8, 8])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def quick() -> TuneConfig:
    return TuneConfig(solvers=("lpmf",), candidates=6, top_k=2, repeats=2, min_repeat_ms=1,
                      solver_budget=0.2)


def test_onnx_model_tunes_with_generated_inputs(tmp_path):
    branches_onnx(tmp_path / "m.onnx")
    m = load_model(onnx=tmp_path / "m.onnx")
    assert m.num_nodes == 4 and [x.shape for x in m.inputs] == [(1, 4, 8, 8)] and not m.params
    res = tune(m, "llvm", InProcessDevices(), tmp_path / "w", quick())
    assert res.best is not None and all(r.error is None for r in res.records)


def test_relax_file_with_inputs_and_params(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text(RELAX_FILE)
    m = load_model(relax_file=path)
    assert m.num_nodes == 3 and m.name.startswith("mod-")
    res = tune(m, "llvm", InProcessDevices(), tmp_path / "w", quick())
    assert res.best is not None and len(res.records) >= 2


@pytest.mark.parametrize("text, message", [
    ("x = 1\n", "must define one IRModule"),
    ("raise RuntimeError('broken model file')\n", "RuntimeError: broken model file"),
    (RELAX_FILE.split("inputs = ")[0]
     + "mod = Module\nmod['main'] = mod['main'].with_attr('num_input', 1)\n",
     "main takes 1 weight parameters; give inputs and params"),
])
def test_bad_relax_files(tmp_path, text, message):
    path = tmp_path / "bad.py"
    path.write_text(text)
    with pytest.raises(TuneInputError, match=message):
        load_model(relax_file=path)


def test_the_layout_follows_the_kernel_budget():
    from tvm_sched.tune import conv_layout

    assert conv_layout("auto", 0) == "NCHW"
    assert conv_layout("auto", 64) == "NHWC"
    assert conv_layout("NCHW", 64) == "NCHW" and conv_layout("NHWC", 0) == "NHWC"
    with pytest.raises(TuneInputError, match="--layout must be auto or one of NCHW, NHWC"):
        conv_layout("nhwc", 64)


def test_a_zoo_model_loads_in_nhwc_with_the_same_outputs():
    from tvm_sched.relax.frontend import run_module

    nchw, nhwc = load_model(model="inception"), load_model(model="inception", layout="NHWC")
    assert nchw.hash != nhwc.hash  # separate records, databases and caches
    assert [tuple(x.shape) for x in nhwc.inputs] == [tuple(x.shape) for x in nchw.inputs]
    out = run_module(nhwc.mod, nhwc)
    for got, want in zip(out, nhwc.reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_an_unknown_layout_is_an_input_error():
    with pytest.raises(TuneInputError, match="unknown layout 'NWHC'"):
        load_model(model="resnet", layout="NWHC")
