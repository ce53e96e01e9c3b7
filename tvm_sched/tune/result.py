"""What a tuning run returns (:class:`TuneResult`): records, the pick, timings and context.

One type for both paths -- VM orders (:mod:`tvm_sched.tune.tuner`) and lane plans
(:mod:`tvm_sched.tune.lanes`, where ``lanes`` is set) -- shared by the loops and the report
(:mod:`tvm_sched.tune.report`), so neither imports the other's module to name it. The records
are :class:`~tvm_sched.tune.record.TuneRecord` objects, read by their fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tvm_sched.tune.record import TuneRecord

__all__ = ["TuneResult"]

_ONE = {"median": 1.0, "q1": 1.0, "q3": 1.0}


@dataclass
class TuneResult:
    """Records of every candidate (measured or not), the pick, and where the files are.

    Attributes
    ----------
    model, objective
        The model's name and what was optimised (``"latency"``, ``"memory"``).
    records
        Every candidate's record, read from the database or measured now.
    best
        The pick (``None`` when nothing could be measured).
    baseline
        The Relax VM in TVM's order (the record with ``kind == "vm"``): the anchor every pick
        is judged against.
    spearman
        Per proxy, its rank correlation with the measured latency (the lane path's proxy is
        the ``predicted`` makespan).
    work_dir
        Where the database, report and exported pick are.
    seconds, memory_budget, measured_now, info
        Stage times, the memory budget in bytes, how many candidates were measured in this
        run, and context (target, device, figures of the path).
    lanes
        Lane path: the lanes the plans were tuned for; ``None`` for VM orders.
    fastest
        The fastest measured candidate (the pick unless it did not beat the VM beyond noise).
    lane_pick
        Lane path: the lane plan exported as ``best_lanes.tar`` (the pick, or the fastest lane
        plan when the VM was kept).
    solver_info
        Lane path: per solver, what it proposed and how long it took.
    """

    model: str
    objective: str
    records: list[TuneRecord]
    best: TuneRecord | None
    baseline: TuneRecord | None
    spearman: dict[str, float | None]
    work_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)
    memory_budget: int | None = None
    measured_now: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    lanes: int | None = None
    fastest: TuneRecord | None = None
    lane_pick: TuneRecord | None = None
    solver_info: dict[str, dict] = field(default_factory=dict)

    @property
    def speedup_stats(self) -> dict[str, float] | None:
        """The pick's speed-up over TVM's order as median and quartiles of the per-round ratios
        of its own batch (1 when the VM is the pick); ``None`` without a pick, or for a pick
        measured without the anchor's samples."""
        if self.best is None:
            return None
        if self.best.kind == "vm":
            return {**_ONE, "n": len(self.best.samples)}
        return self.best.speedup

    @property
    def speedup(self) -> float | None:
        """TVM's order's latency / the pick's. Lane path: the median per-round ratio of the
        pick's own batch (:attr:`speedup_stats`). VM orders: through the pick's own batch
        anchor (the ratio of the medians of TVM's order and the pick interleaved on the same
        device) when it has one, else the two records' medians."""
        if self.best is None:
            return None
        if self.lanes is not None:
            stats = self.speedup_stats
            return stats["median"] if stats else None
        if self.best.relative:
            return 1.0 / self.best.relative
        if self.baseline is None:
            return None
        a, b = self.baseline.latency, self.best.latency
        return a["median"] / b["median"] if a and b else None

    def by_name(self, name: str) -> TuneRecord | None:
        """The record of the candidate called ``name``.

        Parameters
        ----------
        name
            A candidate name (``TuneRecord.candidate``).

        Returns
        -------
        TuneRecord or None
            The first such record, or ``None`` when no record has that name.
        """
        return next((r for r in self.records if r.candidate == name), None)
