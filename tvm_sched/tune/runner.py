"""Measuring VM orders on the devices (:class:`Measurer`); the device sources live one per module
in :mod:`tvm_sched.tune.devices` (``create_devices(kind)``) and are re-exported here.

MetaSchedule's split is the model: the builder makes executables, a device source hands out
sessions, the :class:`Measurer` runs the protocol on them. Every source yields ``tvm.rpc``
sessions (in-process, server, tracker, embedded), so one code path measures everywhere.

Protocol (:class:`Measurer`), per device: upload the kernel library and the inputs once per
session; per candidate upload its executable and check its outputs against the reference before
anything is timed; one warm-up call each; then ``repeats`` rounds over the candidates in turn
(A B C A B C ...), so drift and noise on the machine hit all of them alike. A failure of one
candidate (build error, wrong outputs, a crash or a time-out) becomes that candidate's recorded
error; a lost session is reopened once (an embedded server is restarted) and the batch goes on
without the culprit; if reopening fails, :class:`~tvm_sched.errors.DeviceUnavailableError`
stops the run with the records so far kept.

:class:`OrderRunner` is the runner :func:`tvm_sched.tune.objective.search` takes: a
:class:`Measurer` per round, opened only when something is to be measured, its
:class:`Measurement` results told as :class:`~tvm_sched.tune.record.MeasureResult`.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from tvm import relax

from tvm_sched.errors import DeviceUnavailableError, one_line
from tvm_sched.relax.frontend import flatten_values as _flatten
from tvm_sched.tune.builder import Built
from tvm_sched.tune.devices import (  # one device source per module; re-exported here
    Devices,
    EmbeddedDevices,
    InProcessDevices,
    ServerDevices,
    TrackerDevices,
    create_devices,
    devices_from_args,
    parse_address,
)
from tvm_sched.tune.measure import compare_outputs, deal, serialised, spread
from tvm_sched.tune.record import MeasureResult

__all__ = ["Devices", "InProcessDevices", "ServerDevices", "TrackerDevices", "EmbeddedDevices",
           "Measurer", "Measurement", "OrderRunner", "parse_address", "devices_from_args",
           "create_devices"]

log = logging.getLogger(__name__)

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
        #: Outputs of the anchor on this device (the reference when none is given).
        self.reference: list[np.ndarray] | None = None

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
        [-1, 1]), or is not finite, or its count or shapes differ. ``None``: the reference is
        computed on each measured device, as the outputs of the anchor (TVM's order) there,
        which :meth:`measure` then requires.
    device_type
        The device to run on in each session (``"cpu"`` or a device type code).
    repeats
        Interleaved rounds over the candidates after the warm-up.
    number
        Runs per timed sample (the sample is their mean).
    min_repeat_ms
        The least milliseconds one sample takes (``number`` grows to reach it).
    timeout
        Seconds one device call may take before its session counts as lost.
    rtol
        The output tolerance (see ``reference``).
    batch
        Candidates measured in one interleaved batch on a device.
    """

    def __init__(self, runner: Devices, *, kernels: tvm.runtime.Module | None,
                 args: Sequence[np.ndarray], reference: Sequence[np.ndarray] | None,
                 device_type: str | int = "cpu", repeats: int = 10, number: int = 1,
                 min_repeat_ms: float = 10.0, timeout: float = 120.0, rtol: float = 1e-4,
                 batch: int = 16):
        self.runner = runner
        self.args = [np.asarray(a) for a in args]
        self.reference = (None if reference is None
                          else [np.asarray(r) for r in reference])
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
        """Open the runner's sessions and upload the kernels and arguments to each.

        Returns
        -------
        list of str
            The names of the devices opened.
        """
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
        fresh.reference = d.reference  # the same device, restarted: its outputs stay valid
        d.__dict__.update(fresh.__dict__)

    def close(self) -> None:
        for d in self.devices:
            d.close()
        self.devices = []
        self._tmpdir.cleanup()

    # -- protocol -----------------------------------------------------------------------------
    def _check(self, outs: list[np.ndarray], reference=None) -> tuple[float, str | None]:
        reference = self.reference if reference is None else reference
        if reference is None:
            return float("inf"), "no reference outputs on this device (TVM's order failed)"
        return compare_outputs(outs, reference, self.rtol)

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

        # the anchor first: without a given reference its outputs here are the reference
        pending = sorted(items, key=lambda it: it[0] != anchor)
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
                    if self.reference is None and idx == anchor and d.reference is None:
                        d.reference = outs  # TVM's order on this device defines correct
                    meas.check, bad = self._check(outs, d.reference)
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

        Parameters
        ----------
        items
            (index, :class:`Built`, tag) triples; the index names the item in its
            :class:`Measurement`, the tag its files on the device.
        done
            Called once per item with its :class:`Measurement` (from the devices' threads).
        anchor
            TVM's order as such a triple; required when there are no ``reference`` outputs.

        Raises
        ------
        ValueError
            When there are neither ``reference`` outputs nor an ``anchor``.
        DeviceUnavailableError
            A device was lost and could not be reopened.
        """
        if self.reference is None and anchor is None:
            raise ValueError("measuring without reference outputs needs an anchor (TVM's "
                             "order), whose outputs on each device are the reference")
        if not self.devices:
            self.open()
        seen: set[int] = set()

        def first(meas: Measurement) -> None:
            if meas.index not in seen:
                seen.add(meas.index)
                done(meas)
        once = serialised(first)

        def work(d: _Device, share: list) -> None:
            for s in range(0, len(share), self.batch):
                chunk = list(share[s:s + self.batch])
                if anchor is None:
                    self._batch(d, chunk, once)
                elif any(i == anchor[0] for i, _, _ in chunk):
                    self._batch(d, chunk, once, anchor[0], True)
                else:
                    self._batch(d, [anchor, *chunk], once, anchor[0], False)

        spread(self.devices, deal(list(items), len(self.devices)), work)


class OrderRunner:
    """:func:`~tvm_sched.tune.objective.search`'s runner for VM orders (see the module
    docstring). ``options`` are :class:`Measurer`'s, but ``reference``: each device's run of
    the anchor (TVM's order, in every batch) is the reference there.

    Parameters
    ----------
    runner
        Where to measure.
    **options
        :class:`Measurer`'s keyword arguments (``kernels`` and ``args`` among them), but
        ``reference``.

    Attributes
    ----------
    reconnects
        Sessions reopened over every round so far.
    """

    def __init__(self, runner: Devices, **options):
        self.runner = runner
        self.options = options
        self.reconnects = 0

    def measure(self, built: Sequence[tuple[Any, Built]], anchor: tuple[Any, Built],
                done: Callable[[MeasureResult], None]) -> None:
        """Measure ``built`` ((candidate, :class:`Built`) pairs) with ``anchor`` in every
        batch; ``done`` gets each candidate's result once (the anchor's only when it is among
        ``built``).

        Parameters
        ----------
        built
            (candidate, :class:`Built`) pairs to measure.
        anchor
            TVM's order as a (candidate, :class:`Built`) pair.
        done
            Called once per candidate of ``built`` with its
            :class:`~tvm_sched.tune.record.MeasureResult`.

        Raises
        ------
        DeviceUnavailableError
            A device was lost and could not be reopened.
        """
        cands = dict(enumerate(c for c, _ in built))
        items = [(i, b, f"{i}-{c.hash}") for i, (c, b) in enumerate(built)]
        mine = next((it for it in items if cands[it[0]].hash == anchor[0].hash), None)
        if mine is None:  # measured in an earlier run: in every batch, not told
            cands[-1] = anchor[0]
            mine = (-1, anchor[1], "anchor")

        def tell(m: Measurement) -> None:
            done(MeasureResult(cands[m.index].hash, m.device, list(m.samples),
                               list(m.anchor or []), m.check, m.error))

        measurer = Measurer(self.runner, reference=None, **self.options)
        try:
            measurer.measure(items, tell, anchor=mine)
        finally:
            self.reconnects += measurer.reconnects
            measurer.close()
