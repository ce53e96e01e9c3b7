"""One sampling loop: draw a batch of orders -> decode -> value exactly -> keep the top k.

The sampling solvers (``random``, ``random-list``, ``gflownet``, and ``gumbel`` on the order
objectives) differ only in how they *draw* orders; :func:`sample_orders` does the rest, the same
way for all of them:

1. the batch size comes from a :class:`~tvm_sched.solvers.base.Pacer` (without a budget:
   ``samples`` orders in batches of at most ``batch``; with one: a timed probe of ``probe``
   orders, then batches sized to fit the time left), at least one order even on a spent budget;
2. ``draw(rng, size)`` returns the orders, (size, n) int64, each a topological order;
3. the objective decodes and values every order exactly (``objective.evaluate_orders``); on
   ``makespan`` without communication each order is also decoded by Graham's event-driven rule
   (:func:`~tvm_sched.solvers.decoding.event_decode`, when ``event_driven``);
4. one :class:`~tvm_sched.solvers.topk.TopK` keeps the ``top_k`` best distinct schedules; each
   improvement of the best is published with :meth:`~tvm_sched.solvers.base.Deadline.offer`
   (what a Ctrl-C returns);

until ``samples`` orders are drawn, the budget is spent or the best meets the objective's lower
bound. Seeds (a heuristic's schedules a solver wants scored too) enter the same top k before
the first draw.

Candidates rank by value, then tier (the objective's own decoding of an order before a
schedule with its own start times and lanes), then arrival (:class:`~tvm_sched.solvers.topk.TopK`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tvm_sched.cost import Objective
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import Candidate, Deadline, Pacer, meets_bound
from tvm_sched.solvers.decoding import event_decode, event_driven_applies
from tvm_sched.solvers.topk import TopK

__all__ = ["Sampled", "sample_orders"]

#: ``draw(rng, size)``: ``size`` topological orders (size, n) int64.
Draw = Callable[[np.random.Generator, int], np.ndarray]


@dataclass
class Sampled:
    """What :func:`sample_orders` returns: the kept candidates, best first, and counts."""

    candidates: list[Candidate]
    #: Orders drawn.
    samples: int
    batches: int
    #: Mean value of the drawn orders (the objective's own decoding); nan without samples.
    mean_value: float
    #: Distinct orders among those drawn.
    distinct: int

    @property
    def best_origin(self) -> str:
        """Where the best came from: ``"sample"`` or ``"seed"``."""
        return self.candidates[0].schedule.info.get("origin", "sample")

    @property
    def best_decoding(self) -> str:
        """How the best was decoded: ``"serial"`` (the objective's rule) or ``"event-driven"``."""
        return self.candidates[0].schedule.info.get("decoding", "serial")


def _tier(schedule: Schedule) -> int:
    return 0 if schedule.start is None and schedule.lane is None else 1


def sample_orders(graph: OpGraph, objective: Objective, deadline: Deadline,
                  rng: np.random.Generator, draw: Draw, *, samples: int, top_k: int,
                  batch: int, probe: int, seeds: Sequence[Candidate] = (),
                  event_driven: bool = True, claim: bool = True) -> Sampled:
    """Draw orders until ``samples``, the budget or the lower bound; keep the ``top_k`` best.

    Parameters
    ----------
    graph, objective, deadline, rng
        As :meth:`~tvm_sched.solvers.base.Solver._propose` receives them.
    draw
        ``draw(rng, size)`` -> (size, n) int64 topological orders.
    samples
        Orders to draw at most.
    top_k
        Distinct schedules kept.
    batch, probe
        The largest batch, and the size of the first, timed batch under a budget.
    seeds
        Candidates with exact values scored before the first draw (``info["origin"]`` should
        say ``"seed"``); a schedule with start times or lanes ranks after an order of equal value.
    event_driven
        Also decode every order event-driven where that applies (makespan, no communication).
    claim
        Whether the candidates claim their values (False for an objective whose
        ``evaluate_orders`` is not exact).

    Returns
    -------
    Sampled
        The kept candidates, best first (at most ``top_k``), and the counts of orders and
        batches drawn, their mean value and how many were distinct.

    Raises
    ------
    ValueError
        ``samples``, ``batch`` or ``probe`` below 1.

    Examples
    --------
    >>> from tvm_sched.cost import Makespan
    >>> g = OpGraph(3, [(0, 2)], duration=[1.0, 1.0, 1.0])
    >>> draw = lambda rng, size: np.tile([0, 1, 2], (size, 1))
    >>> out = sample_orders(g, Makespan(lanes=2), Deadline(None), np.random.default_rng(0),
    ...                     draw, samples=5, top_k=2, batch=2, probe=1)
    >>> out.samples, out.batches, out.distinct, out.candidates[0].claimed  # at the lower bound
    (2, 1, 1, 2.0)
    """
    if samples < 1 or batch < 1 or probe < 1:
        raise ValueError(f"samples, batch and probe must be >= 1, got {samples}, {batch}, "
                         f"{probe}")
    lb = objective.lower_bound(graph)
    top = TopK(top_k)
    for c in seeds:
        top.add(c.schedule, c.claimed, tier=_tier(c.schedule))
    if seeds:
        deadline.offer(top.candidates(claim))
    events = event_driven and event_driven_applies(objective)
    pacer = Pacer(deadline, batch, probe=probe)
    drawn, total, distinct = 0, 0.0, set()
    while not meets_bound(top.best, lb):
        size = pacer.next_size(samples - drawn) or (0 if drawn else 1)
        if size == 0:
            break
        orders = draw(rng, size)
        values = objective.evaluate_orders(graph, orders)
        first = drawn
        better = top.add_orders(orders, values,
                                info=lambda i, first=first: {"origin": "sample",
                                                             "sample": first + i})
        if events:
            scheds, spans = event_decode(graph, orders, objective, top_k, first=first)
            better = top.add_all(scheds, spans, tier=1) or better
        pacer.done(size)
        drawn += size
        total += float(values.sum())
        distinct.update(hash(row.tobytes()) for row in orders)  # 8 bytes per order
        if better:
            deadline.offer(top.candidates(claim), samples=drawn)
    return Sampled(top.candidates(claim), drawn, pacer.batches,
                   total / drawn if drawn else float("nan"), len(distinct))
