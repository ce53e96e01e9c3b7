"""The VM-order objectives' decision rules, as pure functions of candidates and typed records
(no TVM, no devices).

- :func:`parse_memory_budget`: the ``--memory-budget`` text (bytes, ``64KiB``, ``0.9x`` of TVM's
  planned bytes) to bytes, rejecting what cannot be a budget (negative, zero, not finite);
- :func:`rank`: which proposals are measured (the baselines, then the top k by the objective's
  proxy among those that fit the budget);
- :func:`pick`: the final choice from the measured :class:`~tvm_sched.tune.record.TuneRecord`
  records, where TVM's order is the record with ``kind == "vm"``; :func:`beyond_noise` is its
  test for "faster than TVM's order" and :func:`relative_latency` what it compares.

The search loop (:func:`tvm_sched.tune.objective.search`, through
:class:`~tvm_sched.tune.objective.OrderObjective`) is a fixed sequence around these, so the
rules are tested with hand-made records, as MetaSchedule tests its search with fake results.
"""

from __future__ import annotations

import math
from typing import Any

from tvm_sched.errors import TuneInputError
from tvm_sched.tune.record import TuneRecord

__all__ = ["parse_memory_budget", "rank", "pick", "beyond_noise", "relative_latency"]

_UNITS = (("kib", 1024), ("mib", 1024**2), ("gib", 1024**3), ("b", 1))


def parse_memory_budget(value: int | str | None, tvm_planned: int) -> int | None:
    """Bytes from an int, ``"123456"``, ``"64KiB"``/``"2MiB"``/``"1GiB"`` or ``"0.9x"`` of
    ``tvm_planned`` (TVM's order's planned bytes).

    Parameters
    ----------
    value
        The budget as given; ``None``: no budget.
    tvm_planned
        Bytes TVM's own order plans, the base of a ratio.

    Returns
    -------
    int or None
        The budget in bytes, ``None`` when ``value`` is.

    Raises
    ------
    TuneInputError
        Not a number with one of those forms, or a budget that is not finite and > 0.

    Examples
    --------
    >>> parse_memory_budget("0.5x", 1000), parse_memory_budget("2KiB", 0)
    (500, 2048)
    >>> parse_memory_budget("infx", 1000)
    Traceback (most recent call last):
    ...
    tvm_sched.errors.TuneInputError: memory budget must be finite and > 0, got 'infx'
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TuneInputError(f"memory budget must be bytes, got {value!r}")
    text = str(value).strip().lower()
    mult: float = 1
    if text.endswith("x"):
        text, mult = text[:-1], float(tvm_planned)
    else:
        for suffix, unit in _UNITS:
            if text.endswith(suffix):
                text, mult = text[: -len(suffix)], unit
                break
    try:
        amount = float(text)
    except ValueError:
        raise TuneInputError(f"memory budget must be bytes, NKiB/NMiB/NGiB or a ratio like "
                             f"0.9x, got {value!r}") from None
    if not math.isfinite(amount) or amount <= 0:
        raise TuneInputError(f"memory budget must be finite and > 0, got {value!r}")
    if isinstance(mult, int) and amount * mult < 1:
        raise TuneInputError(f"memory budget must be at least 1 byte, got {value!r}")
    return int(amount * mult)


def rank(cands: list[Any], objective: str, budget: int | None, top_k: int) -> list[Any]:
    """Baselines, then the top k of the other candidates by the objective's proxy (those over
    the memory budget left out). A candidate has ``baseline`` and ``proxy`` attributes.

    Parameters
    ----------
    cands
        The candidates, proxies filled in.
    objective
        ``"memory"`` ranks by planned bytes, anything else by cache misses first.
    budget
        Bytes a candidate may plan; ``None``: no limit.
    top_k
        How many non-baseline candidates to keep.

    Returns
    -------
    list
        The baselines, then the ``top_k`` best others, best first.
    """
    base = [c for c in cands if c.baseline]
    rest = [c for c in cands if not c.baseline]
    if budget is not None:
        rest = [c for c in rest if c.proxy["planned"] <= budget]
    if objective == "memory":
        rest.sort(key=lambda c: (c.proxy["planned"], c.proxy["cache_miss"]))
    else:
        rest.sort(key=lambda c: (c.proxy["cache_miss"], c.proxy["planned"]))
    return base + rest[:top_k]


def relative_latency(r: TuneRecord) -> float:
    """Latency relative to TVM's order measured in the same batch (the median if no anchor).

    Parameters
    ----------
    r
        A record measured without error.

    Returns
    -------
    float
        The ratio to the batch's TVM order, or the median latency in seconds without one.
    """
    rel = r.relative
    return rel if rel is not None else r.latency["median"]


def beyond_noise(fast: TuneRecord, slow: TuneRecord) -> bool:
    """Whether ``fast`` beats ``slow`` by more than the noise: its upper quartile of latency
    lies below ``slow``'s lower quartile. When ``slow`` is TVM's order and ``fast`` carries the
    anchor of its own batch (TVM's order interleaved with it on the same device), that anchor
    is the comparison.

    Parameters
    ----------
    fast
        The record that should be faster.
    slow
        The record it is compared with.

    Returns
    -------
    bool
        True when ``fast`` is faster beyond the noise.
    """
    other = fast.anchor if slow.kind == "vm" and fast.anchor else slow.latency
    return fast.latency["q3"] < other["q1"]


def _bytes(r: TuneRecord) -> float:
    b = r.order_facts.planned_bytes
    return math.inf if b is None else b


def pick(records: list[TuneRecord], objective: str, budget: int | None,
         keep_default: bool = True) -> tuple[TuneRecord | None, TuneRecord | None]:
    """(pick, fastest). Latency: the fastest of the candidates that beat TVM's order beyond
    noise, else TVM's order. Memory: the fewest planned bytes, TVM's order when it ties. A
    reorder must earn its place. Latencies are compared relative to TVM's order measured in
    the same batch on the same device. Only records measured without error, and under the
    memory budget when there is one, take part (for memory: only those with planned bytes).

    Parameters
    ----------
    records
        The measured records of the run.
    objective
        ``"latency"`` or ``"memory"``.
    budget
        Bytes the pick may plan; ``None``: no limit.
    keep_default
        Keep TVM's order unless a candidate beats it beyond noise (latency) or plans fewer
        bytes (memory).

    Returns
    -------
    tuple
        ``(pick, fastest)``; both ``None`` when no record takes part.
    """
    ok = [r for r in records if r.ok]
    if budget is not None or objective == "memory":
        ok = [r for r in ok if r.order_facts.planned_bytes is not None
              and (budget is None or r.order_facts.planned_bytes <= budget)]
    if not ok:
        return None, None
    base = next((r for r in ok if r.kind == "vm"), None)
    if objective == "memory":
        least = min(_bytes(r) for r in ok)
        if keep_default and base is not None and _bytes(base) == least:
            return base, base
        best = min((r for r in ok if _bytes(r) == least), key=relative_latency)
        return best, best
    fastest = min(ok, key=lambda r: (relative_latency(r), _bytes(r)))
    if not keep_default or base is None:
        return fastest, fastest
    clear = [r for r in ok if r is not base and beyond_noise(r, base)]
    if not clear:
        return base, fastest
    return min(clear, key=lambda r: (relative_latency(r), _bytes(r))), fastest
