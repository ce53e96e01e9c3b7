"""Rewards of complete orders, tempered by sigma (Zhang et al., "Robust Scheduling with GFlowNets",
ICLR 2023).

- **makespan** on ``m`` lanes: the order is decoded by list scheduling (the objective's own
  semantics, :func:`tvm_sched.cost.makespan_batch`, communication included), ``U = total
  duration / makespan`` is its speedup over one lane, and ``log R = (U - m) / sigma``.
- **memory** (one lane): ``log R = (ref / peak - 1) / sigma`` with ``peak`` the liveness peak of
  the order and ``ref`` the best peak of three heuristics (:func:`.features.memory_reference`):
  1 at the heuristics' best, above 1 when the order beats them, so sigma means the same as for
  makespan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tvm_sched.cost import Comm
from tvm_sched.cost.makespan import makespan_batch
from tvm_sched.cost.memory import peak_memory_batch
from tvm_sched.graph import OpGraph

__all__ = ["Task", "log_reward"]


@dataclass(frozen=True)
class Task:
    """What an order is rewarded for: ``"makespan"`` on ``lanes`` lanes or ``"memory"``.

    Raises
    ------
    ValueError
        An unknown kind, or a memory task on more than one lane.
    """

    kind: str = "makespan"
    lanes: int = 4
    comm: Comm | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("makespan", "memory"):
            raise ValueError(f"unknown task {self.kind!r}")
        if self.kind == "memory" and self.lanes != 1:
            raise ValueError("the memory task is defined on one lane")

    @property
    def memory(self) -> bool:
        return self.kind == "memory"


def log_reward(graph: OpGraph, task: Task, orders: np.ndarray, sigma: float,
               mem_ref: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Log-rewards (B,) and objective values (B,) (makespans or liveness peaks) of orders (B, n).

    Parameters
    ----------
    graph
        The graph.
    task
        What the orders are rewarded for.
    orders
        (B, n) int topological orders.
    sigma
        The temperature (> 0): a smaller sigma sharpens the reward.
    mem_ref
        The reference peak of a memory task; default the batch's best peak.

    Returns
    -------
    tuple of numpy.ndarray
        ``(log_reward, values)``, each (B,) float.

    Examples
    --------
    >>> g = OpGraph(2, [], duration=[1.0, 1.0])
    >>> log_r, ms = log_reward(g, Task("makespan", 2), np.array([[0, 1]]), 0.5)
    >>> float(log_r[0]), float(ms[0])
    (0.0, 1.0)
    """
    if task.memory:
        peak = peak_memory_batch(graph, orders).astype(np.float64)
        ref = float(peak.min()) if mem_ref is None else mem_ref
        return (ref / np.maximum(peak, 1.0) - 1.0) / sigma, peak
    ms = makespan_batch(graph, orders, lanes=task.lanes, comm=task.comm)
    total = float(graph.duration.sum())
    if total <= 0:
        return np.zeros(len(ms)), ms
    return (total / np.maximum(ms, 1e-300) - task.lanes) / sigma, ms
