"""Deprecated: the lane report is a section of :mod:`tvm_sched.tune.report` (one report module
for every kind of candidate), and the lane result is :class:`~tvm_sched.tune.result.TuneResult`
with ``lanes`` set. The old names stay importable from here."""

from __future__ import annotations

from tvm_sched.tune.report import (
    anchor_table,
    kernels_line,
    lane_summary,
    pareto_front,
    rich_lane_table,
    solver_table,
    write_lane_report,
)
from tvm_sched.tune.result import TuneResult

#: The old name of the lane path's result.
LaneTuneResult = TuneResult
#: The old name of :func:`tvm_sched.tune.report.lane_summary`.
summary = lane_summary

__all__ = ["LaneTuneResult", "solver_table", "anchor_table", "write_lane_report", "rich_lane_table",
           "pareto_front", "kernels_line", "summary"]
