"""CP-SAT model of the makespan on ``m`` identical lanes (P|prec|Cmax, optionally with delays).

Contract
--------
:func:`build_makespan` returns a :class:`~.common.CPModel` whose optimum is the optimal makespan
of :class:`~tvm_sched.cost.Makespan` (chain semantics of :mod:`tvm_sched.cost.makespan`) when the
durations and delays are integers (or all multiples of one ``1/q``, see :mod:`.common`), and
whose decoded schedules have a makespan no larger than the CP value.

Two models:

- **No communication cost** (or one lane): one fixed-size interval per node, precedences
  ``start_v >= start_u + d_u``, ``AddCumulative`` with demand 1 and capacity ``m``, a makespan
  variable ``C >= end`` of every sink, and the redundant bounds ``C >= critical path`` and
  ``m·C >= Σ d`` (integer ceilings) in ``C``'s domain. Lanes are assigned afterwards by a sweep
  (:func:`assign_lanes`, interval colouring). CP-SAT's cumulative ignores zero-size intervals, so
  a zero-duration node may sit at an instant where all ``m`` lanes are busy; the sweep moves it to
  the first lane to free up, which cannot delay anything: no positive-duration node can start
  while those ``m`` lanes stay busy.
- **With communication cost** ``a·bytes + b`` on cross-lane edges: optional intervals per
  (node, lane) with ``AddNoOverlap`` per lane (CP-SAT's no-overlap orders zero-size intervals too,
  exactly as chain semantics does), ``AddExactlyOne`` of the lane literals, a ``same`` literal per
  edge with a positive delay (``same ∧ lane_u = l ⇒ lane_v = l``) and
  ``start_v >= end_u + delay·(1 - same)``; the cumulative of the first model stays as a
  redundant constraint. Lane symmetry is broken by *first appearance*: in topological order, node
  ``v_k`` may use lane ``l`` only if lane ``l - 1`` is used by one of ``v_0..v_{k-1}``
  (``lane_{v_k} <= max(lane_{v_0..v_{k-1}}) + 1``); every schedule has a relabelling of this form.

Durations and delays are scaled jointly to integers (:func:`~.common.to_integers`): delays may be
fractional even when durations are integral. A solution is read back as an order and lanes only
(the objective re-times them with the real durations, never later than the CP times): the order
sorts nodes by ``(start, end, topological position)``, which is topological and lists each lane's
nodes in the order they run (a zero-duration node sharing its start with a longer node runs
first).

Warm start: the bottom-level priority order decoded by list semantics
(:func:`tvm_sched.cost.makespan.list_times`), or the serial schedule on lane 0 when that is shorter,
re-timed in integer units.
"""

from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

from tvm_sched.cost import Makespan
from tvm_sched.cost.makespan import list_times
from tvm_sched.graph import OpGraph, priority_order
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.cpsat.common import (
    CPModel,
    add_hints,
    integer_levels,
    to_integers,
)

__all__ = ["build_makespan", "assign_lanes", "chain_starts"]


# ---------------------------------------------------------------------------- helpers
def chain_starts(
    graph: OpGraph,
    order: np.ndarray,
    lane: np.ndarray,
    dur: np.ndarray,
    delay: np.ndarray | None,
) -> np.ndarray:
    """Integer start times of ``order`` on the given lanes (chain semantics, integer data).

    Parameters
    ----------
    graph
        The graph.
    order
        A topological order; each lane runs its nodes in this order.
    lane
        Lane per node.
    dur
        Integer duration per node.
    delay
        Integer delay per edge, added when producer and consumer are on different lanes;
        ``None``: no delays.

    Returns
    -------
    numpy.ndarray
        int64 start per node.
    """
    n = graph.num_nodes
    start = np.zeros(n, dtype=np.int64)
    finish = np.zeros(n, dtype=np.int64)
    free: dict[int, int] = {}
    ptr, idx, eid = graph.pred_ptr, graph.pred_idx, graph.pred_eid
    for v in np.asarray(order, dtype=np.int64).tolist():
        ln = int(lane[v])
        s = free.get(ln, 0)
        for k in range(ptr[v], ptr[v + 1]):
            u = int(idx[k])
            arrive = int(finish[u])
            if delay is not None and int(lane[u]) != ln:
                arrive += int(delay[eid[k]])
            s = max(s, arrive)
        start[v] = s
        finish[v] = s + int(dur[v])
        free[ln] = int(finish[v])
    return start


def _sorted_order(graph: OpGraph, start: np.ndarray, dur: np.ndarray) -> np.ndarray:
    """Nodes sorted by (start, end, topological position)."""
    pos = np.empty(graph.num_nodes, dtype=np.int64)
    pos[graph.topological_order] = np.arange(graph.num_nodes)
    return np.lexsort((pos, start + dur, start))


def assign_lanes(
    graph: OpGraph, start: np.ndarray, dur: np.ndarray, lanes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interval colouring of a cumulative-feasible schedule onto ``lanes`` lanes.

    Nodes are swept by (start, end, topological position); each takes the free lane that became
    free last (best fit). A zero-duration node that finds every lane busy waits for the first lane
    to free up (see the module docstring), and so do its zero-duration descendants.

    Parameters
    ----------
    graph
        The graph.
    start
        Integer start per node of a schedule that never runs more than ``lanes`` nodes at once.
    dur
        Integer duration per node.
    lanes
        Number of lanes.

    Returns
    -------
    order, start, lane
        The order sorted by the final start times, the (possibly moved) integer starts and the
        lanes, all indexed by node id except ``order``.
    """
    n = graph.num_nodes
    sweep = _sorted_order(graph, start, dur)
    eff = np.asarray(start, dtype=np.int64).copy()
    lane = np.zeros(n, dtype=np.int64)
    free = [0] * lanes
    ptr, idx = graph.pred_ptr, graph.pred_idx
    for v in sweep.tolist():
        s = int(eff[v])
        for u in idx[ptr[v] : ptr[v + 1]].tolist():
            s = max(s, int(eff[u] + dur[u]))
        fits = [ln for ln in range(lanes) if free[ln] <= s]
        if fits:
            ln = max(fits, key=lambda x: (free[x], -x))
        else:
            ln = min(range(lanes), key=lambda x: (free[x], x))
            s = free[ln]
        eff[v], lane[v] = s, ln
        free[ln] = s + int(dur[v])
    rank = np.empty(n, dtype=np.int64)
    rank[sweep] = np.arange(n)
    order = np.lexsort((rank, eff + dur, eff))
    return order, eff, lane


def _warm_start(
    graph: OpGraph, objective: Makespan, dur: np.ndarray, delay: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, lane, integer start) of the better of list scheduling and the serial schedule."""
    n = graph.num_nodes
    order = priority_order(graph, graph.bottom_level)
    _, lane = list_times(graph, order, objective.lanes, objective.comm)
    lane = np.asarray(lane, dtype=np.int64)
    start = chain_starts(graph, order, lane, dur, delay)
    serial_len = int(dur.sum())
    if n and int(np.max(start + dur)) > serial_len:
        lane = np.zeros(n, dtype=np.int64)
        start = chain_starts(graph, order, lane, dur, delay)
    return order, lane, start


def _relabel_by_first_use(lane: np.ndarray, sequence: np.ndarray) -> np.ndarray:
    """Rename lanes in order of first use along ``sequence`` (the symmetry-breaking form)."""
    mapping: dict[int, int] = {}
    for v in sequence.tolist():
        mapping.setdefault(int(lane[v]), len(mapping))
    return np.array([mapping[int(x)] for x in lane], dtype=np.int64)


# ---------------------------------------------------------------------------- model
def build_makespan(
    graph: OpGraph, objective: Makespan, *, resolution: int, hint: bool
) -> CPModel:
    """The CP model of ``objective`` on ``graph`` (see the module docstring).

    Parameters
    ----------
    graph
        The graph.
    objective
        The makespan objective (its lanes and communication cost).
    resolution
        Passed to :func:`~tvm_sched.solvers.cpsat.common.to_integers` for the durations and
        delays.
    hint
        Warm-start the model from the better of list scheduling and the serial schedule.

    Returns
    -------
    CPModel
        The model, its watched variables (starts, then lanes when delays are modelled) and
        their decoder.
    """
    n = graph.num_nodes
    m = max(1, min(objective.lanes, n))
    comm = objective.comm if m > 1 else None
    raw_delay = comm.delay(graph.edge_bytes) if comm is not None else np.zeros(0)
    scaled = to_integers(np.concatenate([graph.duration, raw_delay]), resolution)
    dur = scaled.values[:n]
    delay = scaled.values[n:] if comm is not None else None
    if delay is not None and not np.any(delay > 0):
        delay = None  # every delay rounds to zero: the cumulative model is exact for it

    warm = _warm_start(graph, objective, dur, delay)
    ub = int(np.max(warm[2] + dur)) if n else 0
    top, bottom = integer_levels(graph, dur)
    lb = max(int(bottom.max()) if n else 0, -(-int(dur.sum()) // m))

    model = cp_model.CpModel()
    v_start, v_interval, v_c = _variables(model, dur, top, bottom, lb, ub)
    _precedences(model, graph, dur, v_start)
    model.add_cumulative(v_interval, [1] * n, m)
    for v in np.flatnonzero(graph.out_degree == 0).tolist():
        model.add(v_c >= v_start[v] + int(dur[v]))
    v_lane = _lane_model(model, graph, dur, delay, v_start, m) if delay is not None else None
    model.minimize(v_c)

    if hint:
        order, lane, start = warm
        add_hints(model, v_start, start.tolist())
        model.add_hint(v_c, ub)
        if v_lane is not None:
            _hint_lanes(model, graph, v_lane, _relabel_by_first_use(lane, graph.topological_order))

    watch = list(v_start) + (list(v_lane["lane"]) if v_lane is not None else [])

    def decode(values: np.ndarray) -> Schedule:
        # Order and lanes only: the objective re-times them with the real durations (chain
        # semantics), never later than the CP times. CP times of a rounded model are not
        # feasible for the real durations, so they are not passed on.
        start = values[:n]
        if v_lane is not None:
            lane = values[n:]
            order = _sorted_order(graph, start, dur)
        else:
            order, _, lane = assign_lanes(graph, start, dur, m)
        return Schedule(order=order, lane=lane)

    stats = {"lanes": m, "comm": delay is not None, "horizon": ub}
    warm_schedule = Schedule(order=warm[0], lane=warm[1])
    return CPModel(model, watch, decode, divisor=scaled.factor, exact=scaled.exact,
                   warm=warm_schedule, stats=stats)


def _variables(model, dur, top, bottom, lb, ub):
    """Start times within [top level, ub - bottom level], fixed-size intervals, makespan."""
    n = dur.size
    starts = [model.new_int_var(int(top[v]), max(int(top[v]), ub - int(bottom[v])), f"s{v}")
              for v in range(n)]
    intervals = [model.new_fixed_size_interval_var(starts[v], int(dur[v]), f"i{v}")
                 for v in range(n)]
    c = model.new_int_var(min(lb, ub), ub, "makespan")
    return starts, intervals, c


def _precedences(model, graph, dur, starts) -> None:
    for u, v in zip(graph.src.tolist(), graph.dst.tolist(), strict=True):
        model.add(starts[v] >= starts[u] + int(dur[u]))


def _lane_model(model, graph, dur, delay, starts, m) -> dict[str, list]:
    """Lane literals, per-lane no-overlap, delays on cross-lane edges, symmetry breaking."""
    n = graph.num_nodes
    x = [[model.new_bool_var(f"x{v}_{ln}") for ln in range(m)] for v in range(n)]
    lane = []
    for v in range(n):
        model.add_exactly_one(x[v])
        lv = model.new_int_var(0, m - 1, f"lane{v}")
        model.add(lv == sum(ln * x[v][ln] for ln in range(1, m)))
        lane.append(lv)
    for ln in range(m):
        model.add_no_overlap([
            model.new_optional_fixed_size_interval_var(starts[v], int(dur[v]), x[v][ln],
                                                       f"o{v}_{ln}")
            for v in range(n)
        ])
    same = {}
    for e, (u, v) in enumerate(zip(graph.src.tolist(), graph.dst.tolist(), strict=True)):
        if delay[e] <= 0:
            continue
        s = model.new_bool_var(f"same{e}")
        for ln in range(m):
            model.add_bool_or([~s, ~x[u][ln], x[v][ln]])
        model.add(starts[v] >= starts[u] + int(dur[u]) + int(delay[e])).only_enforce_if(~s)
        same[e] = s
    # symmetry breaking by first use along the topological order
    seq = graph.topological_order.tolist()
    model.add(lane[seq[0]] == 0)
    prefix = [lane[seq[0]]]
    for k in range(1, n):
        v = seq[k]
        model.add(lane[v] <= prefix[-1] + 1)
        if k < n - 1:
            mk = model.new_int_var(0, min(k, m - 1), f"maxlane{k}")
            model.add_max_equality(mk, [prefix[-1], lane[v]])
            prefix.append(mk)
    return {"lane": lane, "x": x, "same": same, "prefix": prefix}


def _hint_lanes(model, graph, v_lane, lane: np.ndarray) -> None:
    n = graph.num_nodes
    x = v_lane["x"]
    for v in range(n):
        model.add_hint(v_lane["lane"][v], int(lane[v]))
        for ln in range(len(x[v])):
            model.add_hint(x[v][ln], int(lane[v]) == ln)
    for e, s in v_lane["same"].items():
        model.add_hint(s, bool(lane[graph.src[e]] == lane[graph.dst[e]]))
    seq = graph.topological_order
    running = np.maximum.accumulate(lane[seq])
    for k, var in enumerate(v_lane["prefix"]):
        if k > 0:
            model.add_hint(var, int(running[k]))
