"""One candidate generator: several solvers' schedules of one graph, deduplicated.

The ``ScheduleOperators`` pass (per dataflow block, memory objectives), the VM-order tuner (per
block, then combined across blocks) and the lane tuner (makespan at ``m`` lanes) all ask
:func:`propose` for their candidates, so a solver option, a fallback or a skip rule is decided
in one place.

Contract of :func:`propose`
---------------------------
- Unknown solver names raise :class:`~tvm_sched.errors.UnknownSolverError` before any work.
- Each solver runs on ``objective`` when it handles it, else on the first of ``fallbacks`` it
  handles (the memory objectives fall back to the liveness ``peak_memory``); a solver that
  handles none of them is skipped. Skips are logged and said in :attr:`Portfolio.info`.
- Every solver gets the same ``budget`` (seconds, ``None``: its fixed amount of work) and seed;
  ``samples`` and ``per_solver`` become its ``samples`` and ``top_k`` options where its
  ``Config`` has those fields (so samplers get an equal sample budget); ``options[name]`` adds
  solver-specific ones. ``max_nodes[name]`` skips a solver on larger graphs (e.g. CP-SAT inside a
  compile pass).
- A solver that fails (a missing optional package, or any error while solving) is skipped with
  its error in ``info``; the others go on. ``KeyboardInterrupt`` is not caught here (solvers
  already return their best on it).
- At most ``per_solver`` schedules per solver, best first. The same schedule (order, start times
  and lanes: :func:`~tvm_sched.solvers.base.schedule_key`) proposed twice is kept once, under its
  first name; the later names are its ``aliases``.
- :attr:`Proposed.value` is the exact evaluator's value on ``objective`` -- also for a solver
  that ran on a fallback (its schedule is re-evaluated), so proposals are comparable.

De-duplication
--------------
:func:`propose` is where proposals of different solvers are de-duplicated (their aliases). The
rule it applies -- the same schedule is the same order, start times and lanes
(:func:`~tvm_sched.solvers.base.schedule_key`), the first one is kept
(:func:`~tvm_sched.solvers.base.first_of_each`) -- is the only one in the solvers:
:meth:`~tvm_sched.solvers.base.Solver.solve` applies it to one solver's candidates and
:class:`~tvm_sched.solvers.topk.TopK` keys its entries by it. It lives in ``base``, below the
registry this module imports, so that ``solve`` can use it without an import cycle.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tvm_sched.cost import Objective, make_objective
from tvm_sched.errors import one_line
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import first_of_each, schedule_key
from tvm_sched.solvers.registry import check_solver_names, get_solver, solver_class

__all__ = ["Proposed", "Portfolio", "propose", "candidate_name", "MEMORY_FALLBACKS"]

log = logging.getLogger(__name__)

#: Where a memory objective falls back to, in turn.
MEMORY_FALLBACKS = ("planned_memory", "peak_memory")


def candidate_name(source: str, index: int) -> str:
    """The name of a solver's ``index``-th best schedule: ``source``, then ``source#j``.

    The one place such a name is made; callers keep ``source`` and ``index`` as fields and
    never parse a name back.

    Parameters
    ----------
    source
        The solver's name.
    index
        Rank of the schedule among the solver's, 0 for its best.

    Returns
    -------
    str
        ``source`` for ``index`` 0, else ``f"{source}#{index}"``.

    Examples
    --------
    >>> candidate_name("gaus", 0), candidate_name("gaus", 2)
    ('gaus', 'gaus#2')
    """
    return source if index == 0 else f"{source}#{index}"


@dataclass
class Proposed:
    """One distinct schedule: the ``index``-th best of the solver ``source``."""

    source: str
    #: Rank among the solver's schedules (0: its best).
    index: int
    schedule: Schedule
    #: The exact value on the requested objective.
    value: float
    #: The objective the solver searched on (the requested one or a fallback).
    solved_on: str
    #: Names of the later proposals of the same schedule.
    aliases: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """``source`` or ``source#index`` (:func:`candidate_name`)."""
        return candidate_name(self.source, self.index)


@dataclass
class Portfolio:
    """What :func:`propose` returns: the proposals in solver order, and per solver its seconds,
    its number of proposals and objective, or why it was skipped (``error``)."""

    proposals: list[Proposed]
    info: dict[str, dict[str, Any]]

    def __iter__(self):
        return iter(self.proposals)

    def __len__(self) -> int:
        return len(self.proposals)


def _options(name: str, samples: int | None, per_solver: int | None,
             extra: Mapping[str, Any] | None) -> dict[str, Any]:
    have = {f.name for f in dataclasses.fields(solver_class(name).Config)}
    opts: dict[str, Any] = {}
    if samples is not None and "samples" in have:
        opts["samples"] = int(samples)
    if per_solver is not None and "top_k" in have:
        opts["top_k"] = int(per_solver)
    opts.update(extra or {})
    return opts


def propose(graph: OpGraph, objective: Objective | str, solvers: Sequence[str], *,
            budget: float | None = None, seed: int = 0, samples: int | None = None,
            per_solver: int | None = None, fallbacks: Sequence[str] | None = None,
            options: Mapping[str, Mapping[str, Any]] | None = None,
            max_nodes: Mapping[str, int] | None = None, device: Any = "cpu",
            progress: Callable[[str], None] | None = None) -> Portfolio:
    """Every solver's schedules of ``graph`` (see the module docstring).

    ``fallbacks`` defaults to :data:`MEMORY_FALLBACKS` for a memory objective and to none for
    makespan. ``progress(name)`` is called after each solver.

    Parameters
    ----------
    graph
        The graph to schedule.
    objective
        The objective the proposals are valued on, or its name.
    solvers
        Registered solver names, run in this order (a repeated name runs once).
    budget
        Seconds per solver; ``None``: each solver's fixed amount of work.
    seed
        Seed of every solve.
    samples
        Each sampler's ``samples`` option, where its ``Config`` has one.
    per_solver
        Schedules kept per solver (each solver's ``top_k`` too); ``None``: all it returns.
    fallbacks
        Objective names to solve on when a solver does not handle ``objective``.
    options
        Per solver name, further ``Config`` fields.
    max_nodes
        Per solver name, the largest graph it runs on.
    device
        Passed to every solve.
    progress
        Called with each solver's name once it is done.

    Returns
    -------
    Portfolio
        The distinct proposals in solver order and per-solver ``info``.

    Raises
    ------
    UnknownSolverError
        A name in ``solvers`` is not a registered solver.

    Examples
    --------
    >>> g = OpGraph(3, [(0, 2), (1, 2)], duration=[1.0, 1.0, 1.0])
    >>> p = propose(g, make_objective("makespan", lanes=2), ["list", "topo-dfs"])
    >>> [(q.name, q.value, q.aliases) for q in p]
    [('list', 2.0, ['topo-dfs'])]
    """
    objective = make_objective(objective)
    names = list(dict.fromkeys(solvers))
    check_solver_names(names)
    if fallbacks is None:
        fallbacks = () if objective.name in ("makespan", "stage") else MEMORY_FALLBACKS
    alternatives = [objective, *(make_objective(f) for f in fallbacks if f != objective.name)]
    proposed: list[Proposed] = []
    info: dict[str, dict[str, Any]] = {}
    for name in names:
        t0 = time.perf_counter()
        limit = (max_nodes or {}).get(name)
        if limit is not None and graph.num_nodes > limit:
            info[name] = {"skipped": f"{graph.num_nodes} nodes > {limit}", "seconds": 0.0}
        else:
            try:
                solver = get_solver(name, **_options(name, samples, per_solver,
                                                     (options or {}).get(name)))
                on = next((o for o in alternatives if solver.supports(o)), None)
                if on is None:
                    raise ValueError(f"handles none of {[o.name for o in alternatives]}")
                res = solver.solve(graph, on, budget=budget, seed=seed, device=device)
            except Exception as err:  # noqa: BLE001 - one failing solver must not stop the rest
                info[name] = {"error": one_line(err, limit=200),
                              "seconds": time.perf_counter() - t0}
                log.warning("solver %s skipped on %s: %s", name,
                            graph.meta.get("name", "the graph"), info[name]["error"])
            else:
                kept = list(zip(res.schedules, res.values, strict=True))
                if per_solver is not None:
                    kept = kept[:max(1, per_solver)]
                for j, (s, v) in enumerate(kept):
                    if s.lane is None and objective.name == "makespan":
                        s = objective.complete(graph, s)
                    if on is not objective:  # valued on the requested objective
                        v = objective.evaluate(graph, s)
                    proposed.append(Proposed(name, j, s, float(v), on.name))
                info[name] = {"seconds": time.perf_counter() - t0, "proposals": len(kept),
                              "objective": on.name, "status": str(res.status)}
        if progress is not None:
            progress(name)
    out = []
    for first, *later in first_of_each(proposed, key=lambda p: schedule_key(p.schedule)).values():
        first.aliases.extend(p.name for p in later)
        out.append(first)
    return Portfolio(out, info)
