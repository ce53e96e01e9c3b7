"""The Relax VM, lane plans and the anchors on a device session (the lane kind's adapter), and
the kernel profile.

Contract
--------
:class:`LaneAdapter` is the lane kind's :class:`~tvm_sched.tune.session.SessionAdapter`: the
protocol is :class:`~tvm_sched.tune.runner.InterleavedRunner`'s (interleaved rounds, output
checks, failures as results, a lost device reopened once), this module says how each lane kind
is loaded, run and timed on one session. The Relax VM executable (the kernel library the lane
plans share) is uploaded on first use and is the anchor: its outputs on the device are the
reference, its warm-up sets the runs per sample of every candidate (a VM sample lasts
``min_repeat_ms``). A lane candidate's exported module is uploaded and run through
``tvm_sched.runtime.run_exported``; an anchor (PyTorch, ONNX Runtime) is loaded by its spec (the
files it needs uploaded with the first one), one that cannot run on the device is told with the
reason, and its outputs are checked with ``anchor_rtol``. :meth:`LaneAdapter.profile` times every
kernel of the one-lane plan on the device on the data it really receives (the lane run one
kernel at a time); a device lost there is reopened once too, and the error names the running
kernel.

:class:`LaneRunner` (one device) and :class:`SpreadRunner` (several, a tracker's) keep the old
names: each is the :class:`~tvm_sched.tune.runner.InterleavedRunner` over its adapters.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tvm_sched.errors import DeviceUnavailableError, MeasureError, one_line
from tvm_sched.runtime import rpc
from tvm_sched.tune.measure import compare_outputs
from tvm_sched.tune.record import MeasureResult
from tvm_sched.tune.runner import InterleavedRunner
from tvm_sched.tune.session import NotMeasured, SessionAdapter

__all__ = ["LaneAdapter", "LaneRunner", "SpreadRunner"]

log = logging.getLogger(__name__)

#: Seconds the runner waits after an anchor's sample. ONNX Runtime's intra-op threads spin
#: after a run: on the bench resnet (2 cores, 2026-12-07) the Relax VM sample right after an
#: ORT sample ran 1.55x slower than after itself (5.91 against 3.81 ms), and 3.90 ms after a
#: 50 ms pause. The pause keeps one runtime's idle threads out of the next one's timing.
ANCHOR_SETTLE_S = 0.05


class LaneAdapter(SessionAdapter):
    """The Relax VM, lane plans and anchors on one device session (see the module docstring).

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
    min_repeat_ms
        The least milliseconds one VM sample lasts (it sets the runs per sample of every
        candidate, from the VM's warm-up).
    timeout
        Seconds one device call may take before the device counts as lost.
    reopen
        Returns a new session to the same device (``None``: a lost device ends the run).
    anchors
        Anchor specs by candidate name (:func:`~tvm_sched.tune.anchors.anchor_specs`).
    upload
        Files the anchors need on the device (uploaded with the first anchor).
    anchor_rtol
        The output tolerance of the anchors (other kernels, other rounding), as the runner's
        ``rtol`` is the lane plans'.
    """

    whose = "the VM's"

    def __init__(self, name: str, sess, builder, inputs: Sequence[np.ndarray], *,
                 min_repeat_ms: float = 10.0, timeout: float = 120.0,
                 reopen: Callable[[], object] | None = None, anchors: dict[str, dict] | None = None,
                 upload: Sequence[Path] = (), anchor_rtol: float = 1e-3):
        #: Anchor specs by candidate name (:mod:`tvm_sched.tune.anchors`), and the files they
        #: need on the device (uploaded with the first anchor).
        self.anchors = dict(anchors or {})
        self.anchor_files = [Path(p) for p in upload]
        self.anchor_rtol = anchor_rtol
        self.builder = builder
        self.inputs = [np.asarray(x) for x in inputs]
        self.min_repeat_ms = min_repeat_ms
        super().__init__(name, sess, timeout=timeout, reopen=reopen,
                         threads=getattr(builder, "vm_threads", None))

    def attach(self, sess) -> None:
        """Use ``sess``; the VM is uploaded there on first use.

        Parameters
        ----------
        sess
            The open ``tvm.rpc`` session.
        """
        super().attach(sess)
        self._vm = self._vm_args = None
        #: The VM's thread pool on the device as it reported it (``None``: not sized).
        self.vm_pool: int | None = None

    # -- the per-kind pieces the runner calls -------------------------------------------------
    def load(self, built, c) -> tuple[tuple[str, str | None], list[np.ndarray]]:
        """Load candidate ``c`` (the VM, a lane plan or an anchor) and run it once.

        Parameters
        ----------
        built
            Its build (a lane plan's ``path`` is its exported module).
        c
            The :class:`~tvm_sched.tune.candidate.LaneCandidate`.

        Returns
        -------
        (handle, list of numpy.ndarray)
            ``(kind, name on the device)`` for :meth:`time`, and the outputs.

        Raises
        ------
        NotMeasured
            An anchor that cannot run on the device (no spec, a framework missing there).
        Exception
            What the device raised.
        """
        if c.kind == "vm":
            return ("vm", None), self.call(self.vm_outputs)
        count = len(self.reference)
        if c.kind == "anchor":
            spec = self.anchors.get(c.name, {"unavailable": "not measured: no anchor spec"})
            if "unavailable" in spec:
                raise NotMeasured(spec["unavailable"])
            why = self.call(self.anchor_load, c.name)
            if why:
                raise NotMeasured(why)
            return ("anchor", c.name), self.call(self.anchor_outputs, c.name, count)
        name = self.call(self.upload, built.path)
        return ("lanes", name), self.call(self.lane_outputs, name, count)

    def settle_after(self, handle: tuple[str, str | None]) -> float:
        """:data:`ANCHOR_SETTLE_S` after an anchor's sample, else 0 (see
        :meth:`~tvm_sched.tune.session.SessionAdapter.settle_after`).

        Parameters
        ----------
        handle
            What :meth:`load` returned.

        Returns
        -------
        float
            Seconds to wait before the next candidate's sample.
        """
        return ANCHOR_SETTLE_S if handle[0] == "anchor" else 0.0

    def time(self, handle: tuple[str, str | None]) -> float:
        """One sample of a loaded candidate, ``number`` runs.

        Parameters
        ----------
        handle
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
        kind, name = handle
        if kind == "vm":
            return self.call(self.vm_time, self.number)
        if kind == "anchor":
            return self.call(self.anchor_time, name, self.number)
        return self.call(self.lane_time, name, self.number)

    def sample_runs(self, first_s: float) -> int:
        """Runs per sample so that the VM's sample lasts ``min_repeat_ms``.

        Parameters
        ----------
        first_s
            Seconds of the VM's warm-up run.

        Returns
        -------
        int
            At least 1.
        """
        return max(1, math.ceil(self.min_repeat_ms / 1e3 / max(first_s or 1.0, 1e-9)))

    def tolerance(self, c) -> float | None:
        """``anchor_rtol`` for an anchor; the runner's ``rtol`` for the rest.

        Parameters
        ----------
        c
            The candidate.

        Returns
        -------
        float or None
        """
        return self.anchor_rtol if c.kind == "anchor" else None

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

            self.vm_pool = self.size_pool()  # on the worker thread: a direct device call
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
        inputs); then ``repeat`` times the lane is run again one kernel at a time (each kernel
        reads what its producers have just written, as in a real run): on the device, back to
        back (``time_steps``), or, where the device does not offer that and after a failure of
        it, with the client calling ``time_step`` for position 0, 1, 2, ... (so that a kernel
        that kills the device or fails is named). A kernel's duration is the median of its
        samples (over the steps that call it). A device lost on the way is reopened once, as
        the runner does when measuring, and the profile run again there.

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
        batched = self._offers(rpc.TIME_STEPS)
        while True:
            at = [-1]
            try:
                samples = self._profile_once(path, plan, max(1, int(repeat)), at, batched)
                break
            except Exception as err:  # noqa: BLE001 - sorted out below
                if batched and at[0] == -3 and self.lost() is None:
                    batched = False  # a kernel failed: step by step, the failure names it
                    continue
                self._profile_failed(err, plan, at[0])
                batched = False  # the device was reopened: step by step, to name a killer
        chain = plan.lanes[0]
        per_kernel: dict[str, list[float]] = {}
        for p, s in enumerate(chain):
            name = plan.kernels[plan.steps[s].kernel]
            per_kernel.setdefault(name, []).append(statistics.median(samples[p]))
        return {k: float(statistics.median(v)) for k, v in per_kernel.items()}

    def _offers(self, func: str) -> bool:
        """Whether the device's server registers the global function ``func``."""
        try:
            return self.call(self.sess.get_function, func) is not None
        except Exception:  # noqa: BLE001 - TVM raises its own error kinds for a missing function
            return False

    def _profile_once(self, path: Path, plan, repeat: int, at: list[int],
                      batched: bool = False) -> list[list[float]]:
        chain = plan.lanes[0]
        at[0] = -2
        name = self.call(self.upload, path)
        t0 = time.perf_counter()
        self.call(self.lane_outputs, name, 1)  # the inputs set, one whole run (warm-up)
        one_run_s = time.perf_counter() - t0
        samples: list[list[float]] = [[] for _ in chain]
        if batched:
            steps = self.call(self.sess.get_function, rpc.TIME_STEPS)
            at[0] = -3
            # one call runs the lane `repeat` times: its limit grows with the model
            limit = self.timeout + 3 * repeat * one_run_s
            runs = json.loads(str(self.call(steps, name, repeat, timeout=limit)))
            if len(runs) != repeat or any(len(r) != len(chain) for r in runs):
                raise MeasureError(f"time_steps on device {self.name} returned {len(runs)} "
                                   f"run(s) for {repeat} of {len(chain)} steps")
            for run in runs:
                for p, sec in enumerate(run):
                    samples[p].append(float(sec))
            at[0] = -1
            return samples
        step = self.call(self.sess.get_function, rpc.TIME_STEP)

        def one_run() -> None:
            for p in range(len(chain)):
                at[0] = p
                samples[p].append(float(step(name, p)))

        for _ in range(repeat):
            self.call(one_run)
        at[0] = -1
        return samples

    def _profile_failed(self, err: Exception, plan, at: int) -> None:
        """Raise the error a failed profile run ends in, unless the device was lost for the
        first time and is reopened (the caller then profiles again)."""
        if at >= 0:
            st = plan.steps[plan.lanes[0][at]]
            where = (f"while running kernel {plan.kernels[st.kernel]} (step {plan.lanes[0][at]}, "
                     f"{st.name}) of the one-lane plan")
        elif at == -3:
            where = "while running the one-lane plan's kernels back to back"
        else:
            where = "while loading and running the one-lane plan"
        lost = isinstance(err, DeviceUnavailableError) or self.lost() is not None
        text = one_line(err, last=True, limit=200)
        if not lost:
            raise MeasureError(f"profiling the kernels on device {self.name} failed {where}: "
                               f"{text}") from err
        lost_err = DeviceUnavailableError(f"device {self.name} was lost {where} (profiling the "
                                          f"kernels): {text}")
        self.restart("profile", lost_err)


class LaneRunner(LaneAdapter):
    """One device's :class:`LaneAdapter` with the runner's options: :meth:`measure` is
    :class:`~tvm_sched.tune.runner.InterleavedRunner` over it.

    Parameters
    ----------
    name, sess, builder, inputs
        As :class:`LaneAdapter`'s.
    repeats
        Interleaved rounds after the warm-up.
    rtol
        Output tolerance of a lane candidate against the VM's outputs: its largest absolute
        difference may be ``rtol * max(1, largest |VM output|)``.
    **options
        :class:`LaneAdapter`'s keyword arguments.
    """

    def __init__(self, name: str, sess, builder, inputs: Sequence[np.ndarray], *,
                 repeats: int = 10, rtol: float = 1e-4, **options):
        super().__init__(name, sess, builder, inputs, **options)
        self.repeats = repeats
        self.rtol = rtol

    def measure(self, built, anchor, done: Callable[[MeasureResult], None]) -> None:
        """Check, warm up, then ``repeats`` interleaved rounds over the anchor (the VM) and
        every candidate (:meth:`~tvm_sched.tune.runner.InterleavedRunner.measure`).

        Parameters
        ----------
        built
            (:class:`~tvm_sched.tune.candidate.LaneCandidate`, built) pairs; a build's
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
        InterleavedRunner([self], repeats=self.repeats, rtol=self.rtol).measure(
            built, anchor, done)

    def _check(self, outs: list[np.ndarray], rtol: float | None = None) -> str | None:
        """Why ``outs`` differ from this device's reference (None when they match)."""
        return compare_outputs(outs, self.reference, self.rtol if rtol is None else rtol,
                               whose=self.whose)[1]


class SpreadRunner:
    """Several devices (a tracker's): :class:`~tvm_sched.tune.runner.InterleavedRunner` over
    their :class:`LaneRunner` adapters, with the first one's ``repeats`` and ``rtol``.

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
        first = self.runners[0]
        InterleavedRunner(self.runners, repeats=first.repeats, rtol=first.rtol).measure(
            built, anchor, done)
