"""The :class:`Objective` base class (the contract: see :mod:`tvm_sched.cost.objectives`).

In a module of its own so the objectives of other modules (``pipeline``) derive from it
without importing ``objectives``, which builds every objective by name.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np

from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule

__all__ = ["Objective"]


class Objective:
    """Base class; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    #: Whether ``evaluate_orders`` is the exact value of ``complete(order)``.
    order_based: ClassVar[bool] = True
    #: Whether the value is bytes of memory of an order run one kernel at a time.
    is_memory: ClassVar[bool] = False

    @property
    def lanes(self) -> int:
        return 1

    def complete(self, graph: OpGraph, schedule: Schedule) -> Schedule:
        raise NotImplementedError

    def value(self, graph: OpGraph, schedule: Schedule) -> float:
        """Value of a schedule already completed by :meth:`complete`."""
        raise NotImplementedError

    def evaluate(self, graph: OpGraph, schedule: Schedule) -> float:
        """Exact value of ``schedule`` (validated, completed)."""
        return self.value(graph, self.complete(graph, schedule))

    def evaluate_orders(self, graph: OpGraph, orders: np.ndarray) -> np.ndarray:
        """Values (B,) of ``B`` orders (B, n), each completed by this objective's semantics."""
        raise NotImplementedError

    def lower_bound(self, graph: OpGraph) -> float:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name}
        d.update({k: v for k, v in asdict(self).items() if v is not None})  # type: ignore[call-overload]
        return d

    def describe(self) -> str:
        return self.name
