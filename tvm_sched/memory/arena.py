"""The arena planner: every intermediate tensor of a block gets a byte offset in one buffer.

TVM's ``StaticPlanBlockMemory`` hands out whole *storage tokens* greedily in program order, so a
freed 1 MB token can hold one later tensor but never two, and a token that grew cannot shrink:
it allocates 1.1-2.4x the liveness peak of the same order on the zoo. This module solves the
dynamic storage allocation problem instead (Garey & Johnson's DSA; TFLite's and OLLA's
planners): tensors are rectangles whose extent in time is fixed by the order (or by a
happens-before relation when lanes run concurrently) and whose offset in the arena is chosen so
that no two tensors that can be live at the same time share a byte.

Contract
--------
- The tensors are the *planned* outputs of the block's calls, as the extraction records them in
  ``graph.meta["planner"]``, read by :class:`~tvm_sched.memory.planner.PlannerMeta` (the same set
  TVM's planner serves: a tensor that reaches the function's return value, another block or an
  opaque call is never in the arena, and a reshape view aliases its producer's bytes -- the reads
  recorded there already look through views, tuples and get-items). A graph without that
  metadata has one tensor of ``out_bytes`` per node, read by its successors, planned unless it is
  a function output or empty.
- Sizes are rounded up to :data:`ALIGN` (64) bytes and offsets are multiples of it: TVM's CPU
  allocations and ``tvm.runtime.from_dlpack`` need 64-byte-aligned data pointers.
- **Sequential** execution (``happens_before=None``): a tensor is live from its producer's step
  to its last reader's step in ``order`` (inclusive), so a kernel's output never shares bytes
  with its inputs. **Concurrent** execution: two tensors may share bytes only if every use of one
  (its producer and readers) happens-before the producer of the other (ONNX Runtime's rule);
  ``hb[a, b]`` must be transitively closed.
- ``lower_bound`` is the liveness peak of the planned tensors in ``order`` (aligned sizes): every
  set of tensors live at one step pairwise conflicts, in either mode, so no packing beats it.
- **Merged tensors** (zero-copy concatenation, :mod:`tvm_sched.relax.concat`):
  ``meta["planner"]["merged"]`` may list ``[node, [[producer, field, byte offset], ...]]``:
  output 0 of ``node`` is one tensor whose slices the listed outputs are. It is planned once,
  written by those producers (``ArenaTensor.writers``: live from the first of them, and in the
  concurrent rule every use of another tensor must happen before *each* of its writers) and
  read by its own readers and theirs; the slices are not planned on their own, and
  :meth:`ArenaPlan.offset_of` gives each the merged tensor's offset plus its byte offset.

Algorithms
----------
``greedy``: greedy by size with best fit (TFLite's "greedy by size"): tensors are placed in
decreasing size, each in the smallest gap between already-placed tensors it conflicts with, or
on top; a second pass places them by decreasing bytes of conflicting tensors (the most
constrained first) and the better packing is kept.
``exact``: OR-Tools CP-SAT minimises the arena height over pairwise no-overlap constraints of the
conflicting tensors, warm-started from the greedy packing, under a time budget (``OPTIMAL`` when
proven). ``auto``: greedy, then exact when the greedy is above the lower bound and the block has
at most :data:`EXACT_MAX_TENSORS` tensors.

This module is pure numpy (OR-Tools imported lazily by the exact packing), so the cost layer can
use it as an exact evaluator without TVM.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from tvm_sched.errors import InvalidGraphError, InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.graph.algorithms import kahn_lists
from tvm_sched.memory.planner import PlannerMeta
from tvm_sched.schedule import as_orders

__all__ = ["ALIGN", "EXACT_MAX_TENSORS", "ArenaTensor", "ArenaPlan", "arena_tensors", "pack",
           "plan_arena", "arena_bytes_batch", "arena_lower_bound", "liveness_intervals",
           "happens_before_from_lanes", "merged_slices"]

#: Alignment of every offset and size in bytes.
ALIGN = 64
#: ``method="auto"`` runs the exact packing only on blocks with at most this many tensors.
EXACT_MAX_TENSORS = 256


@dataclass(frozen=True)
class ArenaTensor:
    """A tensor placed in the arena: output ``field`` of ``node``, ``size`` bytes (unaligned),
    read by ``readers`` (nodes, looking through views and tuples); a merged tensor is also
    written by ``writers`` (the producers of its slices; see the module docstring)."""

    node: int
    field: int
    size: int
    readers: tuple[int, ...]
    writers: tuple[int, ...] = ()

    @property
    def uses(self) -> tuple[int, ...]:
        """Every node that writes or reads the tensor: ``node``, ``writers``, ``readers``."""
        return (self.node, *self.writers, *self.readers)

    @property
    def first_writers(self) -> tuple[int, ...]:
        """The nodes that may write it first: the ``writers`` of a merged tensor, else
        ``node``."""
        return self.writers or (self.node,)


_TENSORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def arena_tensors(graph: OpGraph) -> tuple[ArenaTensor, ...]:
    """The tensors the arena holds for ``graph`` (see the module docstring), in producer order.

    Raises
    ------
    InvalidGraphError
        The graph's ``meta["planner"]`` is malformed.

    Examples
    --------
    >>> g = OpGraph(3, [(0, 1), (1, 2)], out_bytes=[100, 8, 4], is_output=[0, 0, 1])
    >>> [(t.node, t.size, t.readers) for t in arena_tensors(g)]
    [(0, 100, (1,)), (1, 8, (2,))]
    """
    try:
        return _TENSORS[graph]
    except KeyError:
        pass
    meta = PlannerMeta.from_graph(graph)
    readers: dict[tuple[int, int], list[int]] = {}
    for v, reads in enumerate(meta.reads):
        for key in reads:
            lst = readers.setdefault(key, [])
            if not lst or lst[-1] != v:
                lst.append(v)
    tensors = [ArenaTensor(v, k, t.nbytes, tuple(sorted(set(readers.get((v, k), ())) - {v})))
               for v, k, t in meta.planned()]
    result = tuple(_merge(tensors, meta.merged, graph.num_nodes))
    _TENSORS[graph] = result
    return result


def merged_slices(graph: OpGraph) -> dict[tuple[int, int], tuple[int, int, int]]:
    """Per slice of a merged tensor, ``(node, field) -> (merged node, merged field, byte
    offset)`` (empty without ``meta["planner"]["merged"]``)."""
    out: dict[tuple[int, int], tuple[int, int, int]] = {}
    for c, inputs in PlannerMeta.from_graph(graph).merged:
        for u, k, off in inputs:
            out[(u, k)] = (c, 0, off)
    return out


def _merge(tensors: list[ArenaTensor], merged, n: int) -> list[ArenaTensor]:
    """Fold the slices listed in ``merged`` into their merged tensors (module docstring)."""
    if not merged:
        return tensors
    at = {(t.node, t.field): i for i, t in enumerate(tensors)}
    drop: set[int] = set()
    roots: set[int] = set()
    for c, inputs in merged:
        c = int(c)
        if (c, 0) not in at or at[(c, 0)] in drop or at[(c, 0)] in roots:
            raise InvalidGraphError(f"merged tensor of node {c} is not a planned tensor of its "
                                    "own")
        i = at[(c, 0)]
        roots.add(i)
        t = tensors[i]
        writers, readers = set(), set(t.readers)
        top = 0
        for u, k, off in sorted(inputs, key=lambda x: int(x[2])):
            j = at.get((int(u), int(k)))
            if j is None or j in drop or j in roots or int(off) % ALIGN or \
                    not top <= int(off) <= t.size - tensors[j].size:
                raise InvalidGraphError(f"node {u} output {k} is not a planned slice of node "
                                        f"{c}'s output at byte {off} (aligned, inside it, "
                                        "apart from the other slices)")
            top = int(off) + tensors[j].size
            drop.add(j)
            writers.add(tensors[j].node)
            readers.update(tensors[j].readers)
        if not writers or any(not 0 <= w < n for w in writers):
            raise InvalidGraphError(f"merged tensor of node {c} has no writers")
        tensors[i] = ArenaTensor(c, 0, t.size, tuple(sorted(readers - writers - {c})),
                                 tuple(sorted(writers)))
    return [t for j, t in enumerate(tensors) if j not in drop]


def _aligned(sizes: np.ndarray, align: int) -> np.ndarray:
    return -(-np.asarray(sizes, dtype=np.int64) // align) * align


def _check_order(graph: OpGraph, order) -> np.ndarray:
    o = np.asarray(order, dtype=np.int64)
    n = graph.num_nodes
    if o.shape != (n,) or (n and (np.sort(o) != np.arange(n)).any()):
        raise InvalidScheduleError(f"order must be a permutation of the {n} nodes")
    return o


def liveness_intervals(graph: OpGraph, order) -> tuple[np.ndarray, np.ndarray]:
    """Per arena tensor, the first and last step (inclusive) it is live in ``order``."""
    tensors = arena_tensors(graph)
    pos = np.empty(graph.num_nodes, dtype=np.int64)
    pos[_check_order(graph, order)] = np.arange(graph.num_nodes)
    start = np.array([min(pos[u] for u in (t.node, *t.writers)) for t in tensors],
                     dtype=np.int64)
    end = np.array([max(pos[u] for u in t.uses) for t in tensors], dtype=np.int64)
    return start, end


def _interval_conflicts(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    return (start[:, None] <= end[None, :]) & (start[None, :] <= end[:, None])


def _hb_conflicts(graph: OpGraph, tensors, hb: np.ndarray) -> np.ndarray:
    n = graph.num_nodes
    hb = np.asarray(hb, dtype=bool)
    if hb.shape != (n, n):
        raise InvalidScheduleError(f"happens_before must have shape ({n}, {n}), got {hb.shape}")
    prod = np.array([t.node for t in tensors], dtype=np.int64)
    # before_all[i, v]: every use of tensor i happens-before node v
    before_all = np.ones((len(tensors), n), dtype=bool)
    for i, t in enumerate(tensors):
        for u in t.uses:
            before_all[i] &= hb[u]
    can_follow = before_all[:, prod]  # [i, j]: i's uses all happen before j's producer
    for j, t in enumerate(tensors):
        if t.writers:  # a merged tensor: before each of its writers
            can_follow[:, j] = before_all[:, list(t.writers)].all(axis=1)
    conf = ~(can_follow | can_follow.T)
    return conf


def _liveness_peak(sizes: np.ndarray, start: np.ndarray, end: np.ndarray, steps: int) -> int:
    if sizes.size == 0:
        return 0
    delta = np.zeros(steps + 1, dtype=np.int64)
    np.add.at(delta, start, sizes)
    np.subtract.at(delta, end + 1, sizes)
    return int(np.cumsum(delta).max())


def _best_fit(sizes: np.ndarray, conf: np.ndarray, rank: np.ndarray) -> tuple[np.ndarray, int]:
    """Place tensors in ``rank`` order, each in the smallest gap among its placed conflicts."""
    off = np.zeros(sizes.size, dtype=np.int64)
    placed = np.zeros(sizes.size, dtype=bool)
    total = 0
    for t in rank.tolist():
        s = sizes[t]
        nb = np.flatnonzero(conf[t] & placed)
        o = 0
        if nb.size:
            lo = off[nb]
            idx = np.argsort(lo, kind="stable")
            lo = lo[idx]
            top = np.maximum.accumulate(lo + sizes[nb][idx])
            gap_start = np.empty_like(lo)
            gap_start[0] = 0
            gap_start[1:] = top[:-1]
            gap = lo - gap_start
            fits = np.flatnonzero(gap >= s)
            o = int(gap_start[fits[np.argmin(gap[fits])]]) if fits.size else int(top[-1])
        off[t] = o
        placed[t] = True
        total = max(total, o + int(s))
    return off, total


def _greedy(sizes: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, int]:
    """Best fit in two placement orders, the better kept: by size, and by the bytes of the
    tensors each one conflicts with (most constrained first)."""
    idx = np.arange(sizes.size)
    best = _best_fit(sizes, conf, np.lexsort((idx, -sizes)))
    crowd = conf.astype(np.int64) @ sizes
    other = _best_fit(sizes, conf, np.lexsort((idx, -sizes, -crowd)))
    return other if other[1] < best[1] else best


def _exact(sizes: np.ndarray, conf: np.ndarray, hint: np.ndarray, upper: int, lower: int,
           budget: float | None, align: int) -> tuple[np.ndarray, int, bool]:
    """CP-SAT packing in units of ``align``; returns (offsets, arena, proven)."""
    from ortools.sat.python import cp_model

    unit = sizes // align
    top = upper // align
    m = cp_model.CpModel()
    height = m.new_int_var(lower // align, top, "arena")
    off = [m.new_int_var(0, max(0, top - int(u)), f"o{i}") for i, u in enumerate(unit)]
    for i, u in enumerate(unit):
        m.add(off[i] + int(u) <= height)
        m.add_hint(off[i], int(hint[i]) // align)
    ii, jj = np.nonzero(np.triu(conf, 1))
    for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
        if unit[i] == 0 or unit[j] == 0:
            continue
        below = m.new_bool_var(f"b{i}_{j}")
        m.add(off[i] + int(unit[i]) <= off[j]).only_enforce_if(below)
        m.add(off[j] + int(unit[j]) <= off[i]).only_enforce_if(~below)
    m.minimize(height)
    solver = cp_model.CpSolver()
    # CP-SAT's SIGINT handler leaves SIGINT at its default action when the solve ends, so a
    # later Ctrl-C would kill the process without Python's KeyboardInterrupt: keep it off.
    solver.parameters.catch_sigint_signal = False
    solver.parameters.max_time_in_seconds = 10.0 if budget is None else max(0.05, float(budget))
    solver.parameters.num_workers = 2
    solver.parameters.random_seed = 0
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return hint, upper, False
    offs = np.array([solver.value(o) * align for o in off], dtype=np.int64)
    total = int(max((o + s for o, s in zip(offs.tolist(), sizes.tolist(), strict=True)),
                    default=0))
    if total > upper:
        return hint, upper, False
    return offs, total, status == cp_model.OPTIMAL or total <= lower


def pack(
    sizes,
    conflicts,
    *,
    align: int = ALIGN,
    method: str = "greedy",
    budget: float | None = None,
    lower: int = 0,
) -> tuple[np.ndarray, int, bool]:
    """Offsets for rectangles of ``sizes`` bytes so that conflicting ones never overlap.

    Parameters
    ----------
    sizes
        (T,) bytes per tensor (rounded up to ``align``).
    conflicts
        (T, T) symmetric bool: ``conflicts[i, j]`` when i and j may be live at the same time.
    method
        ``"greedy"``, ``"exact"`` (CP-SAT under ``budget`` seconds) or ``"auto"``.
    lower
        A known lower bound (stops the search when reached).

    Returns
    -------
    (offsets, arena bytes, proven optimal)

    Examples
    --------
    >>> conf = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=bool)
    >>> offs, total, _ = pack([64, 100, 64], conf)
    >>> total, offs.tolist()
    (192, [128, 0, 128])
    """
    if method not in ("greedy", "exact", "auto"):
        raise ValueError(f"method must be 'greedy', 'exact' or 'auto', got {method!r}")
    if not isinstance(align, int) or align < 1:
        raise ValueError(f"align must be a positive integer, got {align!r}")
    s = _aligned(sizes, align)
    conf = np.asarray(conflicts, dtype=bool)
    if conf.shape != (s.size, s.size):
        raise ValueError(f"conflicts must have shape ({s.size}, {s.size}), got {conf.shape}")
    conf = conf | conf.T
    np.fill_diagonal(conf, False)
    if s.size == 0:
        return np.zeros(0, dtype=np.int64), 0, True
    lower = max(int(lower), int(s.max()))
    offs, total = _greedy(s, conf)
    proven = total <= lower
    if not proven and (method == "exact" or (method == "auto" and s.size <= EXACT_MAX_TENSORS)):
        offs, total, proven = _exact(s, conf, offs, total, lower, budget, align)
    return offs, int(total), bool(proven)


@dataclass(frozen=True)
class ArenaPlan:
    """Offsets of the arena tensors of one block for one order (and happens-before relation)."""

    tensors: tuple[ArenaTensor, ...]
    offsets: tuple[int, ...]
    arena_bytes: int
    lower_bound: int
    method: str
    proven: bool
    align: int = ALIGN
    #: slices of merged tensors: ``(node, field, merged node, merged field, byte offset)``
    slices: tuple[tuple[int, int, int, int, int], ...] = ()

    def offset_of(self, node: int, field: int = 0) -> int | None:
        """Byte offset of output ``field`` of ``node`` (a slice of a merged tensor: the merged
        tensor's offset plus the slice's); ``None`` when it is not in the arena."""
        return self._index.get((node, field))

    @property
    def _index(self) -> dict[tuple[int, int], int]:
        idx = self.__dict__.get("_idx")
        if idx is None:
            idx = {(t.node, t.field): o for t, o in zip(self.tensors, self.offsets, strict=True)}
            for u, k, c, f, off in self.slices:
                if (c, f) in idx:
                    idx[(u, k)] = idx[(c, f)] + off
            object.__setattr__(self, "_idx", idx)
        return idx

    def to_dict(self) -> dict[str, Any]:
        return {"arena_bytes": self.arena_bytes, "lower_bound": self.lower_bound,
                "method": self.method, "proven": self.proven, "align": self.align,
                "tensors": [[t.node, t.field, t.size, o]
                            for t, o in zip(self.tensors, self.offsets, strict=True)],
                "slices": [list(x) for x in self.slices]}


def plan_arena(
    graph: OpGraph,
    order,
    *,
    happens_before: np.ndarray | None = None,
    align: int = ALIGN,
    method: str = "auto",
    budget: float | None = 1.0,
) -> ArenaPlan:
    """Plan one arena for ``graph`` run in ``order`` (see the module docstring).

    Parameters
    ----------
    graph
        An extracted graph (or any OpGraph: one tensor per node).
    order
        A topological order; with ``happens_before``, any linear extension of it.
    happens_before
        ``None`` for sequential execution, or an (n, n) bool array, transitively closed.
    method, budget
        ``"greedy"``, ``"exact"`` or ``"auto"``; seconds for the exact packing.

    Raises
    ------
    InvalidScheduleError
        ``order`` is not a permutation, or ``happens_before`` has the wrong shape.

    Examples
    --------
    >>> g = OpGraph(4, [(0, 1), (1, 2), (2, 3)], out_bytes=[64, 64, 64, 64],
    ...             is_output=[0, 0, 0, 1])
    >>> p = plan_arena(g, [0, 1, 2, 3])
    >>> p.arena_bytes, p.lower_bound, p.offset_of(0), p.offset_of(2), p.offset_of(3)
    (128, 128, 0, 0, None)
    """
    tensors = arena_tensors(graph)
    start, end = liveness_intervals(graph, order)
    sizes = _aligned([t.size for t in tensors], align)
    lower = _liveness_peak(sizes, start, end, graph.num_nodes)
    if happens_before is None:
        conf = _interval_conflicts(start, end)
    else:
        conf = _hb_conflicts(graph, tensors, happens_before)
    offs, total, proven = pack(sizes, conf, align=align, method=method, budget=budget,
                               lower=lower)
    used = "greedy" if method == "greedy" else method
    slices = tuple((u, k, c, f, off) for (u, k), (c, f, off) in merged_slices(graph).items())
    return ArenaPlan(tensors, tuple(int(o) for o in offs), total, lower, used, proven, align,
                     slices)


_SCORES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SCORES_PER_GRAPH = 4096


def arena_bytes_batch(graph: OpGraph, orders, *, align: int = ALIGN) -> np.ndarray:
    """Greedy arena bytes (B,) int64 of ``B`` sequential orders (B, n): the ``arena_memory``
    objective's exact evaluator (deterministic, the packing the pass and the runtime use).

    Values are remembered per graph (up to 4,096 orders): a solver's exact re-check and the
    pass's final scoring see the same orders."""
    o = as_orders(graph, orders)
    memo = _SCORES.setdefault(graph, {})
    keys = [(align, row.tobytes()) for row in o]
    out = np.zeros(len(keys), dtype=np.int64)
    todo = []
    for b, k in enumerate(keys):
        v = memo.get(k)
        if v is None:
            todo.append(b)
        else:
            out[b] = v
    if todo:
        fresh = _arena_bytes(graph, o[todo], align)
        out[todo] = fresh
        if len(memo) + len(todo) > _SCORES_PER_GRAPH:
            memo.clear()
        for b, v in zip(todo, fresh.tolist(), strict=True):
            memo[keys[b]] = v
    return out


def _arena_bytes(graph: OpGraph, o: np.ndarray, align: int) -> np.ndarray:
    n = graph.num_nodes
    tensors = arena_tensors(graph)
    sizes = _aligned([t.size for t in tensors], align)
    out = np.zeros(o.shape[0], dtype=np.int64)
    if not tensors:
        return out
    prod = np.array([t.node for t in tensors], dtype=np.int64)
    read_t = np.array([i for i, t in enumerate(tensors) for _ in t.readers], dtype=np.int64)
    read_v = np.array([r for t in tensors for r in t.readers], dtype=np.int64)
    write_t = np.array([i for i, t in enumerate(tensors) for _ in t.writers], dtype=np.int64)
    write_v = np.array([w for t in tensors for w in t.writers], dtype=np.int64)
    for b in range(o.shape[0]):
        pos = np.empty(n, dtype=np.int64)
        pos[o[b]] = np.arange(n)
        start = pos[prod]
        end = start.copy()
        if write_t.size:
            np.minimum.at(start, write_t, pos[write_v])
            np.maximum.at(end, write_t, pos[write_v])
        if read_t.size:
            np.maximum.at(end, read_t, pos[read_v])
        conf = _interval_conflicts(start, end)
        np.fill_diagonal(conf, False)
        out[b] = _greedy(sizes, conf)[1]
    return out


def arena_lower_bound(graph: OpGraph, *, align: int = ALIGN) -> int:
    """A lower bound on the arena of every order: while a node runs, the arena tensors it
    produces and reads are live at once (aligned sizes)."""
    tensors = arena_tensors(graph)
    step = np.zeros(graph.num_nodes, dtype=np.int64)
    for t, s in zip(tensors, _aligned([t.size for t in tensors], align).tolist(), strict=True):
        for u in set(t.uses):
            step[u] += s
    return int(step.max(initial=0))


def happens_before_from_lanes(graph: OpGraph, lanes, extra_edges=(), *,
                              every_node: bool = True) -> np.ndarray:
    """The happens-before relation (n, n) of lanes run concurrently.

    ``lanes`` lists, per lane, its nodes in execution order; data edges, the lane orders and
    ``extra_edges`` (waits, ``(before, after)``) are closed transitively. With
    ``every_node=False`` a node may be on no lane (a view that runs no code): it is ordered
    through its data edges only.

    Raises
    ------
    InvalidScheduleError
        A node is on two lanes (or, with ``every_node``, on none), or the relation has a cycle.
    """
    n = graph.num_nodes
    seen = np.zeros(n, dtype=np.int64)
    succ: list[set[int]] = [set(s) for s in graph.succ_lists]
    for lane in lanes:
        lane = [int(v) for v in lane]
        for v in lane:
            if not 0 <= v < n:
                raise InvalidScheduleError(f"lane holds node {v} outside 0..{n - 1}")
            seen[v] += 1
        for a, b in zip(lane, lane[1:], strict=False):
            succ[a].add(b)
    bad = (seen > 1) | ((seen == 0) & every_node)
    if bad.any():
        v = int(np.flatnonzero(bad)[0])
        raise InvalidScheduleError(f"node {v} is on {seen[v]} lanes; each must be on one")
    for a, b in extra_edges:
        succ[int(a)].add(int(b))
    preds: list[list[int]] = [[] for _ in range(n)]
    for v in range(n):
        for w in succ[v]:
            preds[w].append(v)
    topo, stuck = kahn_lists(preds)
    if stuck:
        raise InvalidScheduleError("lane orders and data edges form a cycle (a deadlock)")
    reach = [0] * n  # bitset of nodes reachable from v
    for v in reversed(topo):
        r = 0
        for w in succ[v]:
            r |= reach[w] | (1 << w)
        reach[v] = r
    hb = np.zeros((n, n), dtype=bool)
    for v in range(n):
        r = reach[v]
        if r:
            bits = np.frombuffer(r.to_bytes((n + 7) // 8, "little"), dtype=np.uint8)
            hb[v] = np.unpackbits(bits, bitorder="little")[:n].astype(bool)
    return hb
