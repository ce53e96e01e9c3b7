"""Tuning objectives and the ask/tell search loop -- pure Python, no TVM.

Contract
--------
- The records are :mod:`tvm_sched.tune.record`'s (:class:`MeasureResult`, :class:`TuneRecord`,
  one type for both tuning paths); they are the loop's vocabulary and importable from here.
- The candidates are :mod:`tvm_sched.tune.candidate`'s (one base,
  :class:`~tvm_sched.tune.candidate.TuneCandidate`, with a kind; its kinds :class:`Candidate`,
  VM orders, and :class:`LaneCandidate`, the Relax VM or a lane plan), importable from here; so
  is the builder role :func:`search` takes (:class:`~tvm_sched.tune.candidate.CandidateBuilder`,
  also named ``Builder`` here).
- :class:`TuneObjective`: what solvers optimise (``solver_objective``), the proxy that ranks
  proposals (:meth:`~TuneObjective.proxy`), which proposals are measured
  (:meth:`~TuneObjective.rank`), the pick rule (:meth:`~TuneObjective.pick`), how well the proxy
  ranked the measurements (:meth:`~TuneObjective.spearman`) and the report's columns.
  :class:`LaneObjective` is the lane objective: predicted makespan as the proxy, the pick the
  fastest candidate that beats the Relax VM beyond noise (the lower quartile of its paired
  per-round speed-ups over the VM above 1), else the VM; ties by fewer arena bytes, then name.
  :class:`OrderObjective` is the VM-order objectives' (``latency``, ``memory``), with the rules
  of :mod:`tvm_sched.tune.pick`.
- :func:`search`: propose -> rank -> (skip what the database has) -> build -> measure -> tell ->
  pick, with the builder, runner and database passed in (so the rules are tested with fakes).
  The anchor of every batch is the candidate with ``kind == "vm"``; it is measured again when
  the database already holds it and something else is measured. A candidate whose build
  failed is measured as an error result, not raised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tvm_sched.tune.candidate import Candidate, CandidateBuilder, LaneCandidate, TuneCandidate
from tvm_sched.tune.pick import pick, rank
from tvm_sched.tune.record import MeasureResult, TuneRecord

__all__ = ["TuneCandidate", "Candidate", "LaneCandidate", "CandidateBuilder", "MeasureResult",
           "TuneRecord", "TuneObjective", "LaneObjective", "OrderObjective", "objective_for",
           "SearchOutcome", "search", "spearman_or_none"]


def spearman_or_none(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None under 3 points or constant.

    Parameters
    ----------
    x, y
        Paired values.

    Returns
    -------
    float or None
        The correlation; ``None`` under 3 points, when either side is constant or it is not
        finite.

    Examples
    --------
    >>> spearman_or_none([1, 2, 3], [10, 30, 20]), spearman_or_none([1, 2], [1, 2])
    (0.5, None)
    """
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None

    def ranks(v):
        a = np.asarray(v, float)
        order = np.argsort(a, kind="stable")
        r = np.empty(len(a))
        r[order] = np.arange(len(a))
        for val in np.unique(a):  # ties share their mean rank
            idx = a == val
            r[idx] = r[idx].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    c = np.corrcoef(rx, ry)[0, 1]
    return None if not math.isfinite(c) else float(c)


class TuneObjective:
    """What a tuning run optimises; see the module docstring. Subclasses fill in the rules."""

    name = "objective"
    #: The solvers' objective name (:func:`tvm_sched.cost.make_objective`).
    solver_objective = ""
    #: Columns of the report's per-candidate table.
    columns: tuple[str, ...] = ()

    def proxy(self, c: LaneCandidate) -> float:
        """The candidate's proxy value; smaller ranks first.

        Parameters
        ----------
        c
            A candidate.

        Returns
        -------
        float
            The proxy.
        """
        raise NotImplementedError

    def rank(self, cands: Sequence[LaneCandidate], budget: int | None, top_k: int
             ) -> list[LaneCandidate]:
        """Baselines, then the ``top_k`` proposals by the proxy (over-budget ones left out).

        Parameters
        ----------
        cands
            The proposals.
        budget
            Arena bytes a proposal may take; ``None``: no limit.
        top_k
            How many non-baseline proposals to keep.

        Returns
        -------
        list
            The candidates to measure, baselines first.
        """
        base = [c for c in cands if c.baseline]
        rest = [c for c in cands if not c.baseline
                and (budget is None or (c.arena_bytes or 0) <= budget)]
        rest.sort(key=lambda c: (self.proxy(c), c.arena_bytes or 0, c.name))
        return base + rest[:max(0, top_k)]

    def pick(self, records: Sequence[TuneRecord], budget: int | None
             ) -> tuple[TuneRecord | None, TuneRecord | None]:
        """The pick of the measured records, and the fastest.

        Parameters
        ----------
        records
            The records of the run.
        budget
            Bytes the pick may take; ``None``: no limit.

        Returns
        -------
        tuple
            ``(pick, fastest)``, either ``None`` when nothing qualifies.
        """
        raise NotImplementedError

    def spearman(self, records: Sequence[TuneRecord]) -> Any:
        """How well the proxy ranked the measured candidates (None: not measured).

        Parameters
        ----------
        records
            The records of the run.

        Returns
        -------
        Any
            The subclass's correlation(s); ``None`` here.
        """
        return None


class LaneObjective(TuneObjective):
    """Latency over lanes: predicted makespan ranks; measured speed-up over the VM picks."""

    name = "lanes"
    solver_objective = "makespan"
    columns = ("candidate", "source", "lanes", "predicted ms", "median ms", "speed-up",
               "arena bytes")

    def proxy(self, c: LaneCandidate) -> float:
        """The predicted makespan, infinite when there is none.

        Parameters
        ----------
        c
            A lane candidate.

        Returns
        -------
        float
            Seconds.
        """
        return c.predicted if c.predicted is not None else math.inf

    @staticmethod
    def beyond_noise(r: TuneRecord) -> bool:
        """It beat the VM sample taken beside it in at least three rounds out of four: the
        lower quartile of its paired per-round speed-ups is above 1.

        The pairs are what the interleaved rounds exist for: a machine whose speed drifts from
        round to round widens both latency distributions alike, so comparing their quartiles
        unpaired (the rule before) kept the VM against a plan that won every round (bench darts
        on tuned kernels: 1.19x median, paired lower quartile 1.09x, yet the latency IQRs
        overlapped).

        Parameters
        ----------
        r
            A lane record with its VM anchor samples.

        Returns
        -------
        bool
            True when it beats the VM beyond noise.
        """
        sp = r.speedup
        return bool(sp and sp["q1"] > 1.0)

    def pick(self, records, budget):
        """(pick, fastest): the fastest lane candidate (median paired speed-up) that beats the
        VM beyond noise and fits ``budget``, else the VM; when the VM's own bytes exceed
        ``budget``, the fastest measured plan that fits (None if none was measured);
        ``fastest`` ignores the noise test.

        Parameters
        ----------
        records
            The records of the run.
        budget
            Arena bytes the pick may take; ``None``: no limit.
        """
        vm = next((r for r in records if r.kind == "vm" and r.ok), None)
        ok = [r for r in records if r.ok and r.kind not in ("vm", "anchor") and r.anchor_samples
              and (budget is None or (r.lane_facts.arena_bytes is not None
                                    and r.lane_facts.arena_bytes <= budget))]

        def key(r: TuneRecord) -> tuple:
            return (-r.speedup["median"], r.lane_facts.arena_bytes or 0, r.candidate)

        fastest = min(ok, key=key) if ok else vm
        if vm is not None and budget is not None and (vm.lane_facts.arena_bytes or 0) > budget:
            # the VM itself is over the budget: the fastest plan that fits, if any was measured
            return (min(ok, key=key) if ok else None), fastest
        clear = [r for r in ok if self.beyond_noise(r)]
        return (min(clear, key=key) if clear else vm), fastest

    def spearman(self, records) -> float | None:
        """Predicted makespan against the measured latency relative to the VM of its own
        rounds (comparable across runs).

        Parameters
        ----------
        records
            The records of the run.

        Returns
        -------
        float or None
            As :func:`spearman_or_none`.
        """
        ok = [r for r in records if r.ok and r.lane_facts.predicted is not None and r.kind != "vm"
              and r.anchor_samples]
        return spearman_or_none([r.lane_facts.predicted for r in ok],
                                [1.0 / r.speedup["median"] for r in ok])


class OrderObjective(TuneObjective):
    """The VM-order objectives (``latency``, ``memory``) of :mod:`tvm_sched.tune.tuner`; the
    rules are :mod:`tvm_sched.tune.pick`'s, on :class:`~tvm_sched.tune.objective.Candidate`
    proposals and :class:`TuneRecord` records.

    Parameters
    ----------
    name
        ``"latency"`` or ``"memory"``.
    keep_default
        Keep TVM's order unless a candidate earns its place (:func:`~tvm_sched.tune.pick.pick`).

    Raises
    ------
    ValueError
        ``name`` is neither.
    """

    solver_objective = "arena_memory"  # solvers propose on memory (see candidates.propose)
    #: The proxies whose rank correlation with the measured latency is reported.
    proxies = ("cache_miss", "planned", "peak")

    def __init__(self, name: str, keep_default: bool = True):
        if name not in ("latency", "memory"):
            raise ValueError(f"objective must be latency or memory, got {name!r}")
        self.name = name
        self.keep_default = keep_default
        self.columns = ("candidate", "source", "planned KiB", "cache-miss KiB", "median ms",
                        "IQR ms", "TVM / this", "status")

    def proxy(self, c) -> tuple:
        """The objective's proxies, the main one first.

        Parameters
        ----------
        c
            A VM-order candidate, proxies filled in.

        Returns
        -------
        tuple
            ``(planned, cache_miss)`` for memory, ``(cache_miss, planned)`` for latency.
        """
        p = c.proxy
        return (p["planned"], p["cache_miss"]) if self.name == "memory" else \
            (p["cache_miss"], p["planned"])

    def rank(self, cands, budget, top_k):
        """As :func:`~tvm_sched.tune.pick.rank`.

        Parameters
        ----------
        cands
            The proposals, proxies filled in.
        budget
            Planned bytes a proposal may take; ``None``: no limit.
        top_k
            How many non-baseline proposals to keep.
        """
        return rank(list(cands), self.name, budget, top_k)

    def pick(self, records, budget):
        """As :func:`~tvm_sched.tune.pick.pick`.

        Parameters
        ----------
        records
            The records of the run.
        budget
            Planned bytes the pick may take; ``None``: no limit.
        """
        return pick(list(records), self.name, budget, self.keep_default)

    def spearman(self, records) -> dict[str, float | None]:
        """Each proxy against the measured median latency (records measured without error).

        Parameters
        ----------
        records
            The records of the run.

        Returns
        -------
        dict
            Per proxy name, as :func:`spearman_or_none`.
        """
        ok = [r for r in records if r.ok]
        proxies = [(r.order_facts.proxy, r.latency["median"]) for r in ok]
        return {p: spearman_or_none([x[p] for x, _ in proxies if p in x],
                                    [ms for x, ms in proxies if p in x])
                for p in self.proxies}


def objective_for(name: str, *, lanes=None, keep_default: bool = True) -> TuneObjective:
    """The objective a run uses: lanes -> :class:`LaneObjective`, else the VM-order one.

    Parameters
    ----------
    name
        The VM-order objective, ``"latency"`` or ``"memory"`` (ignored with ``lanes``).
    lanes
        The run's lanes; ``None``: a VM-order run.
    keep_default
        As :class:`OrderObjective`.

    Returns
    -------
    TuneObjective
        A new objective.

    Raises
    ------
    ValueError
        A VM-order ``name`` that is neither objective.
    """
    return LaneObjective() if lanes is not None else OrderObjective(name, keep_default)


# --------------------------------------------------------------------------------------------
# the loop
#: The builder role :func:`search` takes (:class:`~tvm_sched.tune.candidate.CandidateBuilder`;
#: the name this module gave it before).
Builder = CandidateBuilder


class Runner(Protocol):
    """What :func:`search` measures with."""

    def measure(self, built: Sequence[tuple[Any, Any]], anchor: tuple[Any, Any],
                done: Callable[[MeasureResult], None]) -> None:
        """Measure built candidates interleaved with the anchor.

        Parameters
        ----------
        built
            ``(candidate, built)`` pairs.
        anchor
            The VM's ``(candidate, built)`` pair, measured in every batch.
        done
            Called with each candidate's result.
        """
        ...


class Database(Protocol):
    """Where :func:`search` keeps its records."""

    def records(self) -> dict[tuple, TuneRecord]:
        """The records held.

        Returns
        -------
        dict
            Per key, its record.
        """
        ...

    def append(self, rec: TuneRecord) -> None:
        """Keep one more record.

        Parameters
        ----------
        rec
            The record.
        """
        ...


@dataclass
class SearchOutcome:
    """What :func:`search` returns."""

    chosen: list[Any]
    records: list[TuneRecord]
    best: TuneRecord | None
    fastest: TuneRecord | None
    measured_now: int
    #: :meth:`TuneObjective.spearman` of the records.
    spearman: Any
    #: Seconds spent building and measuring in this round.
    seconds: dict[str, float] = field(default_factory=dict)


def search(objective: TuneObjective, proposals: Iterable[TuneCandidate], *,
           builder: CandidateBuilder, runner: Runner, database: Database,
           key: Callable[[TuneCandidate], tuple],
           make_record: Callable[[Any, MeasureResult], TuneRecord],
           budget: int | None = None, top_k: int = 8,
           progress: Callable[[str, int, int, str], None] | None = None) -> SearchOutcome:
    """One ask/tell round (see the module docstring).

    A proposal is a :class:`~tvm_sched.tune.candidate.TuneCandidate` (a :class:`LaneCandidate`
    or a :class:`~tvm_sched.tune.objective.Candidate`; what is used is its ``name``, ``kind``,
    ``baseline`` and ``hash``). ``key(c)`` is
    the database key of candidate ``c``; the candidate with ``kind == "vm"``, which must be
    among the baselines, is the anchor of every batch. Records the database already holds are
    not measured again; when nothing is left to measure, nothing is built and no batch runs.
    ``progress(stage, done, total, name)`` follows the ``build`` and ``measure`` stages.

    Parameters
    ----------
    objective
        Ranks the proposals and picks among the records.
    proposals
        The candidates.
    builder
        Builds each candidate to measure.
    runner
        Measures the built candidates.
    database
        Records already measured, and where new ones go.
    key
        The database key of a candidate.
    make_record
        The record of a candidate and its measurement.
    budget
        Bytes a candidate may take; ``None``: no limit.
    top_k
        Non-baseline proposals measured.
    progress
        Called as ``progress(stage, done, total, name)``.

    Returns
    -------
    SearchOutcome
        The measured candidates, their records, the pick and the fastest.

    Raises
    ------
    ValueError
        No proposal has ``kind == "vm"``.
    """
    prog = progress or (lambda *a: None)
    chosen = objective.rank(list(proposals), budget, top_k)
    vm = next((c for c in chosen if c.kind == "vm"), None)
    if vm is None:
        raise ValueError("the proposals hold no Relax VM candidate (kind='vm') to anchor on")
    have = database.records()
    todo = [c for c in chosen if key(c) not in have]
    measured = 0
    seconds = {"build": 0.0, "measure": 0.0}
    if todo:
        t0 = time.perf_counter()
        built = []
        for i, c in enumerate(todo):
            built.append((c, builder.build(c)))
            prog("build", i + 1, len(todo), c.name)
        by_hash = {c.hash: c for c in todo}
        # measured in every batch; recorded only when it is to do
        anchor = next(((c, b) for c, b in built if c.kind == "vm"), None) or \
            (vm, builder.build(vm))
        seconds["build"] = time.perf_counter() - t0

        def done(m: MeasureResult) -> None:
            nonlocal measured
            c = by_hash[m.hash]
            database.append(make_record(c, m))
            measured += 1
            prog("measure", measured, len(todo), c.name)

        t0 = time.perf_counter()
        prog("measure", 0, len(todo), "starting")
        runner.measure(built, anchor, done)
        seconds["measure"] = time.perf_counter() - t0
    have = database.records()
    records = [have[key(c)] for c in chosen if key(c) in have]
    best, fastest = objective.pick(records, budget)
    return SearchOutcome(chosen, records, best, fastest, measured, objective.spearman(records),
                         seconds)
