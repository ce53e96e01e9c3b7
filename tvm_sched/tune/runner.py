"""Runners: where candidates are measured. One interface over TVM RPC sessions.

MetaSchedule's split is the model: the builder makes executables, a runner hands out device
sessions, the :class:`Measurer` runs the protocol on them. Every runner yields
``tvm.rpc`` sessions, so one code path measures everywhere:

- :class:`InProcessRunner`: ``rpc.LocalSession()`` in this process (tests, quick looks);
- :class:`ServerRunner`: one RPC server at ``host:port``;
- :class:`TrackerRunner`: every free device of a key on an RPC tracker (one session each;
  measurements are spread over them, one at a time per device); waits, showing the tracker's
  queue, up to a timeout when none is free;
- :class:`EmbeddedRunner`: the default; starts :class:`~tvm_sched.tune.server.EmbeddedServer`
  on 127.0.0.1 and restarts it when it dies.

Protocol (:class:`Measurer`), per device: upload the kernel library and the inputs once per
session; per candidate upload its executable and check its outputs against the reference before
anything is timed; one warm-up call each; then ``repeats`` rounds over the candidates in turn
(A B C A B C ...), so drift and noise on the machine hit all of them alike. A failure of one
candidate (build error, wrong outputs, a crash or a time-out) becomes that candidate's recorded
error; a lost session is reopened once (an embedded server is restarted) and the batch goes on
without the culprit; if reopening fails, :class:`~tvm_sched.errors.DeviceUnavailableError`
stops the run with the records so far kept.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from tvm import relax, rpc

from tvm_sched.errors import DeviceUnavailableError, TuneInputError, one_line
from tvm_sched.relax.frontend import flatten_values as _flatten
from tvm_sched.tune.builder import Built
from tvm_sched.tune.server import EmbeddedServer

__all__ = ["Runner", "InProcessRunner", "ServerRunner", "TrackerRunner", "EmbeddedRunner",
           "Measurer", "Measurement", "parse_address", "runner_from_args"]

log = logging.getLogger(__name__)


def parse_address(text: str, what: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``, or a :class:`TuneInputError` naming ``what``."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TuneInputError(f"{what} must be HOST:PORT, got {text!r}")
    return host, int(port)


def _reachable(host: str, port: int, what: str, verb: str, timeout: float = 5.0) -> None:
    """A TCP connection to ``host:port`` opens (and is closed again), or a
    :class:`DeviceUnavailableError` saying that it does not."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise DeviceUnavailableError(f"cannot {verb} {what} at {host}:{port}: "
                                     f"{err.strerror or err}") from None


# --------------------------------------------------------------------------------------------
# runners
class Runner:
    """Hands out RPC sessions, one per device."""

    #: Device key stored in records (same key = comparable measurements).
    key: str = "local"

    def check(self) -> None:
        """Fail fast when the devices cannot be reached at all (called before any work).

        Raises
        ------
        DeviceUnavailableError
            The server or tracker does not accept connections.
        """

    def prepare(self) -> None:
        """Start slow things early (the tuner calls this before proposing and building)."""

    def open(self) -> list[tuple[str, Any]]:
        """``(device name, rpc session)`` for every device to use."""
        raise NotImplementedError

    def reopen(self, name: str) -> Any:
        """A new session to device ``name`` after its session was lost (one try)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`open` started."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InProcessRunner(Runner):
    """``rpc.LocalSession`` in this process: the same code path as a server, no sockets."""

    key = "local"

    def open(self):
        return [("in-process", rpc.LocalSession())]

    def reopen(self, name):
        return rpc.LocalSession()


class ServerRunner(Runner):
    """One RPC server at ``host:port``."""

    def __init__(self, address: str | tuple[str, int], *, key: str | None = None,
                 session_timeout: float = 0):
        self.host, self.port = (parse_address(address, "--rpc-server")
                                if isinstance(address, str) else address)
        self.key = key or f"{self.host}:{self.port}"
        self.session_timeout = session_timeout

    def check(self) -> None:
        _reachable(self.host, self.port, "the RPC server", "connect to")

    def _connect(self):
        try:
            return rpc.connect(self.host, self.port, session_timeout=self.session_timeout)
        except Exception as err:  # noqa: BLE001 - TVM raises RuntimeError/TVMError/OSError
            raise DeviceUnavailableError(
                f"cannot connect to the RPC server at {self.host}:{self.port}: "
                f"{one_line(err, last=True, limit=200)}"
            ) from None

    def open(self):
        return [(f"{self.host}:{self.port}", self._connect())]

    def reopen(self, name):
        return self._connect()


class EmbeddedRunner(ServerRunner):
    """The default: an RPC server of our own on 127.0.0.1, restarted once per loss."""

    def __init__(self, *, lifetime: float = 3600.0):
        self.server = EmbeddedServer(lifetime=lifetime)
        self.key = "local"
        self.session_timeout = 0
        self.host, self.port = "127.0.0.1", None

    def check(self) -> None:
        """Nothing to reach yet: the server is started by :meth:`prepare`."""

    def prepare(self) -> None:
        if not self.server.alive():
            self.server.launch()

    def open(self):
        if not self.server.alive():
            self.server.stop()
            self.server.launch()
        self.server.wait_ready()
        self.host, self.port = self.server.address
        return [("embedded", self._connect())]

    def reopen(self, name):
        if self.server.alive():
            try:
                return self._connect()
            except DeviceUnavailableError:
                pass  # alive but not answering (or dying right now): restart it
        log.warning("the embedded RPC server stopped answering; restarting it")
        self.server.restart()
        self.host, self.port = self.server.address
        return self._connect()

    def close(self):
        self.server.stop()


class TrackerRunner(Runner):
    """Every free device of ``key`` on the tracker at ``host:port``."""

    def __init__(self, address: str | tuple[str, int], key: str, *, wait: float = 60.0,
                 min_devices: int = 1, max_devices: int | None = None,
                 status: Callable[[str], None] | None = None):
        if not key:
            raise TuneInputError("a tracker needs a device key (--rpc-key or TVM_TRACKER_KEY)")
        self.host, self.port = (parse_address(address, "--rpc-tracker")
                                if isinstance(address, str) else address)
        self.key = key
        self.wait = wait
        self.min_devices = max(1, int(min_devices))
        self.max_devices = max_devices
        self.status = status or (lambda text: log.info("%s", text))
        self._tracker = None

    def check(self) -> None:
        _reachable(self.host, self.port, "the RPC tracker", "reach")

    def _client(self):
        if self._tracker is None:
            try:
                self._tracker = rpc.connect_tracker(self.host, self.port)
            except Exception as err:  # noqa: BLE001
                raise DeviceUnavailableError(
                    f"cannot reach the RPC tracker at {self.host}:{self.port}: {err}") from None
        return self._tracker

    def free_devices(self) -> int:
        info = self._client().summary().get("queue_info", {})
        return int(info.get(self.key, {}).get("free", 0))

    def _wait_free(self, need: int = 1) -> int:
        t0 = time.monotonic()
        last = -1.0
        while True:
            free = self.free_devices()
            if free >= need:
                return free
            waited = time.monotonic() - t0
            if waited >= self.wait:
                what = "free device" if need == 1 else f"{need} free devices ({free} free)"
                raise DeviceUnavailableError(
                    f"no {what} with key {self.key!r} on the tracker at "
                    f"{self.host}:{self.port} after {self.wait:.0f} s")
            if waited - last >= 5 or last < 0:
                self.status(f"waiting for a free {self.key!r} device on {self.host}:{self.port}"
                            f" ({free}/{need} free, {waited:.0f}/{self.wait:.0f} s)")
                last = waited
            time.sleep(min(1.0, self.wait - waited))

    def _request(self):
        try:
            return self._client().request(self.key, priority=1, session_timeout=0)
        except Exception as err:  # noqa: BLE001
            raise DeviceUnavailableError(
                f"the tracker at {self.host}:{self.port} gave no {self.key!r} device: {err}"
            ) from None

    def open(self):
        free = self._wait_free(self.min_devices)
        if self.max_devices:
            free = min(free, self.max_devices)
        return [(f"{self.key}#{i}", self._request()) for i in range(free)]

    def reopen(self, name):
        self._wait_free()
        return self._request()


def runner_from_args(*, rpc_server: str | None = None, rpc_tracker: str | None = None,
                     rpc_key: str | None = None, in_process: bool = False,
                     tracker_wait: float = 60.0, min_devices: int = 1, status=None) -> Runner:
    """The runner a command line asks for; the tracker also from ``TVM_TRACKER_*``."""
    tracker = rpc_tracker
    if tracker is None and rpc_server is None and os.environ.get("TVM_TRACKER_HOST"):
        tracker = f"{os.environ['TVM_TRACKER_HOST']}:{os.environ.get('TVM_TRACKER_PORT', '9190')}"
    key = rpc_key or os.environ.get("TVM_TRACKER_KEY")
    if rpc_server and tracker:
        raise TuneInputError("give either --rpc-server or --rpc-tracker, not both")
    if in_process:
        return InProcessRunner()
    if rpc_server:
        return ServerRunner(rpc_server)
    if tracker:
        return TrackerRunner(tracker, key or "", wait=tracker_wait, min_devices=min_devices,
                             status=status)
    return EmbeddedRunner()


# --------------------------------------------------------------------------------------------
# measuring
@dataclass
class Measurement:
    """What measuring one candidate gave: latency samples (seconds) or an error."""

    index: int
    device: str
    samples: list[float] = field(default_factory=list)
    error: str | None = None
    check: float | None = None  # max abs difference to the reference outputs
    #: Samples of the anchor (TVM's order) interleaved in the same batch on the same device.
    anchor: list[float] | None = None


class SessionLost(Exception):
    """The device session stopped answering (crash, time-out, dropped connection)."""


def _short(err: BaseException) -> str:
    return one_line(err, last=True, with_type=True)


class _Device:
    """One RPC session with the kernels and inputs uploaded."""

    def __init__(self, name: str, sess, measurer: Measurer):
        self.name = name
        self.slug = "".join(c if c.isalnum() else "_" for c in name)
        self.sess = sess
        self.m = measurer
        self.pool = cf.ThreadPoolExecutor(1, thread_name_prefix=f"tvm-sched-{name}")
        self.kernels = None
        self.args: list = []
        self.dev = None
        self.uploads = 0

    def call(self, fn, *args, timeout: float | None = None):
        """Run ``fn(*args)`` on this device's thread; a time-out or a dead session -> lost."""
        fut = self.pool.submit(fn, *args)
        try:
            return fut.result(timeout=timeout or self.m.timeout)
        except cf.TimeoutError:
            raise SessionLost(f"timed out after {timeout or self.m.timeout:.0f} s") from None

    def alive(self) -> bool:
        try:
            self.call(lambda: tvm.runtime.tensor(np.zeros(1, "float32"), self.dev).numpy(),
                      timeout=10.0)
            return True
        except Exception:  # noqa: BLE001
            return False

    def setup(self) -> None:
        m = self.m
        self.dev = self.sess.device(m.device_type, 0)
        if m.kernel_path is not None:
            self.call(self.sess.upload, str(m.kernel_path), "tvm_sched_kernels.so")
            self.kernels = self.call(self.sess.load_module, "tvm_sched_kernels.so")
        self.args = self.call(lambda: [tvm.runtime.tensor(a, self.dev) for a in m.args])

    def load(self, built: Built, tag: str):
        if built.needs_kernels:
            # per device: with a tracker the anchor is written by several device threads at once
            path = self.m.tmp / f"{self.slug}-cand-{tag}.relaxvm"
            built.executable.mod.write_to_file(str(path))
            remote = f"tvm_sched_{tag}.relaxvm"
            self.call(self.sess.upload, str(path), remote)
            workpath = self.sess.get_function("tvm.rpc.server.workpath")
            load = self.sess.get_function("relax.ExecutableLoadFromFile")
            imp = self.sess.get_function("ffi.ModuleImportModule")

            def _load():
                exe = load(workpath(remote))
                imp(exe, self.kernels)
                return relax.VirtualMachine(exe, self.dev)
            vm = self.call(_load)
        else:
            path = self.m.tmp / f"{self.slug}-cand-{tag}.so"
            built.executable.export_library(str(path))
            self.call(self.sess.upload, str(path), f"tvm_sched_{tag}.so")
            vm = self.call(lambda: relax.VirtualMachine(
                self.sess.load_module(f"tvm_sched_{tag}.so"), self.dev))
        self.uploads += 1

        def _prepare():
            vm.set_input("main", *self.args)
            vm.invoke_stateful("main")
            return [np.asarray(o.numpy()) for o in _flatten(vm.get_outputs("main"))]
        return vm, self.call(_prepare)

    def time(self, vm) -> float:
        m = self.m

        def _t():
            f = vm.time_evaluator("invoke_stateful", self.dev, number=m.number, repeat=1,
                                  min_repeat_ms=int(m.min_repeat_ms))
            return float(f("main").results[0])
        return self.call(_t)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class Measurer:
    """Measures built candidates on a runner's devices (see the module docstring).

    Parameters
    ----------
    runner
        Where to measure.
    kernels
        The shared kernel library (``None`` when every candidate was fully compiled).
    args
        ``main``'s arguments (inputs, then transformed params) as numpy arrays.
    reference
        Expected outputs; a candidate is an error, not a timing, when an output's largest
        absolute difference from the reference exceeds ``rtol * max(1, largest |reference|)``
        (one tolerance: relative for large outputs, absolute ``rtol`` for outputs within
        [-1, 1]), or is not finite, or its count or shapes differ.
    """

    def __init__(self, runner: Runner, *, kernels: tvm.runtime.Module | None,
                 args: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                 device_type: str | int = "cpu", repeats: int = 10, number: int = 1,
                 min_repeat_ms: float = 10.0, timeout: float = 120.0, rtol: float = 1e-4,
                 batch: int = 16):
        self.runner = runner
        self.args = [np.asarray(a) for a in args]
        self.reference = [np.asarray(r) for r in reference]
        self.device_type = device_type
        self.repeats = repeats
        self.number = number
        self.min_repeat_ms = min_repeat_ms
        self.timeout = timeout
        self.rtol = rtol
        self.batch = batch
        self._tmpdir = tempfile.TemporaryDirectory(prefix="tvm_sched_")
        self.tmp = Path(self._tmpdir.name)
        self.kernel_path = None
        if kernels is not None:
            self.kernel_path = self.tmp / "kernels.so"
            kernels.export_library(str(self.kernel_path))
        self.devices: list[_Device] = []
        self.reconnects = 0
        self._lock = threading.Lock()

    # -- devices ------------------------------------------------------------------------------
    def open(self) -> list[str]:
        for name, sess in self.runner.open():
            d = _Device(name, sess, self)
            d.setup()
            self.devices.append(d)
        return [d.name for d in self.devices]

    def _reopen(self, d: _Device) -> None:
        with self._lock:
            self.reconnects += 1
        d.close()
        try:
            sess = self.runner.reopen(d.name)
            fresh = _Device(d.name, sess, self)
            fresh.setup()
        except DeviceUnavailableError:
            raise
        except Exception as err:  # noqa: BLE001
            raise DeviceUnavailableError(
                f"device {d.name} was lost and could not be reopened: {_short(err)}") from None
        d.__dict__.update(fresh.__dict__)

    def close(self) -> None:
        for d in self.devices:
            d.close()
        self.devices = []
        self._tmpdir.cleanup()

    # -- protocol -----------------------------------------------------------------------------
    def _check(self, outs: list[np.ndarray]) -> tuple[float, str | None]:
        if len(outs) != len(self.reference):
            return float("inf"), (f"{len(outs)} outputs, the reference has "
                                  f"{len(self.reference)}")
        worst = 0.0
        for o, r in zip(outs, self.reference, strict=True):
            if o.shape != r.shape:
                return float("inf"), f"output shape {o.shape} != reference {r.shape}"
            diff = float(np.max(np.abs(o.astype(np.float64) - r))) if o.size else 0.0
            worst = max(worst, diff)
            scale = float(np.max(np.abs(r))) if r.size else 0.0
            if not np.isfinite(diff) or diff > self.rtol * max(scale, 1.0):
                return diff, f"outputs differ from the reference (max abs diff {diff:.3g})"
        return worst, None

    def _batch(self, d: _Device, items: list[tuple[int, Built, str]],
               done: Callable[[Measurement], None], anchor: int | None = None,
               report_anchor: bool = True) -> None:
        """Measure ``items`` (index, built, tag) on device ``d``; every item ends in ``done``.

        ``anchor`` is the index of an item (TVM's order) whose samples are attached to every
        other item of the batch: the same device, the same interleaved rounds. When
        ``report_anchor`` is false it is measured only for that and not passed to ``done``.
        """
        recorded: set[int] = set()

        def record(meas: Measurement) -> None:
            recorded.add(meas.index)
            if meas.index != anchor or report_anchor:
                done(meas)

        pending = list(items)
        while pending:
            loaded: list[tuple[int, Any, Measurement]] = []
            current = None
            try:
                for idx, built, tag in pending:
                    meas = Measurement(idx, d.name)
                    if built.error is not None:
                        meas.error = f"build failed: {built.error}"
                        record(meas)
                        continue
                    current = idx
                    try:
                        vm, outs = d.load(built, tag)
                    except SessionLost:
                        raise
                    except Exception as err:  # noqa: BLE001
                        if not d.alive():
                            raise SessionLost(_short(err)) from None
                        meas.error = f"load/run failed: {_short(err)}"
                        record(meas)
                        continue
                    meas.check, bad = self._check(outs)
                    if bad:
                        meas.error = bad
                        record(meas)
                        continue
                    loaded.append((idx, vm, meas))
                for idx, vm, _ in loaded:  # warm-up
                    current = idx
                    d.time(vm)
                for _ in range(self.repeats):
                    for idx, vm, meas in loaded:  # interleaved: A B C A B C ...
                        current = idx
                        meas.samples.append(d.time(vm))
                ref = next((m for i, _, m in loaded if i == anchor), None)
                for _, _, meas in loaded:
                    if ref is not None:
                        meas.anchor = list(ref.samples)
                    record(meas)
                return
            except Exception as err:  # noqa: BLE001 - any failure here loses the session
                if current is None:
                    raise
                why = str(err) if isinstance(err, SessionLost) else _short(err)
                log.warning("device %s lost at candidate %d: %s", d.name, current, why)
                record(Measurement(current, d.name, error=f"device session lost: {why}"))
                self._reopen(d)
                pending = [p for p in pending if p[0] not in recorded]

    def measure(self, items: Sequence[tuple[int, Built, str]],
                done: Callable[[Measurement], None],
                anchor: tuple[int, Built, str] | None = None) -> None:
        """Measure every item, spread over the devices; ``done`` gets each result once.

        With ``anchor`` (TVM's order), every batch on every device also measures it, and each
        result carries the anchor's samples from its own batch: medians from different devices
        or batches are compared through their ratio to the anchor, not directly.

        Raises
        ------
        DeviceUnavailableError
            A device was lost and could not be reopened.
        """
        if not self.devices:
            self.open()
        lock = threading.Lock()
        seen: set[int] = set()

        def once(meas: Measurement) -> None:
            with lock:
                if meas.index in seen:
                    return
                seen.add(meas.index)
                done(meas)

        shares: list[list] = [[] for _ in self.devices]
        for k, item in enumerate(items):
            shares[k % len(self.devices)].append(item)

        def work(d: _Device, share: list) -> None:
            for s in range(0, len(share), self.batch):
                chunk = list(share[s:s + self.batch])
                if anchor is None:
                    self._batch(d, chunk, once)
                elif any(i == anchor[0] for i, _, _ in chunk):
                    self._batch(d, chunk, once, anchor[0], True)
                else:
                    self._batch(d, [anchor, *chunk], once, anchor[0], False)

        if len(self.devices) == 1:
            work(self.devices[0], shares[0])
            return
        with cf.ThreadPoolExecutor(len(self.devices)) as ex:
            futs = [ex.submit(work, d, sh) for d, sh in zip(self.devices, shares, strict=True)]
            for f in futs:
                f.result()
