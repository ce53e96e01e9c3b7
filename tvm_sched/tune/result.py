"""What a tuning run returns (:class:`TuneResult`): records, the pick, timings and context.

Plain data, shared by the loop (:mod:`tvm_sched.tune.tuner`) and the reports
(:mod:`tvm_sched.tune.report`), so neither imports the other's module to name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TuneResult"]


@dataclass
class TuneResult:
    """Records of every candidate (measured or not), the pick, and where the files are."""

    model: str
    objective: str
    records: list[dict[str, Any]]
    best: dict[str, Any] | None
    baseline: dict[str, Any] | None
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
        if self.best.get("relative"):
            return 1.0 / self.best["relative"]
        a, b = self.baseline.get("latency"), self.best.get("latency")
        return a["median"] / b["median"] if a and b else None
