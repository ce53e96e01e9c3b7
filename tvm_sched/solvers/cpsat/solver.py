"""``CPSATSolver``: exact schedules from OR-Tools CP-SAT (registry name ``"cpsat"``).

Contract
--------
For every objective of :mod:`tvm_sched.cost` -- ``makespan`` on ``m`` lanes with an optional
communication cost, ``peak_memory`` (liveness, one lane) and ``stage`` (the ICML'24 stage
partition) -- the solver builds a CP model (:mod:`.makespan`, :mod:`.memory`, :mod:`.stage`), runs
CP-SAT within the budget (or ``Config.time_limit_s`` when the budget is ``None``; model building
counts against the budget) and proposes the best ``top_k`` solutions found, best first.

- With integral data the model is exact: each candidate claims its CP value, a proven CP-SAT
  optimum is reported as ``OPTIMAL`` and CP-SAT's best objective bound is passed on as the
  proven lower bound.
- With fractional data the model is an integer approximation (see :mod:`.common`): schedules are
  valid and re-evaluated exactly by the base class, but nothing is claimed, no bound is passed and
  the status is at best ``FEASIBLE`` (the base class still reports ``OPTIMAL`` when a schedule
  meets the objective's own lower bound).
- When CP-SAT finds no solution within the time limit (its presolve alone can outlast a small
  budget on a large model), the heuristic schedule the model was warm-started from is proposed
  instead (``FEASIBLE``, ``info["fallback"] = "warm_start"``); with ``Config.fallback=False`` the
  result is ``TIME_LIMIT`` with no schedule. A budget already spent by model building does not
  start CP-SAT (``cp_status`` ``NOT_RUN``). An infeasible model is ``INFEASIBLE`` (cannot happen
  for these objectives); an invalid model is a bug and raises
  :class:`~tvm_sched.errors.SolverError`.

``Proposal.info`` holds ``cp_status``, ``wall_s`` (CP-SAT's wall time), ``build_s``, ``scaled``,
``num_conflicts`` and a few model statistics.

The default of 8 workers was measured on a 2-core machine: on the 360 instances of the STG 50-task
set (2, 4, 8 lanes, 10 s each) 8 workers proved 358 optimal in 58 s in all, 2 workers 350 in
157 s; both reached every published optimum.

References: Perron, Didier, Gay, "The CP-SAT-LP solver", CP 2023; scheduling models in the style
of PyJobShop (variables / constraints / objective).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from tvm_sched.cost import Makespan, Objective, PeakMemory, StageCost
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import Candidate, Deadline, Proposal, Solver, Status
from tvm_sched.solvers.cpsat.common import CPModel, run
from tvm_sched.solvers.cpsat.makespan import build_makespan
from tvm_sched.solvers.cpsat.memory import build_memory
from tvm_sched.solvers.cpsat.stage import build_stage

__all__ = ["CPSATSolver"]


class CPSATSolver(Solver):
    """Exact CP-SAT models of makespan, peak memory and stage cost (see the module docstring).

    Examples
    --------
    >>> from tvm_sched.graph import OpGraph
    >>> g = OpGraph(4, [(0, 2), (1, 2), (2, 3)], duration=[2, 3, 1, 2])
    >>> res = CPSATSolver(num_workers=1).solve(g, Makespan(lanes=2))
    >>> res.value, str(res.status)
    (6.0, 'OPTIMAL')
    """

    name = "cpsat"
    objectives = ("makespan", "peak_memory", "stage")
    #: The memory model is the liveness peak only (no planner or arena model).
    order_memory = False

    @dataclass(frozen=True)
    class Config:
        """Options of :class:`CPSATSolver`."""

        #: How many distinct schedules to return at most (the last improving solutions).
        top_k: int = 1
        #: CP-SAT time limit when ``solve`` gets no budget (with a budget: the time left).
        time_limit_s: float = 60.0
        #: CP-SAT search workers (portfolio size).
        num_workers: int = 8
        #: Print CP-SAT's search log.
        log: bool = False
        #: Warm-start CP-SAT with a heuristic schedule.
        hint: bool = True
        #: Fractional data is scaled so that its largest value becomes this integer (and data
        #: that are multiples of ``1/q`` for ``q <= resolution`` are scaled exactly by ``q``).
        resolution: int = 1000
        #: Propose the warm-start schedule when CP-SAT finds none in time.
        fallback: bool = True

    def _build(self, graph: OpGraph, objective: Objective) -> CPModel:
        cfg = self.config
        if isinstance(objective, Makespan):
            return build_makespan(graph, objective, resolution=cfg.resolution, hint=cfg.hint)
        if isinstance(objective, PeakMemory):
            return build_memory(graph, resolution=cfg.resolution, hint=cfg.hint)
        if isinstance(objective, StageCost):
            return build_stage(graph, objective, resolution=cfg.resolution, hint=cfg.hint)
        raise ValueError(f"solver 'cpsat' has no model for the {objective.name!r} objective")

    def _propose(
        self,
        graph: OpGraph,
        objective: Objective,
        deadline: Deadline,
        rng: np.random.Generator,
        device: Any,
    ) -> Proposal:
        if graph.num_nodes == 0:
            return Proposal([Candidate(Schedule(order=()), 0.0)], Status.OPTIMAL, 0.0,
                            {"cp_status": "TRIVIAL"})
        t0 = time.perf_counter()
        cpm = self._build(graph, objective)
        build_s = time.perf_counter() - t0
        cfg = self.config
        limit = cfg.time_limit_s if deadline.seconds is None else deadline.remaining
        outcome = run(
            cpm,
            time_limit_s=limit,
            num_workers=cfg.num_workers,
            seed=int(rng.integers(0, 2**31 - 1)),
            log=cfg.log,
            top_k=max(1, cfg.top_k),
        )
        candidates = [
            Candidate(cpm.decode(values), obj / cpm.divisor if cpm.exact else None)
            for values, obj in reversed(outcome.solutions)
        ]
        info = {**outcome.info, "build_s": build_s}
        status = outcome.status
        if not candidates and status is Status.TIME_LIMIT and cfg.fallback and cpm.warm:
            candidates = [Candidate(cpm.warm)]
            status = Status.FEASIBLE
            info["fallback"] = "warm_start"
        return Proposal(candidates, status, outcome.bound, info)
