"""The runner role: one protocol that measures every kind of candidate on the devices
(:class:`InterleavedRunner`), and the per-kind adapters it calls; the device sources live one per
module in :mod:`tvm_sched.tune.devices` (``create_devices(kind)``) and are re-exported here.

MetaSchedule's split is the model: the builder makes executables, a device source hands out
sessions, the runner measures on them. Every source yields ``tvm.rpc`` sessions (in-process,
server, tracker, embedded), so one code path measures everywhere.

Protocol (:class:`InterleavedRunner`, the only place it is written)
--------------------------------------------------------------------
Candidates are dealt round-robin over the devices, which measure at the same time, in batches
of ``batch`` (all of a device's share when ``None``). Every batch holds the *anchor* (TVM's
order, the Relax VM), loaded first: without reference outputs its outputs on the device are the
reference there, and its samples from the same rounds go with every result of the batch; its
own result is reported only where it is one of the items. Per batch: each candidate is loaded
and run once, its outputs checked against the reference before anything is timed (one
tolerance: ``rtol * max(1, largest |reference|)``; a kind may loosen it per candidate); one
warm-up call each (the first one, the anchor's, sizes the samples where the kind does so); then
``repeats`` rounds over the candidates in turn (A B C A B C ...), so drift and noise on the
machine hit all of them alike. A failure of one candidate (build error, wrong outputs, a crash,
a time-out) is its result, reported at once: ``"build failed: ..."``, ``"load/run failed:
..."``, ``"warm-up failed: ..."``, ``"timing failed: ..."``; a device lost while a candidate was
loaded records ``"device session lost: ..."`` for it. Every device call has a time limit; one
that does not answer in time, or a device that is gone after a failure, is *lost*: the session is
reopened once per stage (``measure``, ``profile``; an embedded server is restarted) and the
batch's candidates not yet reported are measured again there, anchored anew. A second loss, a
loss without a way to reopen, or a reopen that fails raises
:class:`~tvm_sched.errors.DeviceUnavailableError` with the results so far reported.

Per kind (a :class:`SessionAdapter` per device session): how a candidate is loaded and run for
its outputs (:meth:`SessionAdapter.load`), how it is timed (:meth:`SessionAdapter.time`) and how
many runs make one sample (:meth:`SessionAdapter.sample_runs`). :class:`OrderAdapter` does VM
orders (the kernel library and ``main``'s arguments uploaded once per session, a VM executable
per candidate, timed by TVM's ``time_evaluator`` with ``min_repeat_ms``);
:class:`~tvm_sched.tune.lane_runner.LaneAdapter` the Relax VM, lane plans and the PyTorch /
ONNX Runtime anchors (samples sized from the VM's warm-up), and the kernel profile.

:class:`Measurer` (VM orders on a device source, by item index) and :class:`OrderRunner` (the
runner :func:`tvm_sched.tune.objective.search` takes for VM orders: a :class:`Measurer` per
round) are thin wrappers over it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tvm_sched.errors import DeviceUnavailableError, one_line
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
from tvm_sched.tune.session import NotMeasured, SessionAdapter, SessionLost

__all__ = ["Devices", "InProcessDevices", "ServerDevices", "TrackerDevices", "EmbeddedDevices",
           "InterleavedRunner", "SessionAdapter", "OrderAdapter", "Measurer", "Measurement",
           "OrderRunner", "SessionLost", "NotMeasured", "parse_address", "devices_from_args",
           "create_devices"]

log = logging.getLogger(__name__)

#: An item the runner measures: (key, built, tag). The key names it in its
#: :class:`Measurement`; ``built`` has an ``error`` (``None`` when it built); the tag is what the
#: adapter needs to load it (a file tag for VM orders, the candidate for lanes).
Item = tuple[Any, Any, Any]


@dataclass
class Measurement:
    """What measuring one candidate gave: latency samples (seconds) or an error.

    Parameters
    ----------
    index
        The item's key.
    device
        The device that measured it.
    samples
        Seconds per run, one per round.
    error
        Why there are no samples.
    check
        Largest absolute difference of its outputs from the reference.
    anchor
        The anchor's samples from the same batch on the same device.
    """

    index: Any
    device: str
    samples: list[float] = field(default_factory=list)
    error: str | None = None
    check: float | None = None  # max abs difference to the reference outputs
    #: Samples of the anchor (TVM's order) interleaved in the same batch on the same device.
    anchor: list[float] | None = None

    def result(self) -> MeasureResult:
        """This measurement as the record layer's :class:`~tvm_sched.tune.record.MeasureResult`
        (``index`` is the candidate's hash).

        Returns
        -------
        MeasureResult
        """
        return MeasureResult(self.index, self.device, list(self.samples),
                             list(self.anchor or []), self.check, self.error)


def _short(err: BaseException) -> str:
    return one_line(err, last=True, with_type=True)


# --------------------------------------------------------------------------------------------
# the protocol
def _settle(s: SessionAdapter, handle) -> None:
    """Wait as long as the adapter says a sample of ``handle`` leaves spinning threads behind
    (:meth:`SessionAdapter.settle_after`), so they do not slow the next candidate's sample."""
    pause = s.settle_after(handle)
    if pause > 0:
        time.sleep(pause)


class InterleavedRunner:
    """The one runner: measures items on several device sessions in interleaved rounds (see
    the module docstring); the sessions' adapters load, run and time each kind.

    Parameters
    ----------
    sessions
        One :class:`SessionAdapter` per device.
    repeats
        Interleaved rounds over a batch after the warm-up.
    rtol
        The output tolerance (see the module docstring; an adapter may loosen it per
        candidate).
    reference
        Expected outputs; ``None``: the anchor's outputs on each device are the reference
        there (an anchor is then required).
    batch
        Candidates measured in one interleaved batch on a device (``None``: a device's whole
        share).
    """

    def __init__(self, sessions: Sequence[SessionAdapter], *, repeats: int = 10,
                 rtol: float = 1e-4, reference: Sequence[np.ndarray] | None = None,
                 batch: int | None = None):
        self.sessions = list(sessions)
        self.repeats = repeats
        self.rtol = rtol
        self.reference = None if reference is None else [np.asarray(r) for r in reference]
        self.batch = batch

    @property
    def reconnects(self) -> int:
        """Sessions reopened after a loss, over every device."""
        return sum(s.reconnects for s in self.sessions)

    def measure(self, built: Sequence[tuple[Any, Any]], anchor: tuple[Any, Any],
                done: Callable[[MeasureResult], None]) -> None:
        """The runner :func:`~tvm_sched.tune.objective.search` takes: ``(candidate, built)``
        pairs keyed by the candidate's hash, the candidate being the adapter's tag.

        Parameters
        ----------
        built
            ``(candidate, built)`` pairs to measure.
        anchor
            The anchor's ``(candidate, built)`` pair (TVM's order, the Relax VM), in every
            batch; its result is reported only when it is among ``built``.
        done
            Called once per candidate of ``built`` with its
            :class:`~tvm_sched.tune.record.MeasureResult`, one thread at a time.

        Raises
        ------
        DeviceUnavailableError
            A device was lost and could not be reopened (the results told so far stand).
        """
        self.run([(c.hash, b, c) for c, b in built], lambda m: done(m.result()),
                 anchor=(anchor[0].hash, anchor[1], anchor[0]))

    def run(self, items: Sequence[Item], done: Callable[[Measurement], None],
            anchor: Item | None = None) -> None:
        """Measure every item, spread over the devices; ``done`` gets each result once.

        Parameters
        ----------
        items
            ``(key, built, tag)`` triples (:data:`Item`).
        done
            Called once per item with its :class:`Measurement`, one thread at a time.
        anchor
            The anchor as such a triple, measured in every batch; required without a
            ``reference``.

        Raises
        ------
        ValueError
            When there are neither ``reference`` outputs nor an ``anchor``.
        DeviceUnavailableError
            A device was lost and could not be reopened (the results told so far stand).
        """
        if self.reference is None and anchor is None:
            raise ValueError("measuring without reference outputs needs an anchor (TVM's "
                             "order), whose outputs on each device are the reference")
        seen: set = set()

        def first(meas: Measurement) -> None:
            if meas.index not in seen:
                seen.add(meas.index)
                done(meas)

        once = serialised(first)
        key = None if anchor is None else anchor[0]
        rest = [it for it in items if anchor is None or it[0] != key]
        shares = deal(rest, len(self.sessions))
        if len(rest) < len(items):  # the anchor's own result comes from the first device
            shares[0].insert(0, next(it for it in items if it[0] == key))
        spread(self.sessions, shares, lambda s, share: self._share(s, share, anchor, once))

    def _share(self, s: SessionAdapter, share: Sequence[Item], anchor: Item | None,
               done: Callable[[Measurement], None]) -> None:
        """One device's share, batch by batch."""
        size = self.batch or max(1, len(share))
        for start in range(0, len(share), size):
            self._reopening(s, list(share[start:start + size]), anchor, done)

    def _reopening(self, s: SessionAdapter, chunk: list[Item], anchor: Item | None,
                   done: Callable[[Measurement], None]) -> None:
        """One batch; a lost device is reopened once and the batch's items not yet reported
        are measured again there."""
        told: set = set()

        def tell(meas: Measurement) -> None:
            told.add(meas.index)
            done(meas)

        try:
            self._batch(s, chunk, anchor, tell)
        except DeviceUnavailableError as err:
            s.restart("measure", err)
            todo = [it for it in chunk if it[0] not in told]
            if todo:
                self._batch(s, todo, anchor, tell)

    def _batch(self, s: SessionAdapter, todo: list[Item], anchor: Item | None,
               tell: Callable[[Measurement], None]) -> None:
        """Load and check ``todo`` with the anchor first, then warm up and time the rounds."""
        key = None if anchor is None else anchor[0]
        items = sorted(todo, key=lambda it: it[0] != key)
        if anchor is not None and items[0][0] != key:  # in the batch only for its samples
            items.insert(0, anchor)
            tell = _all_but(key, tell)
        loaded = self._load(s, items, key, tell)
        self._rounds(s, loaded, key, tell)

    def _load(self, s: SessionAdapter, items: list[Item], key,
              tell: Callable[[Measurement], None]) -> list[tuple[Any, Measurement]]:
        """Each item loaded and run once, its outputs checked; the ones to time come back."""
        loaded = []
        for k, built, tag in items:
            meas = Measurement(k, s.name)
            ref = self.reference if self.reference is not None else s.reference
            if built.error is not None:
                meas.error = f"build failed: {built.error}"
            elif ref is None and k != key:
                meas.check = float("inf")
                meas.error = "not measured: no reference outputs on this device (the anchor failed)"
            else:
                got = self._step(s, meas, "load/run", s.load, built, tag, tell=tell)
                if got is None:
                    continue  # told
                handle, outs = got
                outs = [np.asarray(o) for o in outs]
                if ref is None:  # the anchor on this device defines correct
                    s.reference = ref = outs
                rtol = s.tolerance(tag)
                meas.check, meas.error = compare_outputs(
                    outs, ref, self.rtol if rtol is None else rtol, whose=s.whose)
                if meas.error is None:
                    loaded.append((handle, meas))
                    continue
            tell(meas)
        return loaded

    def _rounds(self, s: SessionAdapter, loaded: list[tuple[Any, Measurement]], key,
                tell: Callable[[Measurement], None]) -> None:
        """One warm-up each (the first sizes the samples), then the interleaved rounds."""
        s.number = 1
        warm = []
        for h, meas in loaded:
            warm.append(self._step(s, meas, "warm-up", s.time, h, tell=tell))
            _settle(s, h)
        s.number = s.sample_runs(warm[0] if warm and warm[0] is not None else 1.0)
        for _ in range(self.repeats):
            for handle, meas in loaded:  # interleaved: A B C A B C ...
                if meas.error is None:
                    t = self._step(s, meas, "timing", s.time, handle, tell=tell)
                    if t is not None:
                        meas.samples.append(t)
                    _settle(s, handle)
        ref = next((m for _, m in loaded if m.index == key), None)
        for _, meas in loaded:
            if ref is not None:
                meas.anchor = list(ref.samples)
            if meas.error is None:
                tell(meas)

    @staticmethod
    def _step(s: SessionAdapter, meas: Measurement, what: str, fn: Callable, *args,
              tell: Callable[[Measurement], None]):
        """``fn(*args)``; a failure is ``meas``'s error, told at once (None comes back); when
        the device is lost with it, that loss is raised after the telling."""
        try:
            return fn(*args)
        except NotMeasured as why:
            meas.error = str(why)
            tell(meas)
            return None
        except Exception as err:  # noqa: BLE001 - one candidate's failure is its result
            lost = err if isinstance(err, DeviceUnavailableError) else s.lost()
            meas.samples = []
            why = _short(err)
            meas.error = (f"device session lost: {why}" if lost is not None and what == "load/run"
                          else f"{what} failed: {why}")
            tell(meas)
            if lost is None:
                return None
            log.warning("device %s lost at candidate %s: %s", s.name, meas.index, why)
            if lost is err:
                raise
            raise lost from err


def _all_but(key, tell: Callable[[Measurement], None]) -> Callable[[Measurement], None]:
    """``tell`` for every measurement but item ``key``'s."""
    def told(meas: Measurement) -> None:
        if meas.index != key:
            tell(meas)
    return told


# --------------------------------------------------------------------------------------------
# VM orders
class OrderAdapter(SessionAdapter):
    """VM orders on one session: the kernel library and ``main``'s arguments uploaded once,
    a VM executable per candidate, timed by ``time_evaluator`` (``number`` runs per sample, at
    least ``min_repeat_ms`` each).

    Parameters
    ----------
    name
        The device's name.
    sess
        The open ``tvm.rpc`` session.
    measurer
        The :class:`Measurer` whose files (kernel library, temporary dir), arguments and
        timing options this session uses.
    reopen
        Returns a new session to the same device.
    """

    def __init__(self, name: str, sess, measurer: Measurer,
                 reopen: Callable[[], Any] | None = None):
        self.m = measurer
        self.slug = "".join(c if c.isalnum() else "_" for c in name)
        super().__init__(name, sess, timeout=measurer.timeout, reopen=reopen,
                         device_type=measurer.device_type, threads=measurer.threads)

    def attach(self, sess) -> None:
        """Use ``sess``; nothing uploaded there yet.

        Parameters
        ----------
        sess
            The open ``tvm.rpc`` session.
        """
        super().attach(sess)
        self.kernels = None
        self.args: list = []
        self.uploads = 0

    def setup(self) -> None:
        """Upload the kernel library and ``main``'s arguments.

        Raises
        ------
        Exception
            What the device raised.
        """
        import tvm

        m = self.m
        if m.kernel_path is not None:
            self.call(self.sess.upload, str(m.kernel_path), "tvm_sched_kernels.so")
            self.kernels = self.call(self.sess.load_module, "tvm_sched_kernels.so")
        self.args = self.call(lambda: [tvm.runtime.tensor(a, self.dev) for a in m.args])
        self.call(self.size_pool)

    def load(self, built, tag: str):
        """Upload a candidate's executable (its own kernels, or bytecode that imports the
        shared library), make its VM and run it once.

        Parameters
        ----------
        built
            Its :class:`~tvm_sched.tune.builder.Built`.
        tag
            Names its files on the device.

        Returns
        -------
        (tvm.relax.VirtualMachine, list of numpy.ndarray)
            The remote VM (``main``'s arguments set) and its outputs.

        Raises
        ------
        Exception
            What the device raised.
        """
        from tvm import relax

        from tvm_sched.relax.frontend import flatten_values

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
            return [np.asarray(o.numpy()) for o in flatten_values(vm.get_outputs("main"))]
        return vm, self.call(_prepare)

    def time(self, vm) -> float:
        """One sample of a loaded VM.

        Parameters
        ----------
        vm
            What :meth:`load` returned.

        Returns
        -------
        float
            Seconds per run.

        Raises
        ------
        Exception
            What the device raised.
        """
        number, min_ms = self.number, int(self.m.min_repeat_ms)

        def _t():
            f = vm.time_evaluator("invoke_stateful", self.dev, number=number, repeat=1,
                                  min_repeat_ms=min_ms)
            return float(f("main").results[0])
        return self.call(_t)

    def sample_runs(self, first_s: float) -> int:
        """The measurer's ``number`` (``time_evaluator`` stretches a sample to
        ``min_repeat_ms`` itself).

        Parameters
        ----------
        first_s
            Unused.

        Returns
        -------
        int
        """
        return self.m.number


#: The VM-order adapter's old name (tests patch its ``load`` and ``time``).
_Device = OrderAdapter


class Measurer:
    """Measures built VM orders on a device source's sessions: :class:`InterleavedRunner`
    with an :class:`OrderAdapter` per device, items keyed by index.

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
    threads
        Threads the VMs run with on each device (the kernels' ``num-cores``; ``None``: the
        server's own pool).
    """

    def __init__(self, runner: Devices, *, kernels, args: Sequence[np.ndarray],
                 reference: Sequence[np.ndarray] | None, device_type: str | int = "cpu",
                 repeats: int = 10, number: int = 1, min_repeat_ms: float = 10.0,
                 timeout: float = 120.0, rtol: float = 1e-4, batch: int = 16,
                 threads: int | None = None):
        self.runner = runner
        self.threads = threads
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
        self.devices: list[OrderAdapter] = []
        self._closed_reconnects = 0

    @property
    def reconnects(self) -> int:
        """Sessions reopened after a loss (closed ones included)."""
        return self._closed_reconnects + sum(d.reconnects for d in self.devices)

    def open(self) -> list[str]:
        """Open the runner's sessions and upload the kernels and arguments to each.

        Returns
        -------
        list of str
            The names of the devices opened.
        """
        for name, sess in self.runner.open():
            d = OrderAdapter(name, sess, self, reopen=lambda n=name: self.runner.reopen(n))
            d.setup()
            self.devices.append(d)
        return [d.name for d in self.devices]

    def close(self) -> None:
        """Let the sessions' workers go and remove the temporary files."""
        self._closed_reconnects = self.reconnects
        for d in self.devices:
            d.close()
        self.devices = []
        self._tmpdir.cleanup()

    def _check(self, outs: list[np.ndarray], reference=None) -> tuple[float, str | None]:
        reference = self.reference if reference is None else reference
        if reference is None:
            return float("inf"), "no reference outputs on this device (TVM's order failed)"
        return compare_outputs(outs, reference, self.rtol)

    def measure(self, items: Sequence[Item], done: Callable[[Measurement], None],
                anchor: Item | None = None) -> None:
        """Measure every item, spread over the devices; ``done`` gets each result once.

        With ``anchor`` (TVM's order), every batch on every device also measures it, and each
        result carries the anchor's samples from its own batch: medians from different devices
        or batches are compared through their ratio to the anchor, not directly.

        Parameters
        ----------
        items
            (index, :class:`~tvm_sched.tune.builder.Built`, tag) triples; the index names the
            item in its :class:`Measurement`, the tag its files on the device.
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
        InterleavedRunner(self.devices, repeats=self.repeats, rtol=self.rtol,
                          reference=self.reference, batch=self.batch).run(items, done, anchor)


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
