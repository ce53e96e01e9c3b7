"""What the runner role's protocol uses beside the devices: the output check and the spread
of candidates over devices.

The one runner (:class:`tvm_sched.tune.runner.InterleavedRunner`) checks every candidate's
outputs against a reference before anything is timed, deals the candidates round-robin over the
devices, which measure at the same time, and reports each result once from one thread at a
time. The pieces of it that are independent of what a candidate is and of the protocol's state
live here (the benchmarks and the tuner's own reference check use :func:`compare_outputs` too).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = ["compare_outputs", "deal", "serialised", "spread"]

D = TypeVar("D")
T = TypeVar("T")


def compare_outputs(outs: Sequence[np.ndarray], reference: Sequence[np.ndarray], rtol: float,
                    *, whose: str = "the reference") -> tuple[float, str | None]:
    """The largest absolute difference of ``outs`` from ``reference``, and why they differ
    (None when every output is within ``rtol`` of the reference's largest magnitude, at least
    1).

    Parameters
    ----------
    outs
        The candidate's outputs.
    reference
        The outputs that define correct (TVM's order, the Relax VM).
    rtol
        Tolerance relative to each reference output's largest magnitude (at least 1).
    whose
        How the message names the reference ("the reference", "the VM's").

    Returns
    -------
    (float, str or None)
        The largest difference (inf when the outputs cannot be compared) and the error.
    """
    if len(outs) != len(reference):
        return float("inf"), f"{len(outs)} outputs, {whose} has {len(reference)}"
    worst = 0.0
    for o, r in zip(outs, reference, strict=True):
        if o.shape != r.shape:
            return float("inf"), f"output shape {o.shape} != {whose} {r.shape}"
        diff = float(np.max(np.abs(o.astype(np.float64) - r))) if o.size else 0.0
        worst = max(worst, diff)
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        if not np.isfinite(diff) or diff > rtol * max(scale, 1.0):
            return diff, f"outputs differ from {whose} (max abs diff {diff:.3g})"
    return worst, None


def serialised(done: Callable[[T], Any]) -> Callable[[T], None]:
    """``done`` behind a lock: the devices' threads report one at a time.

    Parameters
    ----------
    done
        The callback to serialise.

    Returns
    -------
    callable
    """
    lock = threading.Lock()

    def once(result: T) -> None:
        with lock:
            done(result)
    return once


def spread(devices: Sequence[D], shares: Sequence[Sequence[Any]],
           work: Callable[[D, Sequence[Any]], None]) -> None:
    """``work(device, share)`` for every device with a non-empty share, all at once (one
    thread per device; in this thread when there is one device); the first error raises once
    every device has finished.

    Parameters
    ----------
    devices
        The devices.
    shares
        One share of the candidates per device (:func:`deal`).
    work
        Measures one share on one device.

    Raises
    ------
    Exception
        What ``work`` raised, on any device.
    """
    jobs = [(d, s) for d, s in zip(devices, shares, strict=True) if s]
    if len(jobs) == 1:
        work(*jobs[0])
        return
    with cf.ThreadPoolExecutor(max(1, len(jobs))) as ex:
        futs = [ex.submit(work, d, s) for d, s in jobs]
        for f in futs:
            f.result()


def deal(items: Sequence[T], count: int) -> list[list[T]]:
    """``items`` dealt round-robin into ``count`` shares.

    Parameters
    ----------
    items
        The candidates.
    count
        How many devices.

    Returns
    -------
    list of list
    """
    return [list(items[i::count]) for i in range(count)]
