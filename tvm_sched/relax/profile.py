"""Measured kernel durations, for operator graphs whose ``duration`` should be real.

:func:`profile_kernels` returns seconds per kernel (by the name the bytecode calls it):

- locally (no ``session``), through the Relax VM's instrument hook: ``main`` runs on the given
  ``inputs`` (random ones otherwise, :func:`random_args`) and a callback stamps the time before
  and after every kernel call, so each kernel is timed where it runs, between its real
  neighbours; the median over ``repeat`` runs is kept;
- on an RPC session (a device of :mod:`tvm_sched.tune`), kernel by kernel: the module's TIR
  functions are built into one library, uploaded once, and each function is timed with the
  runtime's ``time_evaluator`` on random arguments of its buffer shapes on the remote device.
  Functions with non-buffer parameters cannot be called that way and are left out.

Feed the result to :func:`tvm_sched.relax.extract.extract` as ``kernel_times=``; kernels it does
not name keep the roofline estimate.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

__all__ = ["profile_kernels", "random_args", "time_calls"]


def _random(shape, dtype: str, rng: np.random.Generator) -> np.ndarray:
    if dtype.startswith(("int", "uint")):
        # integer tensors are mostly indices (token ids, token types, gather positions): only 0
        # is valid for every axis, and TVM's ``take`` reads out of bounds without a check
        return np.zeros(shape, dtype=dtype)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return rng.standard_normal(shape).astype(dtype)


def random_args(func: relax.Function, rng: np.random.Generator, count: int | None = None
                ) -> list[np.ndarray]:
    """Random arguments for the first ``count`` (default: all) parameters of ``func``.

    The one generator of model inputs (the profiler and the tuner): floats N(0, 1), integers
    0 (the one index valid for every non-empty axis: a one-row token-type table, a select of
    element 0; TVM's ``take`` does not check its indices), booleans fair coins.

    Parameters
    ----------
    func
        The Relax function whose parameters are drawn for.
    rng
        The generator every draw comes from.
    count
        How many leading parameters to draw for; ``None``: all.

    Returns
    -------
    list of numpy.ndarray
        One array per parameter, of its shape and dtype.

    Raises
    ------
    ValueError
        A parameter is not a tensor of static shape (the message names it).
    """
    return _random_params(list(func.params)[:count], rng)


def _random_params(params, rng: np.random.Generator) -> list[np.ndarray]:
    args = []
    for p in params:
        ty = p.ty  # TVM 0.27: ``ty`` and ``name`` (no ``struct_info``/``name_hint`` on Relax vars)
        if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr) \
                or not all(isinstance(d, tvm.tirx.IntImm) for d in ty.shape.values):
            raise ValueError(f"parameter {p.name} of the function is not a tensor of static "
                             f"shape ({ty})")
        args.append(_random([int(d) for d in ty.shape.values], str(ty.dtype), rng))
    return args


def _main_args(mod: tvm.IRModule, func: str, rng: np.random.Generator,
               inputs: Sequence[np.ndarray] = ()) -> list[np.ndarray]:
    params = list(mod[func].params)
    if len(inputs) > len(params):
        raise ValueError(f"{func}: {len(inputs)} inputs given; it takes {len(params)} "
                         "parameters")
    try:
        rest = _random_params(params[len(inputs):], rng)
    except ValueError as err:
        raise ValueError(f"{func}: {err}") from None
    return [np.asarray(x) for x in inputs] + rest


def _kernel_names(mod: tvm.IRModule) -> set[str]:
    return {gv.name_hint for gv, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc)}


def time_calls(vm, func: str, args, kernels: set[str], repeat: int
               ) -> list[list[tuple[str, float]]]:
    """``repeat`` runs of ``vm[func](*args)`` under the VM's instrument hook (left set): per
    run, ``(kernel, seconds)`` for every call of a kernel in ``kernels``, in program order.

    Parameters
    ----------
    vm
        A ``relax.VirtualMachine``.
    func, args
        The function to run and its arguments (tensors on the VM's device).
    kernels
        Names of the kernels to time (other calls are not stamped).
    repeat
        Runs.

    Returns
    -------
    list of list of (str, float)
        One list per run.
    """
    runs: list[list[tuple[str, float]]] = []
    started: dict[str, float] = {}

    def instrument(fn, symbol, before_run, ret, *call_args):
        name = str(symbol)
        if name in kernels:
            if before_run:
                started[name] = time.perf_counter()
            else:
                runs[-1].append((name, time.perf_counter() - started.pop(name)))
        return 0  # VMInstrumentReturnKind.NO_OP: go on

    vm.set_instrument(instrument)
    for _ in range(repeat):
        runs.append([])
        vm[func](*args)
    return runs


def _profile_vm(mod, target, func: str, repeat: int, seed: int,
                inputs: Sequence[np.ndarray]) -> dict[str, float]:
    host_args = _main_args(mod, func, np.random.default_rng(seed), inputs)  # before building
    ex = tvm.compile(mod, target)
    dev = tvm.cpu()
    vm = relax.VirtualMachine(ex, dev)
    args = [tvm.runtime.tensor(a, dev) for a in host_args]
    vm[func](*args)  # warm-up, outside the hook
    samples: dict[str, list[float]] = defaultdict(list)
    for run in time_calls(vm, func, args, _kernel_names(mod), repeat):
        for name, sec in run:
            samples[name].append(sec)
    return {k: float(np.median(v)) for k, v in samples.items()}


def _profile_remote(mod, target, session, number: int, repeat: int, seed: int
                    ) -> dict[str, float]:
    from tvm.relax import vm_build

    with target:
        low = relax.get_pipeline("default")(mod)
    tir = vm_build._filter_tir(low)
    if tir is None:
        return {}
    lib = tvm.tirx.build(tir, target=target)
    rng = np.random.default_rng(seed)
    dev = session.device(target.get_target_device_type(), 0)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tvm_sched_profile_") as tmp:
        path = Path(tmp) / "kernels.so"
        lib.export_library(str(path))
        session.upload(str(path), "tvm_sched_profile.so")
        rlib = session.load_module("tvm_sched_profile.so")
        for gv, f in tir.functions.items():
            if not isinstance(f, tvm.tirx.PrimFunc):
                continue
            # TVM 0.27: buffer parameters are Vars of BufferType (shape and dtype on the Var)
            if not all(isinstance(p.ty, tvm.tirx.buffer.BufferType) for p in f.params):
                continue  # a scalar parameter: not callable on random buffers
            try:
                shapes = [([int(d) for d in p.shape], str(p.dtype)) for p in f.params]
            except (TypeError, ValueError):
                continue  # symbolic shape
            args = [tvm.runtime.tensor(_random(s, d, rng), dev) for s, d in shapes]
            timer = rlib.time_evaluator(gv.name_hint, dev, number=number, repeat=repeat)
            out[gv.name_hint] = float(timer(*args).median)
    return out


def profile_kernels(mod: tvm.IRModule, target: str | tvm.target.Target = "llvm", *,
                    session=None, func: str = "main", number: int = 5, repeat: int = 5,
                    seed: int = 0, inputs: Sequence[np.ndarray] = ()) -> dict[str, float]:
    """Seconds per kernel of a fused module (see the module docstring).

    Parameters
    ----------
    mod
        A fused Relax module (:func:`tvm_sched.relax.frontend.prepare`).
    target
        Build target.
    session
        An RPC session (``tvm.rpc.connect(...)``, a tracker's ``request(...)``,
        ``rpc.LocalSession()``) to time each kernel on its device; ``None``: run ``func``
        locally through the VM instrument hook.
    number, repeat
        Calls per timing and timings (remote); runs of ``func`` (local: ``repeat``).
    inputs
        Locally: the arguments of ``func``'s leading parameters (a model's real inputs, so that
        each kernel is timed on the data it really receives); the others are
        :func:`random_args`.

    Returns
    -------
    dict
        Kernel name -> median seconds.

    Raises
    ------
    ValueError
        Locally: a parameter of ``func`` without an input is not a tensor of static shape, or
        more inputs than parameters are given (checked before building).
    """
    target = target if isinstance(target, tvm.target.Target) else tvm.target.Target(target)
    if session is None:
        return _profile_vm(mod, target, func, repeat, seed, inputs)
    return _profile_remote(mod, target, session, number, repeat, seed)
