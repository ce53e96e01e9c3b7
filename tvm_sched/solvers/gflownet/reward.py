"""Rewards of complete orders, tempered by sigma (Zhang et al., "Robust Scheduling with GFlowNets",
ICLR 2023).

The task (:class:`Task`) is a cost objective, and the values are its exact
``evaluate_orders``:

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
import torch

from tvm_sched.cost import Comm, Makespan, Objective, PeakMemory, StageCost
from tvm_sched.graph import OpGraph
from tvm_sched.solvers.base import is_order_memory
from tvm_sched.solvers.gflownet.features import condition

__all__ = ["Task", "log_reward"]


@dataclass(frozen=True)
class Task:
    """What the policy is conditioned on and an order rewarded for: a cost objective.

    The policy knows two tasks: ``makespan`` on ``m`` lanes (communication cost included), a
    :class:`~tvm_sched.cost.Makespan`, and ``memory``, the one-lane liveness peak, a
    :class:`~tvm_sched.cost.PeakMemory`. :meth:`of` reads the task off any objective the
    sampler serves: every order-based memory objective samples from the memory task (its own
    exact evaluator then ranks the orders), and so does ``stage`` (a fallback: its orders are
    chunked by the objective).

    Raises
    ------
    ValueError
        ``objective`` is neither a ``Makespan`` nor a ``PeakMemory`` (use :meth:`of`).

    Examples
    --------
    >>> from tvm_sched.cost import PlannedMemory
    >>> t = Task.of(PlannedMemory())
    >>> t.kind, t.lanes, t.objective
    ('memory', 1, PeakMemory())
    >>> Task.of(Makespan(lanes=4)).kind
    'makespan'
    """

    objective: Makespan | PeakMemory

    def __post_init__(self) -> None:
        if not (isinstance(self.objective, Makespan) or type(self.objective) is PeakMemory):
            raise ValueError(f"a task is a makespan or a peak_memory objective, got "
                             f"{self.objective.name!r} (Task.of maps the others)")

    @classmethod
    def of(cls, objective: Objective) -> Task:
        """The task the policy samples ``objective``'s orders for.

        Parameters
        ----------
        objective
            Any objective; a ``Makespan`` is its own task, an order-based memory objective
            or ``stage`` maps to the memory task.

        Returns
        -------
        Task
            The makespan task for ``objective`` itself, or the memory task (``PeakMemory()``).

        Raises
        ------
        ValueError
            The policy has no task for ``objective`` (e.g. ``pipeline``).
        """
        if isinstance(objective, Makespan):
            return cls(objective)
        if is_order_memory(objective) or isinstance(objective, StageCost):
            return cls(PeakMemory())
        raise ValueError(f"gflownet has no policy for {objective.name!r}")

    @property
    def kind(self) -> str:
        """``"makespan"`` or ``"memory"``."""
        return "memory" if self.memory else "makespan"

    @property
    def memory(self) -> bool:
        return not isinstance(self.objective, Makespan)

    @property
    def lanes(self) -> int:
        return self.objective.lanes

    @property
    def comm(self) -> Comm | None:
        return None if self.memory else self.objective.comm

    def condition(self, log_sigma: float) -> torch.Tensor:
        """The raw conditioning vector of this task at temperature ``exp(log_sigma)``.

        Parameters
        ----------
        log_sigma
            The natural logarithm of the reward temperature.

        Returns
        -------
        torch.Tensor
            (COND_FEATURES,) float32 on the CPU: the log temperature, the task kind, the lanes
            and whether the task has a communication cost.
        """
        return condition(log_sigma, self.memory, self.lanes, self.comm is not None)


def log_reward(graph: OpGraph, task: Task, orders: np.ndarray, sigma: float,
               mem_ref: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Log-rewards (B,) and objective values (B,) (makespans or liveness peaks) of orders (B, n).

    Parameters
    ----------
    graph
        The graph.
    task
        The task whose objective values the orders.
    orders
        (B, n) int, each row a topological order.
    sigma
        The reward temperature (the log-rewards are divided by it).
    mem_ref
        For a memory task, the reference peak the values are compared with; ``None`` for the
        batch's lowest. Unused for a makespan task.

    Returns
    -------
    tuple
        The log-rewards and the objective values, both (B,).

    Examples
    --------
    >>> g = OpGraph(2, [], duration=[1.0, 1.0])
    >>> log_r, ms = log_reward(g, Task.of(Makespan(lanes=2)), np.array([[0, 1]]), 0.5)
    >>> float(log_r[0]), float(ms[0])
    (0.0, 1.0)
    """
    values = task.objective.evaluate_orders(graph, orders)
    if task.memory:
        ref = float(values.min()) if mem_ref is None else mem_ref
        return (ref / np.maximum(values, 1.0) - 1.0) / sigma, values
    total = float(graph.duration.sum())
    if total <= 0:
        return np.zeros(len(values)), values
    return (total / np.maximum(values, 1e-300) - task.lanes) / sigma, values
