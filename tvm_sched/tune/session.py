"""One device session as the runner uses it, and the per-kind interface it calls.

Contract
--------
:class:`SessionAdapter` holds what every kind of candidate shares on a ``tvm.rpc`` session: a
one-thread worker that runs each device call under a time limit (:meth:`~SessionAdapter.call`;
a call that does not answer in time raises :class:`SessionLost`), a liveness check asked after a
failure (:meth:`~SessionAdapter.lost`), and a new session in place of a lost one, at most once per
stage (:meth:`~SessionAdapter.restart`; the device's reference outputs stay). A kind says how its
candidates are loaded and run for their outputs (:meth:`~SessionAdapter.load`), timed
(:meth:`~SessionAdapter.time`) and how many runs make a sample
(:meth:`~SessionAdapter.sample_runs`): :class:`~tvm_sched.tune.runner.OrderAdapter` for VM orders,
:class:`~tvm_sched.tune.lane_runner.LaneAdapter` for the Relax VM, lane plans and the anchors.
The protocol that calls them, once for every kind, is
:class:`~tvm_sched.tune.runner.InterleavedRunner`.

The Relax VM runs on the thread that serves the session, whose TVM CPU pool the server sized at
start from ``TVM_NUM_THREADS`` -- which the server inherits from whoever started it (the embedded
server from the tuner's own process: a benchmark that set ``TVM_NUM_THREADS=1`` for itself
measured the "all-core" VM anchor on one thread, 4.4 ms instead of 2.4 ms on the bench resnet).
So an adapter given ``threads`` sizes that pool itself (:meth:`~SessionAdapter.size_pool`,
the server's :data:`~tvm_sched.runtime.rpc.CONFIG_THREADS`) before its VM runs, as kernel
tuning does before each measurement.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from tvm_sched.errors import DeviceUnavailableError, one_line

__all__ = ["SessionAdapter", "SessionLost", "NotMeasured"]

log = logging.getLogger(__name__)


class SessionLost(DeviceUnavailableError):
    """A device call did not answer within its time limit: the session counts as lost."""


class NotMeasured(Exception):  # noqa: N818 - a result, not a fault: the message is the record
    """A candidate that cannot run on this device (e.g. "onnxruntime is not installed on the
    device"): its message is the candidate's error, as it is, and the device is not suspected."""




class SessionAdapter:
    """One device session and how one kind of candidate is loaded, run and timed on it: the
    per-kind piece :class:`InterleavedRunner` calls (see the module docstring).

    The base holds what every kind shares: the session, a one-thread worker that runs each
    device call under a time limit (:meth:`call`), the liveness check, and reopening once per
    stage (:meth:`restart`). A kind fills in :meth:`load` and :meth:`time`, and where it needs
    to :meth:`setup`, :meth:`attach`, :meth:`sample_runs` and :meth:`tolerance`.

    Parameters
    ----------
    name
        The device's name (in results, messages and the worker thread's name).
    sess
        The open ``tvm.rpc`` session.
    timeout
        Seconds one device call may take before the device counts as lost.
    reopen
        Returns a new session to the same device (``None``: a lost device ends the run).
    device_type
        The device to run on in the session (``"cpu"`` or a device type code).
    threads
        Threads of the session thread's TVM CPU pool, which runs the Relax VM (the VM's
        kernels were built for as many); ``None``: the pool the server started with.

    Attributes
    ----------
    reference
        The anchor's outputs on this device (the reference when the runner is given none);
        kept when the session is reopened (the same device).
    number
        Runs per timed sample, set by the runner (1 for the warm-ups).
    reconnects
        Sessions reopened after a loss (at most one per stage).
    """

    #: How an output-check error names the reference.
    whose = "the reference"

    def __init__(self, name: str, sess, *, timeout: float = 120.0,
                 reopen: Callable[[], Any] | None = None, device_type: str | int = "cpu",
                 threads: int | None = None):
        self.name = name
        self.threads = threads
        self.timeout = timeout
        self.reopen = reopen
        self.device_type = device_type
        self.reconnects = 0
        self.reference: list[np.ndarray] | None = None
        self.number = 1
        self._reopened: set[str] = set()
        self._pool: cf.ThreadPoolExecutor | None = None
        self.attach(sess)

    # -- per kind -----------------------------------------------------------------------------
    def attach(self, sess) -> None:
        """Use ``sess`` from now on (also after a reopen); a kind resets its per-session state.

        Parameters
        ----------
        sess
            The open ``tvm.rpc`` session.
        """
        self.sess = sess
        cpu = self.device_type in ("cpu", 1)
        self.dev = sess.cpu(0) if cpu else sess.device(self.device_type, 0)

    def setup(self) -> None:
        """Upload what every candidate shares, once per session (nothing here).

        Raises
        ------
        Exception
            What the device raised.
        """

    def load(self, built, tag) -> tuple[Any, list[np.ndarray]]:
        """Load one candidate on the device and run it once for its outputs.

        Parameters
        ----------
        built
            The candidate's build (its ``error`` is ``None``).
        tag
            What the kind needs to load it.

        Returns
        -------
        (handle, list of numpy.ndarray)
            What :meth:`time` times, and the outputs, flattened.

        Raises
        ------
        NotMeasured
            The candidate cannot run on this device (the message says why).
        Exception
            Any other failure (the runner then checks the device).
        """
        raise NotImplementedError

    def time(self, handle) -> float:
        """Time a loaded candidate: ``number`` runs averaged into one sample.

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
            Any failure (the runner then checks the device).
        """
        raise NotImplementedError

    def sample_runs(self, first_s: float) -> int:
        """Runs per sample after the warm-ups.

        Parameters
        ----------
        first_s
            Seconds of the batch's first warm-up call (the anchor's); 1.0 when it failed.

        Returns
        -------
        int
            At least 1 (here: 1).
        """
        return 1

    def settle_after(self, handle) -> float:
        """Seconds to wait after a sample of ``handle`` before the next candidate's: a runtime
        whose threads spin after a run (ONNX Runtime's intra-op pool, PyTorch's OpenMP team)
        takes cycles from whatever runs next in the same device process.

        Parameters
        ----------
        handle
            What :meth:`load` returned.

        Returns
        -------
        float
            Seconds (here: 0, nothing spins).
        """
        return 0.0

    def tolerance(self, tag) -> float | None:
        """The output tolerance of one candidate, when not the runner's ``rtol``.

        Parameters
        ----------
        tag
            The candidate's tag.

        Returns
        -------
        float or None
            ``None``: the runner's.
        """
        return None

    # -- shared -------------------------------------------------------------------------------
    def size_pool(self) -> int | None:
        """Size the TVM CPU pool of the thread that serves this session to :attr:`threads`
        (see the module docstring); a device without
        :data:`~tvm_sched.runtime.rpc.CONFIG_THREADS` (a plain TVM server) keeps its own pool,
        with a warning. A device call: run it through
        :meth:`call`, or from inside one.

        Returns
        -------
        int or None
            The pool's threads as the device reports them after (``None``: not sized).

        Raises
        ------
        Exception
            What the device raised.
        """
        if not self.threads:
            return None
        from tvm_sched.runtime import rpc

        try:
            fn = self.sess.get_function(rpc.CONFIG_THREADS)
        except Exception:  # noqa: BLE001 - not a tvm_sched server: nothing to size with
            log.warning("device %s has no %s (a plain TVM server): the VM runs on the "
                        "server's own thread pool, not on %d threads", self.name,
                        rpc.CONFIG_THREADS, self.threads)
            return None
        fn(int(self.threads))
        got = int(self.sess.get_function("runtime.NumThreads")())
        if got != self.threads:
            log.warning("device %s: the VM's thread pool has %d threads, not the %d asked "
                        "(TVM_NUM_THREADS caps it where the server started)", self.name, got,
                        self.threads)
        return got

    def call(self, fn: Callable, *args, timeout: float | None = None):
        """``fn(*args)`` on this device's worker thread, within the time limit.

        Parameters
        ----------
        fn
            The device call.
        *args
            Its arguments.
        timeout
            Seconds it may take (``None``: the adapter's ``timeout``).

        Returns
        -------
        Any
            What ``fn`` returned.

        Raises
        ------
        SessionLost
            It did not answer in time (the worker is let go: it may stay stuck there).
        Exception
            What ``fn`` raised.
        """
        limit = timeout or self.timeout
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix=f"tvm-sched-{self.name}")
        fut = self._pool.submit(fn, *args)
        try:
            return fut.result(timeout=limit)
        except cf.TimeoutError:
            self.close()
            raise SessionLost(f"device {self.name} timed out after {limit:.0f} s: it did not "
                              "answer within the time limit") from None

    def _alive(self) -> None:
        """Raise :class:`DeviceUnavailableError` unless the device still answers."""
        import tvm

        try:
            self.call(lambda: tvm.runtime.tensor(np.zeros(1, "float32"), self.dev).numpy(),
                      timeout=min(self.timeout, 10.0))
        except Exception as err:  # noqa: BLE001 - whatever it is, the device is gone
            raise DeviceUnavailableError(f"device {self.name} was lost: "
                                         f"{one_line(err, last=True)}") from None

    def lost(self) -> DeviceUnavailableError | None:
        """Whether the device is gone (asked after a failure).

        Returns
        -------
        DeviceUnavailableError or None
            The error that says so, or ``None`` while it answers.
        """
        try:
            self._alive()
        except DeviceUnavailableError as err:
            return err
        return None

    def restart(self, stage: str, err: DeviceUnavailableError) -> None:
        """A new session in place of the lost one, once per ``stage``; the reference stays
        (the same device).

        Parameters
        ----------
        stage
            What was running (``"measure"``, ``"profile"``).
        err
            The loss.

        Raises
        ------
        DeviceUnavailableError
            ``err`` when there is no ``reopen`` or ``stage`` reopened once already; the reopen's
            own error, or one saying it could not be reopened.
        """
        if self.reopen is None or stage in self._reopened:
            raise err
        self._reopened.add(stage)
        log.warning("%s; reopening the session once", err)
        self.close()
        self.reconnects += 1
        try:
            self.attach(self.reopen())
            self.setup()
        except DeviceUnavailableError:
            raise
        except Exception as again:  # noqa: BLE001 - any failure to reconnect ends the run
            raise DeviceUnavailableError(f"device {self.name} was lost and could not be "
                                         f"reopened: {one_line(again, last=True)}") from err

    def close(self) -> None:
        """Let the worker thread go (a call still running there is abandoned)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


