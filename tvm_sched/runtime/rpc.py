"""Lane modules over TVM RPC: the server side registers global functions, the client uploads.

Contract
--------
:func:`register` (called by the tvm_sched RPC server, :mod:`tvm_sched.tune.server`, at start)
registers in the calling process:

- ``tvm_sched.runtime.time_exported(path, number, repeat, engine, allow_oversubscribe)`` ->
  median seconds of one run of the exported lane module at ``path`` (a name in the RPC
  server's work directory, as ``session.upload`` left it, or an absolute path), timed by
  :meth:`~tvm_sched.runtime.module.LaneModule.time` on the server's CPU;
- ``tvm_sched.runtime.run_exported(path, index, *inputs)`` -> output ``index`` of one run on
  ``inputs`` (tensors on the server's device).

Loaded modules are cached per path (and file modification time) in the serving process, so a
timing after a run reuses the lane threads. Errors reach the client as TVM RPC errors carrying
the message. The client helpers :func:`time_remote` and :func:`run_remote` upload a module
(a :class:`LaneModule` is exported first) and call them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["register", "time_remote", "run_remote", "TIME_FUNC", "RUN_FUNC"]

TIME_FUNC = "tvm_sched.runtime.time_exported"
RUN_FUNC = "tvm_sched.runtime.run_exported"

_CACHE: dict[tuple[str, str, bool], tuple[float, object]] = {}


def _resolve(path: str) -> str:
    if os.path.isabs(path):
        return path
    import tvm

    workpath = tvm.get_global_func("tvm.rpc.server.workpath", allow_missing=True)
    return workpath(path) if workpath is not None else os.path.abspath(path)


def _loaded(path: str, engine: str = "auto", allow_oversubscribe: bool = True):
    from tvm_sched.runtime.module import load

    full = _resolve(path)
    mtime = os.path.getmtime(full)
    key = (full, engine, bool(allow_oversubscribe))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    if hit is not None:
        hit[1].close()
    mod = load(full, "cpu", engine=engine, allow_oversubscribe=allow_oversubscribe)
    _CACHE[key] = (mtime, mod)
    return mod


def _time_exported(path, number, repeat, engine="auto", allow_oversubscribe=True) -> float:
    mod = _loaded(str(path), str(engine), bool(allow_oversubscribe))
    return float(mod.time(int(number), int(repeat)))


def _run_exported(path, index, *inputs):
    import tvm

    mod = _loaded(str(path))
    outs = mod(*[x.numpy() if hasattr(x, "numpy") else np.asarray(x) for x in inputs])
    return tvm.runtime.tensor(outs[int(index)], tvm.cpu(0))


def register() -> None:
    """Register :data:`TIME_FUNC` and :data:`RUN_FUNC` in this process (idempotent)."""
    import tvm_ffi

    tvm_ffi.register_global_func(TIME_FUNC, _time_exported, override=True)
    tvm_ffi.register_global_func(RUN_FUNC, _run_exported, override=True)


def _upload(session, module, name: str) -> str:
    if isinstance(module, (str, Path)):
        session.upload(str(module), name)
        return name
    with tempfile.TemporaryDirectory(prefix="tvm_sched_lanes_") as tmp:
        path = module.export(Path(tmp) / name)
        session.upload(str(path), name)
    return name


def time_remote(session, module, *, number: int = 10, repeat: int = 5, engine: str = "auto",
                allow_oversubscribe: bool = False, name: str = "tvm_sched_lanes.tar") -> float:
    """Upload ``module`` (a LaneModule or an exported file) and time it on the server.

    Parameters
    ----------
    session
        A TVM RPC session to a server that ran :func:`register`.
    module
        A :class:`~tvm_sched.runtime.module.LaneModule` (exported first) or the path of an
        exported one.
    number, repeat
        As for :meth:`~tvm_sched.runtime.module.LaneModule.time`.
    engine, allow_oversubscribe
        How the server loads the module.
    name
        The file name in the server's work directory.

    Returns
    -------
    float
        Median seconds of one run on the server's CPU.
    """
    name = _upload(session, module, name)
    func = session.get_function(TIME_FUNC)
    return float(func(name, number, repeat, engine, allow_oversubscribe))


def run_remote(session, module, inputs: Sequence, *, num_outputs: int | None = None,
               name: str = "tvm_sched_lanes.tar") -> list[np.ndarray]:
    """Upload ``module`` and run it once on the server on ``inputs``; the outputs as numpy.

    ``num_outputs`` defaults to the module's (a :class:`LaneModule` knows it).

    Parameters
    ----------
    session
        A TVM RPC session to a server that ran :func:`register`.
    module
        A :class:`~tvm_sched.runtime.module.LaneModule` or the path of an exported one.
    inputs
        Array-likes, one per input of the module.
    num_outputs
        Outputs to fetch; required when ``module`` is a path.
    name
        The file name in the server's work directory.

    Returns
    -------
    list of numpy.ndarray
        The outputs, copied back from the server.
    """
    import tvm

    if num_outputs is None:
        num_outputs = len(module.plan.outputs)
    name = _upload(session, module, name)
    func = session.get_function(RUN_FUNC)
    dev = session.cpu(0)
    args = [tvm.runtime.tensor(np.asarray(x), dev) for x in inputs]
    return [func(name, k, *args).numpy() for k in range(num_outputs)]
