"""The cores a lane plan may use: which there are, whether the lanes fit, what they offer now.

Contract
--------
- :func:`usable_cores` is the one answer to "which CPUs may this process run on" (its affinity
  where the OS has one); :func:`num_cores` is its length. Engines, the builder, the RPC server
  and the tuner all ask it.
- :func:`check_cores` is the one "too many lanes" check: ``lanes × threads_per_lane`` threads must
  fit the usable cores unless ``allow_oversubscribe``; it says whether the lanes oversubscribe.
- :func:`lane_cores` shares the usable cores out to lanes in disjoint blocks (for pinning).
- :func:`parallelism` measures how much parallel work the cores take now (another process may
  hold some of them) and :func:`lanes_for` turns that into a lane count (``--lanes auto``).

Pure Python, no TVM.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from tvm_sched.errors import InvalidScheduleError

__all__ = ["usable_cores", "num_cores", "check_cores", "lane_cores", "parallelism", "lanes_for",
           "MIN_EFFICIENCY"]

#: ``--lanes auto`` takes the most threads k whose parallel efficiency is at least this.
MIN_EFFICIENCY = 0.75


def usable_cores() -> list[int]:
    """The CPU ids this process may run on (``os.sched_getaffinity`` where it exists).

    Returns
    -------
    list of int
        Sorted CPU ids; ``0..cpu_count-1`` where affinity is unknown.

    Examples
    --------
    >>> len(usable_cores()) >= 1
    True
    """
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def num_cores() -> int:
    """How many cores this process may use (the length of :func:`usable_cores`).

    Returns
    -------
    int
        At least 1.
    """
    return len(usable_cores())


def check_cores(lanes: int, threads_per_lane: int = 1, allow_oversubscribe: bool = False) -> bool:
    """Check that ``lanes`` lanes of ``threads_per_lane`` threads fit the usable cores.

    Parameters
    ----------
    lanes
        Lane threads the plan needs.
    threads_per_lane
        TVM CPU threads per lane (at least 1).
    allow_oversubscribe
        Allow more threads than usable cores.

    Returns
    -------
    bool
        Whether the lanes oversubscribe the cores (possible only with ``allow_oversubscribe``).

    Raises
    ------
    InvalidScheduleError
        ``threads_per_lane`` < 1, or the lanes need more cores than this process may use and
        ``allow_oversubscribe`` is False (the message says how many and how to allow it).

    Examples
    --------
    >>> check_cores(1)
    False
    >>> check_cores(num_cores() + 1, allow_oversubscribe=True)
    True
    """
    threads_per_lane = int(threads_per_lane)
    if threads_per_lane < 1:
        raise InvalidScheduleError(f"threads_per_lane must be >= 1, got {threads_per_lane}")
    cores = len(usable_cores())
    need = int(lanes) * threads_per_lane
    if need > cores and not allow_oversubscribe:
        raise InvalidScheduleError(
            f"{lanes} lanes x {threads_per_lane} thread(s) need {need} cores; this process may "
            f"use {cores} (pass allow_oversubscribe=True to run anyway)")
    return need > cores


def lane_cores(lane: int, threads_per_lane: int, cores: Sequence[int] | None = None
               ) -> list[int] | None:
    """Cores for ``lane`` (disjoint blocks of ``threads_per_lane``); None when they run out.

    Parameters
    ----------
    lane
        The lane index.
    threads_per_lane
        Cores per lane.
    cores
        The cores to share out; default :func:`usable_cores`.

    Returns
    -------
    list of int or None
        The lane's ``threads_per_lane`` cores.

    Examples
    --------
    >>> lane_cores(1, 2, [0, 1, 2, 3])
    [2, 3]
    >>> lane_cores(2, 2, [0, 1, 2, 3]) is None
    True
    """
    cores = usable_cores() if cores is None else list(cores)
    lo = lane * threads_per_lane
    if lo + threads_per_lane > len(cores):
        return None
    return cores[lo:lo + threads_per_lane]


def _rounds(threads: int, buf: bytes, count: int) -> float:
    """Wall seconds for ``threads`` threads to hash ``buf`` ``count`` times each, at once
    (SHA-256 of a large buffer runs without the GIL, so the threads really run together)."""
    import hashlib
    import threading

    def work() -> None:
        for _ in range(count):
            hashlib.sha256(buf).digest()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - t0


def parallelism(work_ms: float = 20.0, trials: int = 3) -> dict:
    """How much parallel work this process's cores take now.

    For k = 1 .. :func:`num_cores` threads, each thread does the same CPU-bound work (SHA-256 of
    a 1 MiB buffer, which runs without the GIL; about ``work_ms`` alone) at the same time;
    ``efficiency[k-1]`` is the time of one thread alone over the time of k at once (1.0: k
    cores free; on two cores with one busy process beside, 2 threads get about 0.67). Trials
    are interleaved over k and the median kept.

    Parameters
    ----------
    work_ms
        About how long one thread's work lasts alone.
    trials
        Samples per thread count.

    Returns
    -------
    dict
        ``cores``, ``efficiency`` (one per k), ``load`` (the 1-minute load average).
    """
    import statistics

    cores = num_cores()
    buf = os.urandom(1 << 20)
    _rounds(1, buf, 2)  # warm-up
    per = max(_rounds(1, buf, 4) / 4, 1e-6)
    count = max(1, round(work_ms / 1e3 / per))
    samples: dict[int, list[float]] = {k: [] for k in range(1, cores + 1)}
    for _ in range(max(1, trials)):
        for k in samples:
            samples[k].append(_rounds(k, buf, count))
    alone = statistics.median(samples[1])
    eff = [min(1.0, alone / statistics.median(samples[k])) for k in samples]
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {"cores": cores, "efficiency": eff, "load": load}


def lanes_for(probe: dict, min_efficiency: float = MIN_EFFICIENCY) -> int:
    """The most threads k whose parallel efficiency in ``probe`` (:func:`parallelism`) is at
    least ``min_efficiency`` (1 at least).

    Parameters
    ----------
    probe
        A :func:`parallelism` result.
    min_efficiency
        The least efficiency a lane count must reach.

    Returns
    -------
    int
        A lane count >= 1.

    Examples
    --------
    >>> lanes_for({"cores": 2, "efficiency": [1.0, 0.97]})
    2
    >>> lanes_for({"cores": 2, "efficiency": [1.0, 0.66]})  # a busy process on one core
    1
    """
    eff = list(probe.get("efficiency") or [1.0])
    return max(k for k in range(1, len(eff) + 1) if k == 1 or eff[k - 1] >= min_efficiency)
