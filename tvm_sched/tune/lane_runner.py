"""Measuring lane candidates and the Relax VM on RPC sessions (the lane objective's runner).

Contract
--------
:class:`LaneRunner` (one device session): the Relax VM executable (the kernel library the lane
plans share) is uploaded once and its outputs on the device are the reference; each lane
candidate's exported module is uploaded, run through ``tvm_sched.runtime.run_exported`` and its
outputs checked against the VM's before anything is timed; one warm-up each; then ``repeats`` rounds
over the VM and the candidates in turn (VM A B C VM A B C ...), each sample ``number`` runs
(set so that the VM's sample lasts ``min_repeat_ms``). Every result carries the VM's samples of
the same rounds. A failure of one candidate is its result, told at once; every device call has
a time limit. A device that does not answer or is gone is reopened once when the runner was
given ``reopen`` (an embedded server is restarted, a server or tracker reconnected): the
candidate it was running keeps its error and the candidates not yet told are measured again
on the new session, anchored on the VM there. :meth:`LaneRunner.profile` times every kernel
of the one-lane plan on the device on the data it really receives (the lane run one kernel at
a time); a device lost there is reopened once too, and the error names the running kernel.
A second loss, or a loss without ``reopen``, raises
:class:`~tvm_sched.errors.DeviceUnavailableError` with the records so far kept.
:class:`SpreadRunner` deals candidates over several devices (a tracker's).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tvm_sched.errors import DeviceUnavailableError, MeasureError, one_line
from tvm_sched.runtime import rpc
from tvm_sched.tune.candidate import LaneCandidate
from tvm_sched.tune.measure import compare_outputs, deal, serialised, spread
from tvm_sched.tune.record import MeasureResult

__all__ = ["LaneRunner", "SpreadRunner"]

log = logging.getLogger(__name__)


class LaneRunner:
    """Measures VM and lane candidates on one device session, in interleaved rounds.

    Parameters
    ----------
    name
        The device's name (in results, messages and the worker thread's name).
    sess
        The open ``tvm.rpc`` session.
    builder
        The :class:`~tvm_sched.tune.lanes.LaneBuilder` (its ``vm_lib_path`` is the Relax VM
        uploaded, with its weights after ``inputs`` as the VM's arguments).
    inputs
        The model's inputs.
    repeats
        Interleaved rounds after the warm-up.
    min_repeat_ms
        The least milliseconds one VM sample lasts (it sets the runs per sample of every
        candidate, from the VM's warm-up).
    rtol
        Output tolerance of a lane candidate against the VM's outputs: its largest absolute
        difference may be ``rtol * max(1, largest |VM output|)``.
    timeout
        Seconds one device call may take before the device counts as lost.
    reopen
        Returns a new session to the same device (``None``: a lost device ends the run).
    anchors
        Anchor specs by candidate name (:func:`~tvm_sched.tune.anchors.anchor_specs`).
    upload
        Files the anchors need on the device (uploaded with the first anchor).
    anchor_rtol
        As ``rtol``, for the anchors (other kernels, other rounding).
    """

    def __init__(self, name: str, sess, builder, inputs: Sequence[np.ndarray], *,
                 repeats: int = 10, min_repeat_ms: float = 10.0, rtol: float = 1e-4,
                 timeout: float = 120.0, reopen: Callable[[], object] | None = None,
                 anchors: dict[str, dict] | None = None, upload: Sequence[Path] = (),
                 anchor_rtol: float = 1e-3):
        self.name = name
        #: Anchor specs by candidate name (:mod:`tvm_sched.tune.anchors`), and the files they
        #: need on the device (uploaded with the first anchor).
        self.anchors = dict(anchors or {})
        self.anchor_files = [Path(p) for p in upload]
        self.anchor_rtol = anchor_rtol
        self.reopen = reopen
        #: Sessions reopened after a loss (at most one per stage: profile, measure).
        self.reconnects = 0
        self._reopened: set[str] = set()
        self.timeout = timeout
        self._pool = None
        self.sess = sess
        self.builder = builder
        self.inputs = [np.asarray(x) for x in inputs]
        self.repeats = repeats
        self.min_repeat_ms = min_repeat_ms
        self.rtol = rtol
        self.dev = sess.cpu(0)
        self._vm = None
        self._vm_args = None
        self.reference: list[np.ndarray] | None = None

    # -- the VM (also the reference: its outputs on this device) -----------------------------
    def vm(self):
        """The Relax VM on the device, its arguments set (uploaded on the first call).

        Returns
        -------
        tvm.relax.VirtualMachine
            The remote VM; ``main``'s inputs are the model's inputs, then its weights.
        """
        if self._vm is None:
            import tvm
            from tvm import relax

            self.sess.upload(str(self.builder.vm_lib_path), "tvm_sched_vm.so")
            self._vm = relax.VirtualMachine(self.sess.load_module("tvm_sched_vm.so"), self.dev)
            self._vm_args = [tvm.runtime.tensor(np.asarray(a), self.dev)
                             for a in self.inputs + list(self.builder.vm_k.weights)]
            self._vm.set_input("main", *self._vm_args)
        return self._vm

    def vm_outputs(self) -> list[np.ndarray]:
        """Run the Relax VM once on the device.

        Returns
        -------
        list of numpy.ndarray
            Its outputs, flattened (the reference of this device).
        """
        from tvm_sched.relax.frontend import flatten_values

        vm = self.vm()
        vm.invoke_stateful("main")
        return [o.numpy() for o in flatten_values(vm.get_outputs("main"))]

    def vm_time(self, number: int) -> float:
        """Time the Relax VM on the device.

        Parameters
        ----------
        number
            Runs averaged into the sample.

        Returns
        -------
        float
            Seconds per run.
        """
        f = self.vm().time_evaluator("invoke_stateful", self.dev, number=number, repeat=1)
        return float(f("main").results[0])

    # -- lanes --------------------------------------------------------------------------------
    def upload(self, path: Path) -> str:
        """Upload a file to the device's work dir under its own name.

        Parameters
        ----------
        path
            The local file (an exported lane module).

        Returns
        -------
        str
            Its name on the device.
        """
        name = path.name
        self.sess.upload(str(path), name)
        return name

    def lane_outputs(self, name: str, count: int) -> list[np.ndarray]:
        """Run an uploaded lane module on the model's inputs and read its outputs.

        Parameters
        ----------
        name
            The module's name on the device (:meth:`upload`).
        count
            Outputs to read (the VM's output count).

        Returns
        -------
        list of numpy.ndarray
            Outputs ``0 .. count - 1``.
        """
        return self._outputs(rpc.RUN_FUNC, name, count)

    # -- anchors (PyTorch, ONNX Runtime) ------------------------------------------------------
    def anchor_load(self, name: str) -> str:
        """Load anchor ``name`` on the device (its files uploaded first); "" or why not.

        Parameters
        ----------
        name
            An anchor with a spec in ``anchors``.

        Returns
        -------
        str
            ``""`` when it loaded, else the reason it cannot run there.

        Raises
        ------
        KeyError
            When ``name`` has no spec.
        """
        import json

        from tvm_sched.tune import anchors

        for f in self.anchor_files:
            self.sess.upload(str(f), f.name)
        self.anchor_files = []
        return str(self.sess.get_function(anchors.LOAD)(name, json.dumps(self.anchors[name])))

    def anchor_outputs(self, name: str, count: int) -> list[np.ndarray]:
        """Run a loaded anchor on the model's inputs and read its outputs.

        Parameters
        ----------
        name
            The anchor (:meth:`anchor_load`).
        count
            Outputs to read (the VM's output count).

        Returns
        -------
        list of numpy.ndarray
            Outputs ``0 .. count - 1``.
        """
        from tvm_sched.tune import anchors

        return self._outputs(anchors.RUN, name, count)

    def _outputs(self, func: str, name: str, count: int) -> list[np.ndarray]:
        """Outputs ``0 .. count - 1`` of device function ``func(name, index, *inputs)`` run on
        the model's inputs (a lane module's or an anchor's)."""
        import tvm

        fn = self.sess.get_function(func)
        args = [tvm.runtime.tensor(x, self.dev) for x in self.inputs]
        return [fn(name, k, *args).numpy() for k in range(count)]

    def anchor_time(self, name: str, number: int) -> float:
        """Time a loaded anchor on the device (on the inputs :meth:`anchor_outputs` set).

        Parameters
        ----------
        name
            The anchor.
        number
            Runs averaged into the sample.

        Returns
        -------
        float
            Seconds per run.
        """
        from tvm_sched.tune import anchors

        return float(self.sess.get_function(anchors.TIME)(name, number))

    def lane_time(self, name: str, number: int) -> float:
        """Time an uploaded lane module on the device.

        Parameters
        ----------
        name
            The module's name on the device (:meth:`upload`).
        number
            Runs averaged into the sample.

        Returns
        -------
        float
            Seconds per run.
        """
        return float(self.sess.get_function(rpc.TIME_RUNS)(name, number))

    def profile(self, path: Path, plan, *, repeat: int = 5) -> dict[str, float]:
        """Seconds per kernel of the one-lane ``plan`` (exported at ``path``), timed on the device
        on the data each kernel really receives.

        The module is uploaded and run once on the model's inputs (a warm-up that sets the
        inputs); then ``repeat`` times the lane is run again one kernel at a time, the client
        calling ``time_step`` for position 0, 1, 2, ... (each kernel reads what
        its producers have just written, as in a real run). A kernel's duration is the median of
        its samples (over the steps that call it). A device lost on the way is reopened once,
        as :meth:`measure` does, and the profile run again there.

        Parameters
        ----------
        path
            The exported one-lane module.
        plan
            Its :class:`~tvm_sched.runtime.plan.LanePlan` (names the kernel that was running
            when a device is lost).
        repeat
            Timed runs of the lane.

        Returns
        -------
        dict
            Kernel name -> seconds.

        Raises
        ------
        DeviceUnavailableError
            The device was lost twice (or once without ``reopen``); the message names the
            kernel that was running.
        MeasureError
            A kernel failed on a device that is still alive.
        """
        while True:
            at = [-1]
            try:
                samples = self._profile_once(path, plan, max(1, int(repeat)), at)
                break
            except Exception as err:  # noqa: BLE001 - sorted out below
                self._profile_failed(err, plan, at[0])
        chain = plan.lanes[0]
        per_kernel: dict[str, list[float]] = {}
        for p, s in enumerate(chain):
            name = plan.kernels[plan.steps[s].kernel]
            per_kernel.setdefault(name, []).append(statistics.median(samples[p]))
        return {k: float(statistics.median(v)) for k, v in per_kernel.items()}

    def _profile_once(self, path: Path, plan, repeat: int, at: list[int]) -> list[list[float]]:
        chain = plan.lanes[0]
        at[0] = -2
        name = self._call(self.upload, path)
        self._call(self.lane_outputs, name, 1)  # the inputs set, one whole run (warm-up)
        step = self._call(self.sess.get_function, rpc.TIME_STEP)
        samples: list[list[float]] = [[] for _ in chain]

        def one_run() -> None:
            for p in range(len(chain)):
                at[0] = p
                samples[p].append(float(step(name, p)))

        for _ in range(repeat):
            self._call(one_run)
        at[0] = -1
        return samples

    def _profile_failed(self, err: Exception, plan, at: int) -> None:
        """Raise the error a failed profile run ends in, unless the device was lost for the
        first time and is reopened (the caller then profiles again)."""
        if at >= 0:
            st = plan.steps[plan.lanes[0][at]]
            where = (f"while running kernel {plan.kernels[st.kernel]} (step {plan.lanes[0][at]}, "
                     f"{st.name}) of the one-lane plan")
        else:
            where = "while loading and running the one-lane plan"
        lost = isinstance(err, DeviceUnavailableError)
        if not lost:
            try:
                self._alive()
            except DeviceUnavailableError:
                lost = True
        text = one_line(err, last=True, limit=200)
        if not lost:
            raise MeasureError(f"profiling the kernels on device {self.name} failed {where}: "
                               f"{text}") from err
        lost_err = DeviceUnavailableError(f"device {self.name} was lost {where} (profiling the "
                                          f"kernels): {text}")
        if self.reopen is None or "profile" in self._reopened:
            raise lost_err from None
        self._reopened.add("profile")
        self._restart(lost_err)

    def _check(self, outs: list[np.ndarray], rtol: float | None = None) -> str | None:
        return compare_outputs(outs, self.reference, self.rtol if rtol is None else rtol,
                               whose="the VM's")[1]

    # -- the protocol -------------------------------------------------------------------------
    def _call(self, fn, *args):
        """``fn(*args)`` on this device's worker thread, at most ``timeout`` seconds; a device
        that does not answer in time is lost (:class:`DeviceUnavailableError`)."""
        import concurrent.futures as cf

        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix=f"tvm-sched-{self.name}")
        fut = self._pool.submit(fn, *args)
        try:
            return fut.result(timeout=self.timeout)
        except cf.TimeoutError:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise DeviceUnavailableError(f"device {self.name} did not answer within "
                                         f"{self.timeout:.0f} s") from None

    def _try(self, res: MeasureResult, what: str, fn, *args, done=None):
        """``self._call(fn, *args)``; a failure becomes ``res.error`` (and goes to ``done``
        at once), then the device is checked: a lost one raises, records so far kept."""
        try:
            return self._call(fn, *args)
        except Exception as err:  # noqa: BLE001 - one candidate's failure is its result
            lost = isinstance(err, DeviceUnavailableError)
            res.error = f"{what} failed: {one_line(err, last=True, with_type=True)}"
            res.samples = []
            if done is not None:
                done(res)
            if lost:
                raise
            self._alive()
            return None

    def measure(self, built, anchor, done: Callable[[MeasureResult], None]) -> None:
        """Check, warm up, then ``repeats`` interleaved rounds over the anchor (the VM) and
        every candidate; each candidate ends in ``done`` once (errors as results; a candidate
        that fails is told at once, so a device lost right after keeps its record). A lost
        device is reopened once (see the module docstring).

        Parameters
        ----------
        built
            (:class:`~tvm_sched.tune.objective.LaneCandidate`, built) pairs; a build's
            ``error`` is told as the candidate's result.
        anchor
            The Relax VM's (candidate, built) pair; its result is told only when it is among
            ``built``.
        done
            Called once per candidate with its
            :class:`~tvm_sched.tune.record.MeasureResult`.

        Raises
        ------
        DeviceUnavailableError
            The device was lost twice, or once without ``reopen`` (the results told so far
            stand).
        """
        told: set[str] = set()

        def tell(res: MeasureResult) -> None:
            if res.hash not in told:
                told.add(res.hash)
                done(res)

        try:
            self._measure(built, anchor, tell)
        except DeviceUnavailableError as err:
            if self.reopen is None or "measure" in self._reopened:
                raise
            self._reopened.add("measure")
            self._restart(err)
            rest = [(c, b) for c, b in built if c.hash not in told]
            if rest:
                self._measure(rest, anchor, tell)

    def _restart(self, err: DeviceUnavailableError) -> None:
        """A new session in place of the lost one (the same device: its reference stays)."""
        log.warning("%s; reopening the session once", err)
        self.close()
        self.reconnects += 1
        try:
            self.sess = self.reopen()
        except Exception as again:  # noqa: BLE001 - any failure to reconnect ends the run
            raise DeviceUnavailableError(f"device {self.name} was lost and could not be "
                                         f"reopened: {one_line(again, last=True)}") from err
        self.dev = self.sess.cpu(0)
        self._vm = self._vm_args = None

    def _measure(self, built, anchor, tell: Callable[[MeasureResult], None]) -> None:
        items = [anchor] + [(c, b) for c, b in built if c.hash != anchor[0].hash]
        report_anchor = any(c.hash == anchor[0].hash for c, _ in built)
        vm_res = MeasureResult(anchor[0].hash, self.name)
        if self.reference is None:
            self.reference = self._try(vm_res, "the Relax VM run",
                                       self.vm_outputs, done=tell if report_anchor else None)
        if self.reference is None:  # no VM, no anchor: nothing here can be compared
            for c, _ in items[1:]:
                tell(MeasureResult(c.hash, self.name, error=f"not measured: {vm_res.error}"))
            return
        runs: list[tuple[LaneCandidate, Callable[[int], float], MeasureResult]] = []
        for c, b in items:
            res = vm_res if c.kind == "vm" else MeasureResult(c.hash, self.name)
            if c.kind == "vm":
                runs.append((c, self.vm_time, res))
                continue
            if c.kind == "anchor":
                self._add_anchor(c, res, runs, tell)
                continue
            if b.error is not None:
                res.error = f"build failed: {b.error}"
                tell(res)
                continue
            outs = self._try(res, "load/run", lambda b=b: self.lane_outputs(
                self.upload(b.path), len(self.reference)), done=tell)
            if outs is None:
                continue
            bad = self._check(outs)
            if bad:
                res.error = bad
                tell(res)
                continue
            runs.append((c, (lambda n, name=b.path.name: self.lane_time(name, n)), res))
        # one warm-up each; the VM's sets how many runs make one sample
        first = self._try(vm_res, "the Relax VM timing", runs[0][1], 1)
        number = max(1, math.ceil(self.min_repeat_ms / 1e3 / max(first or 1.0, 1e-9)))
        for _, fn, res in runs[1:]:
            self._try(res, "warm-up", fn, 1, done=tell)
        for _ in range(self.repeats):
            for c, fn, res in runs:  # interleaved: VM A B C VM A B C ...
                if res.error is None:
                    t = self._try(res, "timing", fn, number,
                                  done=None if c.kind == "vm" else tell)
                    if t is not None:
                        res.samples.append(t)
        for c, _, res in runs:
            res.anchor = list(vm_res.samples)
            if c.kind == "vm" and not report_anchor:
                continue
            tell(res)

    def _add_anchor(self, c: LaneCandidate, res: MeasureResult, runs: list, tell) -> None:
        """Load anchor ``c`` on the device and check its outputs; into ``runs`` when it runs,
        else told with the reason (e.g. "onnxruntime is not installed on the device")."""
        spec = self.anchors.get(c.name, {"unavailable": "not measured: no anchor spec"})
        if "unavailable" in spec:
            res.error = spec["unavailable"]
            tell(res)
            return
        why = self._try(res, "anchor load", self.anchor_load, c.name, done=tell)
        if why is None:
            return
        if why:
            res.error = why
            tell(res)
            return
        outs = self._try(res, "anchor run", self.anchor_outputs, c.name, len(self.reference),
                         done=tell)
        if outs is None:
            return
        bad = self._check(outs, self.anchor_rtol)
        if bad:
            res.error = bad
            tell(res)
            return
        runs.append((c, (lambda n, name=c.name: self.anchor_time(name, n)), res))

    def _alive(self) -> None:
        import tvm

        try:
            self._call(lambda: tvm.runtime.tensor(np.zeros(1, "float32"), self.dev).numpy())
        except Exception as err:  # noqa: BLE001
            raise DeviceUnavailableError(f"device {self.name} was lost: "
                                         f"{one_line(err, last=True)}") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class SpreadRunner:
    """Several devices (a tracker's): candidates dealt round-robin, each device's batch
    anchored on its own VM run, the devices measuring at the same time; ``done`` serialised.

    Parameters
    ----------
    runners
        One :class:`LaneRunner` per device.
    """

    def __init__(self, runners: Sequence[LaneRunner]):
        self.runners = list(runners)

    def measure(self, built, anchor, done: Callable[[MeasureResult], None]) -> None:
        """Deal ``built`` over the devices and measure them at once.

        Parameters
        ----------
        built, anchor
            As for :meth:`LaneRunner.measure`; the anchor is in every device's batch, and its
            own result (when among ``built``) comes from the first device.
        done
            Called once per candidate, from one thread at a time.

        Raises
        ------
        DeviceUnavailableError
            As :meth:`LaneRunner.measure`, from any device.
        """
        if len(self.runners) == 1:
            self.runners[0].measure(built, anchor, done)
            return
        rest = [(c, b) for c, b in built if c.hash != anchor[0].hash]
        shares = deal(rest, len(self.runners))
        if len(rest) < len(built):  # the VM itself is to be recorded: by the first device
            shares[0] = [anchor, *shares[0]]
        once = serialised(done)
        spread(self.runners, shares, lambda r, share: r.measure(share, anchor, once))
