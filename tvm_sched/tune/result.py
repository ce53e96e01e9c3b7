"""What a tuning run returns (:class:`TuneResult`): records, the pick, timings and context.

Plain data, shared by the loop (:mod:`tvm_sched.tune.tuner`) and the reports
(:mod:`tvm_sched.tune.report`), so neither imports the other's module to name it. The records
are :class:`~tvm_sched.tune.record.TuneRecord` objects, read by their fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tvm_sched.tune.record import TuneRecord

__all__ = ["TuneResult"]


@dataclass
class TuneResult:
    """Records of every candidate (measured or not), the pick, and where the files are.

    ``baseline`` is TVM's order (the record with ``kind == "vm"``), ``spearman`` each proxy's
    rank correlation with the measured latency.
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

    @property
    def speedup(self) -> float | None:
        """TVM's order's latency / the pick's: through the pick's own batch anchor (TVM's
        order interleaved with it on the same device) when it has one, else the two medians."""
        if not self.best or not self.baseline:
            return None
        if self.best.relative:
            return 1.0 / self.best.relative
        a, b = self.baseline.latency, self.best.latency
        return a["median"] / b["median"] if a and b else None
