"""Tuning objectives, typed records and the ask/tell search loop -- pure Python, no TVM.

Contract
--------
- :class:`MeasureResult`: what measuring one candidate gave (latency samples in seconds, the
  samples of the anchor -- the Relax VM -- interleaved with it in the same batch, the output
  check, or an error). Errors are results, never exceptions.
- :class:`TuneRecord`: one database line (format :data:`RECORD_FORMAT`), keyed by (model hash,
  candidate hash, full target string, device key); :meth:`TuneRecord.to_dict` /
  :meth:`TuneRecord.from_dict` are what the database writes and reads.
- :class:`TuneObjective`: what solvers optimise (``solver_objective``), the proxy that ranks
  proposals (:meth:`~TuneObjective.proxy`), which proposals are measured
  (:meth:`~TuneObjective.rank`), the pick rule (:meth:`~TuneObjective.pick`) and the report's
  columns. :class:`LaneObjective` is the lane objective: predicted makespan as the proxy, the
  pick the fastest candidate that beats the Relax VM beyond noise (its upper quartile below the
  VM's lower quartile in the same batches), else the VM; ties by fewer arena bytes, then name.
- :func:`search`: propose -> rank -> (skip what the database has) -> build -> measure -> tell ->
  pick, with the builder, runner and database passed in (so the rules are tested with fakes).
  A candidate whose build failed is measured as an error result, not raised.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from tvm_sched.tune.pick import latency_stats

__all__ = ["RECORD_FORMAT", "LaneCandidate", "MeasureResult", "TuneRecord", "TuneObjective",
           "LaneObjective", "OrderObjective", "objective_for", "SearchOutcome", "search",
           "paired_ratio", "spearman_or_none"]

#: Version of :class:`TuneRecord` lines (the database's ``format`` field).
RECORD_FORMAT = 1


def paired_ratio(samples: Sequence[float], anchor: Sequence[float]
                 ) -> dict[str, float] | None:
    """Quartiles of ``anchor[i] / samples[i]`` over rounds measured side by side: the speed-up
    over the anchor, robust to drift (each round's pair saw the same machine state)."""
    n = min(len(samples), len(anchor))
    if n == 0:
        return None
    r = np.asarray(anchor[:n], float) / np.maximum(np.asarray(samples[:n], float), 1e-12)
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": int(n)}


def spearman_or_none(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None under 3 points or constant."""
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


@dataclass
class LaneCandidate:
    """A candidate: the Relax VM (``kind="vm"``) or a lane schedule (``kind="lanes"``)."""

    name: str
    source: str
    kind: str = "lanes"
    lanes: int = 1
    order: tuple[int, ...] | None = None
    lane: tuple[int, ...] | None = None
    #: Predicted makespan (seconds) on the measured kernel durations.
    predicted: float | None = None
    #: Arena bytes of the plan (TVM's planned bytes for the VM).
    arena_bytes: int | None = None
    baseline: bool = False
    aliases: list[str] = field(default_factory=list)

    @property
    def hash(self) -> str:
        text = json.dumps([self.kind, self.lanes, list(self.order or ()),
                           list(self.lane or ())], separators=(",", ":"))
        return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class MeasureResult:
    """Measuring one candidate: samples (seconds per run) or an error."""

    hash: str
    device: str = ""
    samples: list[float] = field(default_factory=list)
    #: The anchor's (the Relax VM's) samples from the same interleaved rounds.
    anchor: list[float] = field(default_factory=list)
    check: float | None = None
    error: str | None = None


@dataclass
class TuneRecord:
    """One database line; see the module docstring."""

    model_hash: str
    order_hash: str
    target: str
    device_key: str
    candidate: str
    source: str
    kind: str
    lanes: int
    order: list[int] | None
    lane: list[int] | None
    predicted: float | None
    arena_bytes: int | None
    baseline: bool
    samples: list[float]
    anchor_samples: list[float]
    check: float | None
    error: str | None
    device: str = ""
    model: str = ""
    aliases: list[str] = field(default_factory=list)
    format: int = RECORD_FORMAT

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model_hash, self.order_hash, self.target, self.device_key)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.samples)

    @property
    def latency(self) -> dict[str, float] | None:
        return latency_stats(self.samples)

    @property
    def anchor(self) -> dict[str, float] | None:
        return latency_stats(self.anchor_samples)

    @property
    def speedup(self) -> dict[str, float] | None:
        """Speed-up over the Relax VM in the same rounds (quartiles of the paired ratios)."""
        return paired_ratio(self.samples, self.anchor_samples)

    @classmethod
    def make(cls, c: LaneCandidate, m: MeasureResult, *, model: str, model_hash: str,
             target: str, device_key: str) -> TuneRecord:
        return cls(model_hash, c.hash, target, device_key, c.name, c.source, c.kind, c.lanes,
                   None if c.order is None else list(c.order),
                   None if c.lane is None else list(c.lane), c.predicted, c.arena_bytes,
                   c.baseline, list(m.samples), list(m.anchor), m.check, m.error, m.device,
                   model, list(c.aliases))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # the stats travel with the samples, for readers of the JSONL that do not recompute
        d["latency"] = self.latency
        d["speedup"] = self.speedup
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TuneRecord:
        """Raises ``ValueError`` (or ``KeyError``/``TypeError``) on a line of another shape."""
        if d.get("format", RECORD_FORMAT) != RECORD_FORMAT:
            raise ValueError(f"record format {d.get('format')!r}, expected {RECORD_FORMAT}")
        names = [f for f in cls.__dataclass_fields__]
        rec = cls(**{k: d[k] for k in names if k in d})
        if not all(isinstance(s, int | float) for s in rec.samples + rec.anchor_samples):
            raise TypeError("samples must be numbers")
        return rec


class TuneObjective:
    """What a tuning run optimises; see the module docstring. Subclasses fill in the rules."""

    name = "objective"
    #: The solvers' objective name (:func:`tvm_sched.cost.make_objective`).
    solver_objective = ""
    #: Columns of the report's per-candidate table.
    columns: tuple[str, ...] = ()

    def proxy(self, c: LaneCandidate) -> float:
        raise NotImplementedError

    def rank(self, cands: Sequence[LaneCandidate], budget: int | None, top_k: int
             ) -> list[LaneCandidate]:
        """Baselines, then the ``top_k`` proposals by the proxy (over-budget ones left out)."""
        base = [c for c in cands if c.baseline]
        rest = [c for c in cands if not c.baseline
                and (budget is None or (c.arena_bytes or 0) <= budget)]
        rest.sort(key=lambda c: (self.proxy(c), c.arena_bytes or 0, c.name))
        return base + rest[:max(0, top_k)]

    def pick(self, records: Sequence[TuneRecord], budget: int | None
             ) -> tuple[TuneRecord | None, TuneRecord | None]:
        raise NotImplementedError


class LaneObjective(TuneObjective):
    """Latency over lanes: predicted makespan ranks; measured speed-up over the VM picks."""

    name = "lanes"
    solver_objective = "makespan"
    columns = ("candidate", "source", "lanes", "predicted ms", "median ms", "speed-up",
               "arena bytes")

    def proxy(self, c: LaneCandidate) -> float:
        return c.predicted if c.predicted is not None else math.inf

    @staticmethod
    def beyond_noise(r: TuneRecord) -> bool:
        """Its upper quartile lies below the VM's lower quartile (same batches)."""
        lat, anc = r.latency, r.anchor
        return bool(lat and anc and lat["q3"] < anc["q1"])

    def pick(self, records, budget):
        """(pick, fastest): the fastest lane candidate (median paired speed-up) that beats the
        VM beyond noise and fits ``budget``, else the VM; ``fastest`` ignores the noise test."""
        vm = next((r for r in records if r.kind == "vm" and r.ok), None)
        ok = [r for r in records if r.ok and r.kind != "vm" and r.anchor_samples
              and (budget is None or (r.arena_bytes is not None and r.arena_bytes <= budget))]

        def key(r: TuneRecord) -> tuple:
            return (-r.speedup["median"], r.arena_bytes or 0, r.candidate)

        fastest = min(ok, key=key) if ok else vm
        clear = [r for r in ok if self.beyond_noise(r)]
        return (min(clear, key=key) if clear else vm), fastest


class OrderObjective(TuneObjective):
    """The VM-order objectives (``latency``, ``memory``) over the dict records of
    :mod:`tvm_sched.tune.tuner`; the rules are :mod:`tvm_sched.tune.pick`'s."""

    solver_objective = "arena_memory"  # solvers propose on memory (see candidates.propose)

    def __init__(self, name: str, keep_default: bool = True):
        if name not in ("latency", "memory"):
            raise ValueError(f"objective must be latency or memory, got {name!r}")
        self.name = name
        self.keep_default = keep_default
        self.columns = ("candidate", "source", "planned KiB", "cache-miss KiB", "median ms",
                        "IQR ms", "TVM / this", "status")

    def proxy(self, c) -> tuple:
        p = c.proxy
        return (p["planned"], p["cache_miss"]) if self.name == "memory" else \
            (p["cache_miss"], p["planned"])

    def rank(self, cands, budget, top_k):
        from tvm_sched.tune.pick import rank

        return rank(list(cands), self.name, budget, top_k)

    def pick(self, records, budget):
        from tvm_sched.tune.pick import pick

        return pick(list(records), self.name, budget, self.keep_default)


def objective_for(name: str, *, lanes=None, keep_default: bool = True) -> TuneObjective:
    """The objective a run uses: lanes -> :class:`LaneObjective`, else the VM-order one."""
    return LaneObjective() if lanes is not None else OrderObjective(name, keep_default)


# --------------------------------------------------------------------------------------------
# the loop
class Builder(Protocol):
    def build(self, c: LaneCandidate) -> Any: ...


class Runner(Protocol):
    def measure(self, built: Sequence[tuple[LaneCandidate, Any]], anchor: tuple[LaneCandidate, Any],
                done: Callable[[MeasureResult], None]) -> None: ...


class Database(Protocol):
    def records(self) -> dict[tuple, TuneRecord]: ...

    def append(self, rec: TuneRecord) -> None: ...


@dataclass
class SearchOutcome:
    """What :func:`search` returns."""

    chosen: list[LaneCandidate]
    records: list[TuneRecord]
    best: TuneRecord | None
    fastest: TuneRecord | None
    measured_now: int
    spearman: float | None


def search(objective: TuneObjective, proposals: Iterable[LaneCandidate], *, builder: Builder,
           runner: Runner, database: Database, key: Callable[[LaneCandidate], tuple],
           make_record: Callable[[LaneCandidate, MeasureResult], TuneRecord],
           budget: int | None = None, top_k: int = 8,
           progress: Callable[[str, int, int, str], None] | None = None) -> SearchOutcome:
    """One ask/tell round (see the module docstring).

    ``key(c)`` is the database key of candidate ``c``; the VM (the candidate with
    ``kind == "vm"``, which must be among the baselines) is the anchor of every batch. Records the
    database already holds are not measured again; when nothing is left to measure, no batch
    runs at all.
    """
    prog = progress or (lambda *a: None)
    chosen = objective.rank(list(proposals), budget, top_k)
    vm = next((c for c in chosen if c.kind == "vm"), None)
    if vm is None:
        raise ValueError("the proposals hold no Relax VM candidate (kind='vm') to anchor on")
    have = database.records()
    todo = [c for c in chosen if key(c) not in have]
    measured = 0
    if todo:
        built = []
        for i, c in enumerate(todo):
            built.append((c, builder.build(c)))
            prog("build", i + 1, len(todo), c.name)
        by_hash = {c.hash: c for c in todo}
        anchor = next(((c, b) for c, b in built if c.kind == "vm"), None) or \
            (vm, builder.build(vm))

        def done(m: MeasureResult) -> None:
            nonlocal measured
            c = by_hash[m.hash]
            database.append(make_record(c, m))
            measured += 1
            prog("measure", measured, len(todo), c.name)

        runner.measure(built, anchor, done)
    have = database.records()
    records = [have[key(c)] for c in chosen if key(c) in have]
    best, fastest = objective.pick(records, budget)
    # measured latency relative to the VM of its own rounds: comparable across runs
    ok = [r for r in records if r.ok and r.predicted is not None and r.kind != "vm"
          and r.anchor_samples]
    spear = spearman_or_none([r.predicted for r in ok], [1.0 / r.speedup["median"] for r in ok])
    return SearchOutcome(chosen, records, best, fastest, measured, spear)
