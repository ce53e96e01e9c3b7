"""Objective-aware legalisers: relaxed start steps ``mu`` (B, n) -> legal schedules + exact values.

Every legaliser is a list scheduler keyed by ``mu`` (earlier mean = higher priority) that respects
the resources of its objective, so a legal schedule always comes out:

- ``makespan``: the priority order is decoded by the exact evaluator's list semantics (earliest
  start on ``m`` lanes, communication included), and by Graham's event-driven list scheduler;
- ``peak_memory``: the priority order itself (one kernel at a time);
- ``stage``: (a) rounding repaired forward -- ``s_v = max(clip(round(mu_v)), max_u s_u)``, level
  by level (latency 0: the same stage is allowed) -- and (b) the priority order split by the
  exact min-max chunking (:func:`~tvm_sched.cost.stage.stages_from_order`); both are kept;
- ``pipeline``: modulo list scheduling of the priority order (modulo resource table, recurrence
  lower bounds), which may fail: a failed restart proposes nothing.

Each returns ``(schedule, exact value, steps)`` triples; ``steps`` are the schedule's start steps
on the formulation's grid, used to warm-restart the relaxation from the best legal schedule.
"""

from __future__ import annotations

import numpy as np

from tvm_sched.cost import Makespan, Objective, PeakMemory, StageCost
from tvm_sched.cost.pipeline import Pipeline, modulo_list_schedule, pipeline_latency
from tvm_sched.cost.stage import stage_cost_batch, stages_from_orders
from tvm_sched.graph import OpGraph, priority_order
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import is_order_memory
from tvm_sched.solvers.decoding import list_schedule

__all__ = ["legalize", "repair_stages", "depth_levels", "improve_stages", "stage_order"]

Result = tuple[Schedule, float, np.ndarray]


def stage_order(graph: OpGraph, stages: np.ndarray) -> np.ndarray:
    """A topological order sorted by stage (ties: the graph's topological order).

    Parameters
    ----------
    graph
        The graph.
    stages
        A legal stage per node (no edge goes to an earlier stage).

    Returns
    -------
    numpy.ndarray
        The node order.
    """
    return np.lexsort((_positions(graph.topological_order), np.asarray(stages)))


def depth_levels(graph: OpGraph) -> list[np.ndarray]:
    """Edge ids grouped by the depth of their destination (ascending), for level-wise passes.

    Parameters
    ----------
    graph
        The graph.

    Returns
    -------
    list of numpy.ndarray
        One array of edge ids per destination depth; empty for a graph without edges.
    """
    if graph.num_edges == 0:
        return []
    dd = graph.depth[graph.dst]
    order = np.argsort(dd, kind="stable")
    cuts = np.flatnonzero(np.diff(dd[order])) + 1
    return np.split(order, cuts)


def repair_stages(graph: OpGraph, mu: np.ndarray, num_stages: int,
                  levels: list[np.ndarray] | None = None) -> np.ndarray:
    """Round ``mu`` (B, n) into ``0..D-1`` and lift every node to its latest predecessor's stage.

    Vectorised over the ``B`` rows and over the nodes of one depth level.

    Parameters
    ----------
    graph
        The graph.
    mu
        (B, n) relaxed stages.
    num_stages
        Number of stages ``D``.
    levels
        :func:`depth_levels` of ``graph`` when already computed.

    Returns
    -------
    numpy.ndarray
        (B, n) int64 legal stages.
    """
    s = np.clip(np.rint(mu), 0, num_stages - 1).astype(np.int64)
    for eids in levels if levels is not None else depth_levels(graph):
        u, v = graph.src[eids], graph.dst[eids]
        np.maximum.at(s, (slice(None), v), s[:, u])
    return s


def improve_stages(graph: OpGraph, stages: np.ndarray, objective: StageCost,
                   sweeps: int = 2, expired=lambda: False) -> np.ndarray:
    """Greedy local search: move single nodes within their legal window while the cost falls.

    The cost is compared lexicographically with the sum of squared stage loads, so moves that
    flatten the loads without changing the peak yet are taken too (they open later moves).
    Each sweep ends with a pass of pairwise swaps out of the heaviest stage.

    Parameters
    ----------
    graph
        The graph.
    stages
        Legal stages per node (not modified).
    objective
        The stage objective (stages, weight, ratio).
    sweeps
        Most passes over the nodes (fewer once a pass moves nothing).
    expired
        Called now and then; true stops the search with the stages reached.

    Returns
    -------
    numpy.ndarray
        int64 legal stages per node, costing no more than ``stages``.
    """
    from tvm_sched.cost.stage import node_weights

    s = np.asarray(stages, dtype=np.int64).copy()
    D, ratio = objective.stages, float(objective.ratio)
    w = node_weights(graph, objective.weight)
    load = np.bincount(s, weights=w, minlength=D).astype(np.float64)
    data = graph.edge_bytes > 0
    net = (np.bincount(graph.dst[data], minlength=graph.num_nodes)
           - np.bincount(graph.src[data], minlength=graph.num_nodes)).astype(np.float64)
    pp, pi, sp, si = graph.pred_ptr, graph.pred_idx, graph.succ_ptr, graph.succ_idx
    for _ in range(sweeps):
        moved = 0
        for v in range(graph.num_nodes):
            if v % 256 == 0 and expired():
                return s
            lo = int(s[pi[pp[v]:pp[v + 1]]].max(initial=0))
            hi = int(s[si[sp[v]:sp[v + 1]]].min(initial=D - 1))
            c = int(s[v])
            if lo == hi or w[v] == 0 and net[v] == 0:
                continue
            best = (ratio * load.max(), float(load @ load))
            best_t = c
            load[c] -= w[v]
            for t in range(lo, hi + 1):
                if t == c:
                    continue
                load[t] += w[v]
                key = (ratio * load.max() + net[v] * (t - c), float(load @ load))
                load[t] -= w[v]
                if key < best:
                    best, best_t = key, t
            load[best_t] += w[v]
            if best_t != c:
                s[v] = best_t
                moved += 1
        moved += _swap_pass(graph, s, load, w, net, D, ratio, expired=expired)
        if not moved:
            break
    return s


def _windows(graph: OpGraph, s: np.ndarray, D: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.zeros(graph.num_nodes, dtype=np.int64)
    hi = np.full(graph.num_nodes, D - 1, dtype=np.int64)
    np.maximum.at(lo, graph.dst, s[graph.src])
    np.minimum.at(hi, graph.src, s[graph.dst])
    return lo, hi


def _swap_pass(graph: OpGraph, s: np.ndarray, load: np.ndarray, w: np.ndarray, net: np.ndarray,
               D: int, ratio: float, max_swaps: int = 32, max_tries: int = 48,
               expired=lambda: False) -> int:
    """Exchange a node of the heaviest stage with a lighter one of another stage (both moves
    legal, the two not adjacent) while that lowers the cost; returns the number of swaps."""
    swaps = 0
    while swaps < max_swaps and not expired():
        lo, hi = _windows(graph, s, D)
        c = int(load.argmax())
        peak = ratio * load[c]
        best_gain, best_pair = 1e-9, None
        cand_v = np.flatnonzero((s == c) & (w > 0))
        cand_v = cand_v[np.argsort(-w[cand_v], kind="stable")][:max_tries]
        for v in cand_v.tolist():
            for t in range(int(lo[v]), int(hi[v]) + 1):
                if t == c:
                    continue
                u = np.flatnonzero((s == t) & (lo <= c) & (hi >= c) & (w < w[v]))
                if not u.size:
                    continue
                lc = load[c] - w[v] + w[u]
                lt = load[t] + w[v] - w[u]
                others = np.delete(load, [c, t]).max(initial=0.0)
                new = ratio * np.maximum(np.maximum(lc, lt), others) + net[v] * (t - c) + net[
                    u] * (c - t)
                gain = peak - new
                k = int(gain.argmax())
                if gain[k] > best_gain:
                    uu = int(u[k])
                    if uu in graph.succ_lists[v] or uu in graph.pred_lists[v]:
                        continue
                    best_gain, best_pair = float(gain[k]), (v, uu, t)
        if best_pair is None:
            break
        v, u, t = best_pair
        load[c] += w[u] - w[v]
        load[t] += w[v] - w[u]
        s[v], s[u] = t, c
        swaps += 1
    return swaps


def _orders(graph: OpGraph, mu: np.ndarray) -> list[np.ndarray]:
    tie = 1e-6 * graph.bottom_level / max(1.0, float(graph.bottom_level.max(initial=1.0)))
    return [priority_order(graph, -row + tie) for row in mu]


def _positions(order: np.ndarray) -> np.ndarray:
    pos = np.empty(order.size, dtype=np.float64)
    pos[order] = np.arange(order.size)
    return pos


def legalize(graph: OpGraph, objective: Objective, mu: np.ndarray, *, q: float = 1.0,
             levels: list[np.ndarray] | None = None) -> list[Result]:
    """Legal schedules from the relaxed means ``mu`` (B, n); see the module docstring.

    Parameters
    ----------
    graph
        The graph.
    objective
        Stage, makespan, an order-based memory objective or pipeline.
    mu
        (B, n) relaxed start steps (or stages).
    q
        Seconds per step of a makespan formulation: the returned steps are starts over ``q``.
    levels
        :func:`depth_levels` of ``graph`` when already computed (stages only).

    Returns
    -------
    list of tuple
        ``(schedule, exact value, steps)`` per candidate; ``steps`` are the schedule's start
        steps, usable to restart the relaxation from. Pipeline rows that cannot be modulo
        scheduled are left out.

    Raises
    ------
    ValueError
        No legaliser for the objective.
    """
    out: list[Result] = []
    if isinstance(objective, StageCost):
        D = objective.stages
        cands = [repair_stages(graph, mu, D, levels)]
        cands.append(stages_from_orders(graph, np.stack(_orders(graph, mu)), num_stages=D,
                                        weight=objective.weight))
        s = np.concatenate(cands)
        vals = stage_cost_batch(graph, s, num_stages=D, ratio=objective.ratio,
                                weight=objective.weight)
        for row, val in zip(s, vals, strict=True):
            order = stage_order(graph, row)
            out.append((Schedule(order=order, start=row.astype(np.float64)), float(val),
                        row.astype(np.float64)))
        return out
    orders = _orders(graph, mu)
    if isinstance(objective, Makespan):
        vals = objective.evaluate_orders(graph, np.stack(orders))
        for o, val in zip(orders, vals, strict=True):
            full = objective.complete(graph, Schedule(order=o))
            out.append((Schedule(order=o), float(val), np.asarray(full.start) / q))
        for row in mu:
            sch = list_schedule(graph, objective.lanes, priority=-row, comm=objective.comm)
            full = objective.complete(graph, sch)
            out.append((sch, objective.value(graph, full), np.asarray(full.start) / q))
        return out
    if isinstance(objective, PeakMemory) or is_order_memory(objective):
        vals = objective.evaluate_orders(graph, np.stack(orders))
        return [(Schedule(order=o), float(v), _positions(o))
                for o, v in zip(orders, vals, strict=True)]
    if isinstance(objective, Pipeline):
        for o in orders:
            s = modulo_list_schedule(graph, o, ii=objective.ii, lanes=objective.lanes,
                                     recurrences=objective.recurrences)
            if s is None:
                continue
            order = np.lexsort((_positions(o), s))
            out.append((Schedule(order=order, start=s.astype(np.float64)),
                        pipeline_latency(graph, s), s.astype(np.float64)))
        return out
    raise ValueError(f"no legaliser for {objective.name!r}")
