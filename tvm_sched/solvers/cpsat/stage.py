"""CP-SAT model of the stage-partition cost (ICML'24 "Differentiable Combinatorial Scheduling at
Scale", GauS): see :mod:`tvm_sched.cost.stage` for the cost.

Contract
--------
:func:`build_stage` returns a :class:`~.common.CPModel` whose optimum is the least
``ratio · max_d load_d + Σ_data edges (s_v - s_u)`` over all legal stage assignments -- exact when
the node weights are integers and ``ratio`` is a rational ``p / q`` with ``q <= resolution`` (the
CP objective is then ``p · P + q · crossings``, divided by ``q`` on the way back).

Model:

- a stage ``s_v`` in ``0..D-1`` per node and ``s_u <= s_v`` on every edge;
- for nodes of non-zero weight only, booleans ``x_{v,d}`` with ``AddExactlyOne`` and
  ``s_v = Σ_d d · x_{v,d}`` (zero-weight nodes only need ``s_v``, which keeps the model small on
  the ICML'24 graphs where about 60 % of the weights are zero);
- loads ``Σ_v w_v x_{v,d} <= P`` for every stage, ``P >= max(⌈W / D⌉, max w)``;
- the crossings ``Σ_{data edges} (s_v - s_u)`` are written per node as ``Σ_v c_v s_v`` with
  ``c_v`` = data in-degree − data out-degree (one linear term per node, not per edge).

Fractional weights are scaled to integers (:func:`~.common.to_integers`); then nothing is claimed.
Warm start: :func:`tvm_sched.cost.stage.stages_from_order` of the graph's Kahn order. Model
building is linear in the size of the graph (about ``n + E + #weighted · D`` constraints and terms).
"""

from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

from tvm_sched.cost import StageCost
from tvm_sched.cost.stage import node_weights, stages_from_order
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.cpsat.common import CPModel, add_hints, to_fraction, to_integers

__all__ = ["build_stage"]


def build_stage(graph: OpGraph, objective: StageCost, *, resolution: int, hint: bool) -> CPModel:
    """The CP model of ``objective`` on ``graph`` (see the module docstring).

    Parameters
    ----------
    graph
        The graph.
    objective
        The stage objective (stages, weight, ratio).
    resolution
        Passed to :func:`~tvm_sched.solvers.cpsat.common.to_integers` for the node weights,
        and the largest denominator of the scaled ratio.
    hint
        Warm-start the model from the stages of the topological order.

    Returns
    -------
    CPModel
        The model; its watched variables are the stages of the nodes.
    """
    n = graph.num_nodes
    D = int(objective.stages)
    scaled = to_integers(node_weights(graph, objective.weight), resolution)
    w = scaled.values
    p, q, exact_ratio = to_fraction(float(objective.ratio) / scaled.factor, resolution)
    heavy = np.flatnonzero(w > 0)
    total = int(w.sum())
    lb = max(-(-total // D), int(w.max()) if n else 0)

    model = cp_model.CpModel()
    # ---- variables
    s = [model.new_int_var(0, D - 1, f"s{v}") for v in range(n)]
    x = {int(v): [model.new_bool_var(f"x{v}_{d}") for d in range(D)] for v in heavy.tolist()}
    peak = model.new_int_var(lb, max(lb, total), "peak")
    # ---- constraints
    for u, v in zip(graph.src.tolist(), graph.dst.tolist(), strict=True):
        model.add(s[u] <= s[v])
    stage_ids = list(range(D))
    for v, xv in x.items():
        model.add_exactly_one(xv)
        model.add(s[v] == cp_model.LinearExpr.weighted_sum(xv, stage_ids))
    heavy_w = [int(w[v]) for v in x]
    for d in range(D):
        model.add(cp_model.LinearExpr.weighted_sum([xv[d] for xv in x.values()], heavy_w) <= peak)
    # ---- objective
    data = graph.edge_bytes > 0
    coef = (np.bincount(graph.dst[data], minlength=n)
            - np.bincount(graph.src[data], minlength=n)).astype(np.int64)
    nz = np.flatnonzero(coef).tolist()
    crossings = cp_model.LinearExpr.weighted_sum([s[v] for v in nz], [int(coef[v]) for v in nz])
    model.minimize(p * peak + q * crossings)

    warm = stages_from_order(graph, graph.topological_order, num_stages=D,
                             weight=objective.weight)
    if hint:
        add_hints(model, s, warm.tolist())
        heavy_stage = warm[heavy]
        add_hints(model, [b for xv in x.values() for b in xv],
                  (heavy_stage[:, None] == np.arange(D)[None, :]).ravel().tolist())
        loads = np.bincount(warm, weights=w, minlength=D)
        model.add_hint(peak, max(lb, int(loads.max())))

    pos = np.empty(n, dtype=np.int64)
    pos[graph.topological_order] = np.arange(n)

    def decode(values: np.ndarray) -> Schedule:
        order = np.lexsort((pos, values))
        return Schedule(order=order, start=values.astype(np.float64))

    stats = {"num_bools": len(x) * D, "ratio_pq": [p, q]}
    return CPModel(model, s, decode, divisor=float(q), exact=scaled.exact and exact_ratio,
                   warm=decode(warm), stats=stats)
