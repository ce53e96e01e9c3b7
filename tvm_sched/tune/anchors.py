"""Anchors: PyTorch eager and ONNX Runtime, timed on the device in the tuner's own rounds.

A pick is only worth deploying if it beats what the user has without tvm_sched. Where the
model's source allows, the lane tuner measures these beside the Relax VM and the lane plans, in
the same interleaved rounds, outputs checked against the VM's (relative 1e-3: other kernels,
other rounding):

- ``pytorch-1t`` / ``pytorch``: the torch model in eager mode with one thread / every core the
  device offers (zoo models; the device rebuilds the model from its name, size and seed);
- ``onnxruntime`` / ``onnxruntime-parallel``: ONNX Runtime's CPU provider in sequential mode
  with every core as intra-op threads, and in parallel mode with every core as inter-op threads
  (the ONNX file of the source, or the torch model exported with ``torch.onnx.export``; the file
  is uploaded to the device).

An anchor that cannot run on the device (onnxruntime or torch not installed there, an export
that fails) is a record with that reason as its error: the report says "not installed" instead
of a time. Anchors are never picked: they are not tvm_sched modules.

Device side: :func:`register` (called by the tvm_sched RPC server and, for in-process
sessions, by the tuner) registers ``tvm_sched.tune.anchor_load(name, spec_json)`` -> "" or why
not, ``tvm_sched.tune.anchor_run(name, index, *inputs)`` -> output ``index`` (the inputs stay set)
and ``tvm_sched.tune.anchor_time(name, number)`` -> seconds of one run, averaged over ``number``
runs.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from tvm_sched.errors import one_line

__all__ = ["ANCHORS", "LOAD", "RUN", "TIME", "register", "anchor_specs", "export_onnx"]

log = logging.getLogger(__name__)

LOAD = "tvm_sched.tune.anchor_load"
RUN = "tvm_sched.tune.anchor_run"
TIME = "tvm_sched.tune.anchor_time"

#: The anchors, in report order: name -> (framework, mode).
ANCHORS = {
    "pytorch-1t": ("torch", "1t"),
    "pytorch": ("torch", "all"),
    "onnxruntime": ("ort", "sequential"),
    "onnxruntime-parallel": ("ort", "parallel"),
}


# --------------------------------------------------------------------------------------------
# the client side
def export_onnx(source: dict, path: Path) -> Path | None:
    """The ONNX file of a zoo source (exported once to ``path``; kept for later runs), the
    source's own ONNX file, or None when the source has neither (a Relax file) or the export
    fails (logged).

    Parameters
    ----------
    source
        The model's source: ``{"zoo": name, "size": ..., "seed": ...}`` or ``{"onnx": file}``
        (any other source has no ONNX file).
    path
        Where a zoo model's export is written (and found by a later run).

    Returns
    -------
    Path or None
        The ONNX file, or ``None`` when there is none (the export's failure is logged, not
        raised).
    """
    if source.get("onnx"):
        return Path(source["onnx"])
    if not source.get("zoo"):
        return None
    if path.exists():
        return path
    try:
        import torch

        from tvm_sched.zoo import torch_model

        model, args = torch_model(source["zoo"], int(source.get("seed", 0)),
                                  size=source.get("size", "small"))
        part = path.with_suffix(".part.onnx")
        with torch.no_grad():
            torch.onnx.export(model, tuple(args), str(part), dynamo=True, external_data=False,
                              verbose=False)
        part.replace(path)
        return path
    except Exception as err:  # noqa: BLE001 - no exporter, or one that fails: no ORT anchor
        log.warning("exporting %s to ONNX failed (%s): no ONNX Runtime anchor",
                    source.get("zoo"), one_line(err, limit=160))
        return None


def anchor_specs(source: dict, onnx_path: Path | None) -> dict[str, dict]:
    """Every anchor, as a spec for :data:`LOAD` (the ONNX file by its name on the device: the
    caller uploads it), or ``{"unavailable": why}`` where the source does not allow it.

    Parameters
    ----------
    source
        The model's source (the torch anchors need its ``"zoo"`` name).
    onnx_path
        :func:`export_onnx`'s result (``None``: no ONNX Runtime anchors).

    Returns
    -------
    dict
        Anchor name (every key of :data:`ANCHORS`, in its order) to its spec.
    """
    specs: dict[str, dict] = {}
    for name, (framework, mode) in ANCHORS.items():
        if framework == "torch":
            specs[name] = ({"framework": "torch", "mode": mode, "zoo": source["zoo"],
                            "size": source.get("size", "small"),
                            "seed": int(source.get("seed", 0))} if source.get("zoo") else
                           {"unavailable": "not measured: the source is not a torch model"})
        else:
            specs[name] = ({"framework": "ort", "mode": mode, "file": onnx_path.name}
                           if onnx_path is not None else
                           {"unavailable": "not measured: no ONNX file (onnxruntime/onnxscript "
                                           "not installed, or the export failed)"})
    return specs


# --------------------------------------------------------------------------------------------
# the device side
_LOADED: dict[str, Any] = {}


def _cores() -> int:
    from tvm_sched.runtime.cores import num_cores

    return num_cores()


class _TorchAnchor:
    def __init__(self, spec: dict):
        import torch

        from tvm_sched.zoo import torch_model

        self.torch = torch
        self.threads = 1 if spec["mode"] == "1t" else _cores()
        self.model, _ = torch_model(spec["zoo"], int(spec["seed"]), size=spec["size"])
        self.inputs: list = []

    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        self.inputs = [self.torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]

    def run(self) -> list[np.ndarray]:
        from tvm_sched.relax.frontend import flatten_values

        self.torch.set_num_threads(self.threads)
        with self.torch.inference_mode():
            out = self.model(*self.inputs)
        return [t.numpy() for t in flatten_values(out)]

    def time(self, number: int) -> float:
        self.torch.set_num_threads(self.threads)
        with self.torch.inference_mode():
            t0 = time.perf_counter()
            for _ in range(number):
                self.model(*self.inputs)
            return (time.perf_counter() - t0) / number


class _OrtAnchor:
    def __init__(self, spec: dict):
        import onnxruntime as ort

        from tvm_sched.runtime.rpc import resolve_path

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if spec["mode"] == "parallel":
            opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
            opts.inter_op_num_threads = _cores()
            opts.intra_op_num_threads = 1
        else:
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.intra_op_num_threads = _cores()
        self.sess = ort.InferenceSession(resolve_path(spec["file"]), opts,
                                         providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.sess.get_inputs()]
        self.feed: dict[str, np.ndarray] = {}

    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        if len(arrays) != len(self.names):
            raise ValueError(f"the ONNX model takes {len(self.names)} inputs, got {len(arrays)}")
        self.feed = {n: np.ascontiguousarray(a) for n, a in zip(self.names, arrays, strict=True)}

    def run(self) -> list[np.ndarray]:
        return [np.asarray(o) for o in self.sess.run(None, self.feed)]

    def time(self, number: int) -> float:
        t0 = time.perf_counter()
        for _ in range(number):
            self.sess.run(None, self.feed)
        return (time.perf_counter() - t0) / number


def _load(name: str, spec_json: str) -> str:
    spec = json.loads(spec_json)
    what = {"torch": "torch", "ort": "onnxruntime"}[spec["framework"]]
    try:
        _LOADED[name] = (_TorchAnchor if spec["framework"] == "torch" else _OrtAnchor)(spec)
    except ImportError:
        return f"{what} is not installed on the device"
    except Exception as err:  # noqa: BLE001 - the reason goes back to the client as data
        return f"{what} could not load the model: {one_line(err, limit=200)}"
    return ""


def _run(name: str, index: int, *inputs):
    import tvm

    anchor = _LOADED[name]
    anchor.set_inputs([x.numpy() for x in inputs])
    outs = anchor.run()
    return tvm.runtime.tensor(np.ascontiguousarray(outs[int(index)]))


def _time(name: str, number: int) -> float:
    return float(_LOADED[name].time(max(1, int(number))))


def register() -> None:
    """Register :data:`LOAD`, :data:`RUN` and :data:`TIME` in this process (idempotent)."""
    import tvm_ffi

    tvm_ffi.register_global_func(LOAD, _load, override=True)
    tvm_ffi.register_global_func(RUN, _run, override=True)
    tvm_ffi.register_global_func(TIME, _time, override=True)


def forget() -> None:
    """Drop the anchors loaded in this process."""
    _LOADED.clear()


