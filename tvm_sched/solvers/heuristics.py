"""Classical heuristic solvers: topological DFS/BFS, critical-path list scheduling, least peak
memory first, random topological orders and randomised list scheduling.

Every heuristic here handles every objective. Most produce an *order*; the objective turns it into
a full schedule with its own semantics (list decoding on ``m`` lanes for ``makespan``, the order
itself for ``peak_memory``, the min-max chunking for ``stage``; see :mod:`tvm_sched.cost`). The
order algorithms themselves are :mod:`tvm_sched.graph.orders` (the other layers use them too);
list scheduling and the event-driven decoder are :mod:`tvm_sched.solvers.decoding`. This module
holds the solver classes only.

- ``tvm``: the module's own order (:func:`~tvm_sched.graph.orders.program_order`).
- ``topo-dfs``: depth-first topological order -- a ready stack, so a node's newly ready
  successors run next (the lowest-numbered first). Keeps producer-consumer pairs close.
- ``topo-bfs``: breadth-first topological order -- a ready queue in program order.
- ``list``: Graham's list scheduling with critical-path priorities (the bottom level: longest
  duration-weighted path to a sink). Without communication cost it is event-driven: whenever a lane
  is free, the highest-priority node whose inputs are done starts on it (non-delay). With
  communication cost the priority list is decoded by the serial earliest-start rule, which accounts
  for per-lane arrival times (:func:`~tvm_sched.solvers.decoding.list_schedule`).
- ``lpmf``: least peak memory first, the greedy of PyTorch Inductor's ``reorder_for_peak_memory``:
  among ready nodes run the one whose step raises the live bytes least (its output minus the inputs
  it frees), ties by smaller output, then program order.
- ``random``: ``samples`` topological orders from uniformly random priorities (a Kahn sort that
  always runs the ready node with the highest random key), scored in one batch.
- ``random-list``: randomised list scheduling: ``samples`` priority lists from critical-path
  priorities perturbed by log-normal noise (``noise``), each decoded by the objective, scored in one
  batch. The equal-budget baseline for the sampling solvers.

The two random solvers draw their samples in batches with a Kahn sort vectorised over samples
(:func:`~tvm_sched.graph.orders.priority_orders_batch`), so 1,000 samples of a 100-node graph take
well under a second; the rest is the one sampling loop of :mod:`tvm_sched.solvers.sampling`. On
``makespan`` without communication cost every sampled order is decoded twice -- by the objective
(the serial rule: the order's k-th node on the lane where it starts earliest) and by Graham's
event-driven rule with the order's positions as priorities
(:func:`~tvm_sched.solvers.decoding.event_decode`, as ``list`` decodes its own priorities) --
and the better schedule counts (why both: :mod:`tvm_sched.solvers.decoding`). ``samples=None``
(the default) means 1,000 without a budget and as many as fit with one (anytime: batches sized
from the measured rate, stopping at the objective's lower bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tvm_sched.cost import Makespan, Objective
from tvm_sched.graph import (
    OpGraph,
    bfs_order,
    dfs_order,
    lpmf_order,
    priority_order,
    priority_orders_batch,
    program_order,
)
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import Candidate, Deadline, Proposal, Solver, default_samples
from tvm_sched.solvers.decoding import list_schedule
from tvm_sched.solvers.sampling import sample_orders

__all__ = [
    "ProgramOrderSolver",
    "TopoDFSSolver",
    "TopoBFSSolver",
    "ListSolver",
    "LPMFSolver",
    "RandomSolver",
    "RandomListSolver",
]


# ---------------------------------------------------------------------------- solvers
class _OrderSolver(Solver):
    """A solver that proposes one order, completed by the objective."""

    def order(self, graph: OpGraph) -> np.ndarray:
        raise NotImplementedError

    def _propose(self, graph, objective, deadline, rng, device) -> Proposal:
        return Proposal([Candidate(Schedule(order=self.order(graph)))])


class ProgramOrderSolver(_OrderSolver):
    """The module's own order (``tvm``): the baseline every other order is compared with."""

    name = "tvm"

    def order(self, graph: OpGraph) -> np.ndarray:
        """The one order this solver proposes.

        Parameters
        ----------
        graph
            The graph to order.

        Returns
        -------
        numpy.ndarray
            The nodes in program order (their ids).
        """
        return program_order(graph)


class TopoDFSSolver(_OrderSolver):
    """Depth-first topological order (``topo-dfs``)."""

    name = "topo-dfs"

    def order(self, graph: OpGraph) -> np.ndarray:
        """The one order this solver proposes.

        Parameters
        ----------
        graph
            The graph to order.

        Returns
        -------
        numpy.ndarray
            A depth-first topological order.
        """
        return dfs_order(graph)


class TopoBFSSolver(_OrderSolver):
    """Breadth-first topological order (``topo-bfs``)."""

    name = "topo-bfs"

    def order(self, graph: OpGraph) -> np.ndarray:
        """The one order this solver proposes.

        Parameters
        ----------
        graph
            The graph to order.

        Returns
        -------
        numpy.ndarray
            A breadth-first topological order.
        """
        return bfs_order(graph)


class LPMFSolver(_OrderSolver):
    """Least peak memory first (``lpmf``)."""

    name = "lpmf"

    def order(self, graph: OpGraph) -> np.ndarray:
        """The one order this solver proposes.

        Parameters
        ----------
        graph
            The graph to order.

        Returns
        -------
        numpy.ndarray
            The least-peak-memory-first order.
        """
        return lpmf_order(graph)


class ListSolver(Solver):
    """Critical-path list scheduling (``list``)."""

    name = "list"

    def _propose(self, graph, objective, deadline, rng, device) -> Proposal:
        if isinstance(objective, Makespan):
            sched = list_schedule(graph, objective.lanes, comm=objective.comm)
            claimed = float(np.max(np.asarray(sched.start) + graph.duration)) if len(
                graph) else 0.0
            return Proposal([Candidate(sched, claimed)])
        return Proposal([Candidate(Schedule(order=priority_order(graph, graph.bottom_level)))])


class _SamplingSolver(Solver):
    """Draws ``samples`` orders from :meth:`priorities` with the one sampling loop
    (:func:`~tvm_sched.solvers.sampling.sample_orders`)."""

    @dataclass(frozen=True)
    class Config:
        #: Orders to draw (fewer when the budget runs out or the bound is met); None: 1,000
        #: without a budget, as many as the budget allows with one.
        samples: int | None = None
        #: Distinct schedules returned, best first.
        top_k: int = 10
        #: Largest vectorised batch.
        batch: int = 250
        #: Size of the first, timed batch under a budget.
        probe: int = 8

    def priorities(self, graph: OpGraph, rng: np.random.Generator, size: int) -> np.ndarray:
        raise NotImplementedError

    def _propose(self, graph: OpGraph, objective: Objective, deadline: Deadline,
                 rng: np.random.Generator, device) -> Proposal:
        cfg = self.config

        def draw(rng: np.random.Generator, size: int) -> np.ndarray:
            return priority_orders_batch(graph, self.priorities(graph, rng, size))

        out = sample_orders(graph, objective, deadline, rng, draw,
                            samples=default_samples(cfg.samples, deadline), top_k=cfg.top_k,
                            batch=cfg.batch, probe=cfg.probe)
        return Proposal(out.candidates, info={"samples": out.samples, "batches": out.batches,
                                              "mean_value": out.mean_value,
                                              "distinct": out.distinct})


class RandomSolver(_SamplingSolver):
    """Random topological orders (``random``)."""

    name = "random"

    def priorities(self, graph, rng, size):
        """Uniform random priorities: each row ranks the ready nodes at random.

        Parameters
        ----------
        graph
            The graph.
        rng
            The solve's generator.
        size
            Rows to draw.

        Returns
        -------
        numpy.ndarray
            ``(size, n)`` floats in [0, 1).
        """
        return rng.random((size, graph.num_nodes))


class RandomListSolver(_SamplingSolver):
    """Randomised critical-path list scheduling (``random-list``)."""

    name = "random-list"

    @dataclass(frozen=True)
    class Config(_SamplingSolver.Config):
        #: Standard deviation of the log-normal factor on each priority.
        noise: float = 0.3

    def priorities(self, graph, rng, size):
        """Bottom levels times a log-normal factor of spread ``noise`` per entry.

        Parameters
        ----------
        graph
            The graph.
        rng
            The solve's generator.
        size
            Rows to draw.

        Returns
        -------
        numpy.ndarray
            ``(size, n)`` positive floats.
        """
        bl = graph.bottom_level + 1e-9
        return bl[None, :] * np.exp(self.config.noise * rng.standard_normal((size, len(graph))))
