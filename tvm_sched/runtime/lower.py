"""Lower a fused Relax module and a lane schedule to a :class:`~tvm_sched.runtime.plan.LanePlan`.

Contract
--------
``plan_module(mod, schedule)`` reads ``main``: its body must be one dataflow block (plus the
return of variables bound in it). The schedule is over the nodes of the graph
:func:`tvm_sched.relax.extract.extract` gives for that block. Every binding is resolved at plan
time:

- ``call_tir`` of a PrimFunc -> a step (inputs, then outputs; TIR shape variables as scalars);
- a reshape that TVM's ``RewriteDataflowReshape`` turns into a view -> a view tensor, no step;
- tuples, tuple-get-items and variable aliases -> the tensors they stand for;
- constants -> ``const`` tensors (their values stay with the module: :func:`module_constants`).

Any other binding (another operator, ``call_dps_packed``, an in-place call, a match-cast, a
binding outside the dataflow block) raises :class:`~tvm_sched.errors.ExtractionError` naming it.

Zero-copy concatenation (``zero_copy_concat=True``, the default): a pure concatenate whose
inputs are outputs of kernels of the block and contiguous slices of its output
(:func:`tvm_sched.relax.concat.concat_sites`) runs no step -- its output is one arena tensor,
each input a ``view`` at its byte offset that its producer writes in place, and the
concatenate's readers wait for the producers instead. The plan is kept only when its arena is
no larger than the copying plan's: the sites are taken in program order, each kept when the
greedy arena does not grow with it, and the result is kept when the final arena is no larger
than the copying plan's (``meta["zero_copy_concat"]`` records both and how many
concatenates were removed).

Happens-before (:func:`happens_before`) is the transitive closure of the data edges, the lane
orders and the waits over the graph's nodes -- what the arena planner
(:func:`tvm_sched.memory.plan_arena`) needs to reuse bytes only when that is safe under
concurrency. Waits are a transitive reduction: a step waits for a cross-lane producer only if
neither its lane predecessor nor another of its waits already implies it (producers are
considered latest first, so the greedy choice is minimal).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import tvm
from tvm import relax

from tvm_sched.errors import ExtractionError
from tvm_sched.graph import OpGraph, program_order
from tvm_sched.relax.concat import concat_sites, merge_concats
from tvm_sched.relax.extract import extract
from tvm_sched.runtime.plan import ALIGN, LanePlan, Step, TensorSpec
from tvm_sched.runtime.waits import happens_before, lane_waits
from tvm_sched.schedule import Schedule

__all__ = ["plan_module", "happens_before", "lane_waits", "module_constants", "main_graph"]

log = logging.getLogger(__name__)

_CALL_TIR = "relax.call_tir"
_Constant = tvm.ir.expr.Constant  # TVM 0.27: Relax constants live in tvm.ir


def main_graph(mod: tvm.IRModule, *, kernel_times=None, func: str = "main") -> OpGraph:
    """The OpGraph of ``mod[func]``'s one dataflow block (what lane schedules are over).

    Parameters
    ----------
    mod
        A fused Relax module.
    kernel_times
        Seconds per kernel name for the node durations (else the roofline estimate).
    func
        The function to read.

    Returns
    -------
    OpGraph
        The block's graph, with the extraction metadata.

    Raises
    ------
    ExtractionError
        ``func`` has no dataflow block with operators, or more than one, or a symbolic shape.
    """
    graphs = extract(mod, func, skip_symbolic=False, kernel_times=kernel_times)
    if len(graphs) != 1:
        raise ExtractionError(f"{func} has {len(graphs)} dataflow blocks with operators; the "
                              "lane runtime runs exactly one")
    return graphs[0]


def _static_shape(ty, what: str) -> tuple[tuple[int, ...], str]:
    if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
        raise ExtractionError(f"{what} is not a tensor of known shape ({ty})")
    dims = []
    for d in ty.shape.values:
        if not isinstance(d, tvm.tirx.IntImm):
            raise ExtractionError(f"{what} has a symbolic shape {ty.shape}")
        dims.append(int(d))
    return tuple(dims), str(ty.dtype)


def _flatten(e) -> list:
    if isinstance(e, relax.Tuple):
        return [x for f in e.fields for x in _flatten(f)]
    return [e]


def module_constants(mod: tvm.IRModule, func: str = "main") -> list[np.ndarray]:
    """The constants ``main``'s dataflow block uses, in the order a plan numbers them.

    Parameters
    ----------
    mod
        A fused Relax module.
    func
        The function to read.

    Returns
    -------
    list of numpy.ndarray
        Each distinct constant once, in order of first use.
    """
    out: list[np.ndarray] = []
    seen: set = set()
    for block in mod[func].body.blocks:
        for binding in block.bindings:
            for e in _value_leaves(binding.value):
                if isinstance(e, _Constant) and e not in seen:
                    seen.add(e)
                    out.append(_const_value(e))
    return out


def _const_value(e) -> np.ndarray:
    value = getattr(e, "value", None)
    if value is None:
        value = e.data
    return value.numpy()


def _value_leaves(value) -> list:
    if isinstance(value, relax.Call):
        leaves = []
        for a in value.args:
            leaves.extend(_flatten(a))
        return leaves
    return _flatten(value)


class _Lowering:
    """Walks ``main`` once and records tensors and steps (see the module docstring)."""

    def __init__(self, mod: tvm.IRModule, graph: OpGraph, func: str):
        self.mod, self.graph, self.func = mod, graph, func
        self.tensors: list[TensorSpec] = []
        self.steps: list[Step] = []
        self.kernels: list[str] = []
        self.node_step: dict[int, int] = {}
        self.const_ids: dict[Any, int] = {}
        self.num_consts = 0
        self.env: dict[Any, Any] = {}  # var -> tensor id | list (tuple)

    def add(self, spec: TensorSpec) -> int:
        self.tensors.append(spec)
        return len(self.tensors) - 1

    def where(self, pos: int, var) -> str:
        return f"{self.func} binding {pos} ({var.name})"

    def ref(self, e, where: str):
        if isinstance(e, relax.Tuple):
            return [self.ref(f, where) for f in e.fields]
        if isinstance(e, _Constant):
            if e not in self.const_ids:
                shape, dtype = _static_shape(e.ty, f"a constant in {where}")
                self.const_ids[e] = self.add(TensorSpec("const", shape, dtype,
                                                        index=self.num_consts))
                self.num_consts += 1
            return self.const_ids[e]
        if e in self.env:
            return self.env[e]
        raise ExtractionError(f"{where} uses {type(e).__name__} {e}, which the lane runtime "
                              "cannot bind")

    def flat(self, r) -> list[int]:
        return [x for f in r for x in self.flat(f)] if isinstance(r, list) else [r]

    def lower(self) -> None:
        f = self.mod[self.func]
        for i, p in enumerate(f.params):
            shape, dtype = _static_shape(p.ty, f"parameter {i} ({p.name}) of {self.func}")
            self.env[p] = self.add(TensorSpec("param", shape, dtype, index=i))
        body = f.body
        if not isinstance(body, relax.SeqExpr):
            raise ExtractionError(f"{self.func}'s body is not a sequence of binding blocks")
        df = [b for b in body.blocks if isinstance(b, relax.DataflowBlock)]
        for b, block in enumerate(body.blocks):
            if not isinstance(block, relax.DataflowBlock) and len(block.bindings):
                bd = block.bindings[0]
                raise ExtractionError(f"{self.func} block {b} binding 0 ({bd.var.name}) is "
                                      "outside a dataflow block; the lane runtime runs one "
                                      "dataflow block")
        if len(df) != 1:
            raise ExtractionError(f"{self.func} has {len(df)} dataflow blocks; the lane runtime "
                                  "runs exactly one")
        meta = self.graph.meta
        positions = list(meta["positions"])
        kinds = meta["planner"]["kind"]
        node_at = {p: v for v, p in enumerate(positions)}
        for pos, binding in enumerate(df[0].bindings):
            self.binding(pos, binding, node_at.get(pos), kinds)
        self.outputs = self.flat(self.ref(body.body, f"the return value of {self.func}"))

    def binding(self, pos: int, binding, node: int | None, kinds) -> None:
        var = binding.var
        where = self.where(pos, var)
        if not isinstance(binding, relax.VarBinding):
            raise ExtractionError(f"{where} is a match-cast; the lane runtime runs kernel calls "
                                  "and views only")
        value = binding.value
        if isinstance(value, relax.Tuple):
            self.env[var] = [self.ref(x, where) for x in value.fields]
            return
        if isinstance(value, relax.TupleGetItem):
            tup = self.ref(value.tuple_value, where)
            if not isinstance(tup, list) or not 0 <= value.index < len(tup):
                raise ExtractionError(f"{where} takes field {value.index} of a non-tuple")
            self.env[var] = tup[value.index]
            return
        if isinstance(value, (relax.Var, _Constant)):
            self.env[var] = self.ref(value, where)
            return
        if not isinstance(value, relax.Call) or node is None:
            raise ExtractionError(f"{where} binds {type(value).__name__}; the lane runtime runs "
                                  "kernel calls and views only")
        kind = kinds[node]
        op_name = value.op.name if isinstance(value.op, tvm.ir.Op) else str(value.op)
        if kind == "view":
            src = value.args[1].fields[0] if op_name == _CALL_TIR else value.args[0]
            base = self.ref(src, where)
            if isinstance(base, list):
                raise ExtractionError(f"{where} reshapes a tuple")
            root = self.tensors[base]
            if root.kind == "view":
                base = root.index
            shape, dtype = _static_shape(var.ty, where)
            self.env[var] = self.add(TensorSpec("view", shape, dtype, index=base, node=node))
            return
        if op_name != _CALL_TIR or not isinstance(value.args[0], tvm.ir.GlobalVar):
            raise ExtractionError(f"{where} calls {op_name}; the lane runtime runs call_tir "
                                  "kernels and reshape views only")
        gv = value.args[0]
        try:
            prim = self.mod[gv]
        except Exception as err:  # noqa: BLE001 - TVM raises its own error types
            raise ExtractionError(f"{where} calls {gv.name_hint}, which is not in the module"
                                  ) from err
        if not isinstance(prim, tvm.tirx.PrimFunc):
            raise ExtractionError(f"{where} calls {gv.name_hint}, which is not a PrimFunc")
        args = [t for a in _flatten(value.args[1]) for t in self.flat(self.ref(a, where))]
        scalars: list[int] = []
        if len(value.args) > 2:
            for d in value.args[2].values:
                if not isinstance(d, tvm.tirx.IntImm):
                    raise ExtractionError(f"{where} passes a symbolic shape variable {d}")
                scalars.append(int(d))
        out_tys = list(var.ty.fields) if isinstance(var.ty, relax.TupleType) else [var.ty]
        outs = []
        for k, ty in enumerate(out_tys):
            shape, dtype = _static_shape(ty, f"{where} output {k}")
            outs.append(self.add(TensorSpec("extern", shape, dtype, node=node, field=k)))
        name = gv.name_hint
        if name not in self.kernels:
            self.kernels.append(name)
        self.node_step[node] = len(self.steps)
        self.steps.append(Step(node, var.name, self.kernels.index(name), tuple(args + outs),
                               tuple(scalars), len(outs)))
        self.env[var] = outs if isinstance(var.ty, relax.TupleType) else outs[0]


def _arena_offsets(graph: OpGraph, order, hb: np.ndarray, method: str):
    """(offset_of(node, field) -> int | None, arena bytes) from the arena planner."""
    try:
        from tvm_sched.memory import plan_arena
    except ImportError:
        warnings.warn("tvm_sched.memory is not available: intermediates get one arena slot each "
                      "(no reuse)", stacklevel=3)
        return _no_reuse(graph)
    plan = plan_arena(graph, list(order), happens_before=hb, align=ALIGN, method=method)
    return plan.offset_of, int(plan.arena_bytes)


def _no_reuse(graph: OpGraph):
    offsets: dict[tuple[int, int], int] = {}
    top = 0
    for v, fields in enumerate(graph.meta["planner"]["out"]):
        for k, (size, _dt, planned) in enumerate(fields):
            if planned:
                offsets[(v, k)] = top
                top += -(-int(size) // ALIGN) * ALIGN
    return (lambda node, fld=0: offsets.get((node, fld))), top


@dataclass
class _Layout:
    """Steps, lanes, waits and tensors of a plan, with or without zero-copy concatenates."""

    kernels: tuple[str, ...]
    tensors: tuple[TensorSpec, ...]
    steps: tuple[Step, ...]
    lanes: tuple[tuple[int, ...], ...]
    waits: tuple[tuple[int, ...], ...]
    arena_bytes: int
    removed: int


def _layout(low: _Lowering, graph: OpGraph, schedule: Schedule, sites, method: str) -> _Layout:
    """Lay the lowered module out under ``schedule``; the concatenates of ``sites`` run no
    step (see the module docstring)."""
    gone = {s.node for s in sites}
    slice_of = {(u, k): (s.node, off) for s in sites for u, k, off in s.inputs}
    kept = [st for st in low.steps if st.node not in gone]
    names = [low.kernels[k] for k in dict.fromkeys(st.kernel for st in kept)]
    kid = {n: i for i, n in enumerate(names)}
    steps = [replace(st, kernel=kid[low.kernels[st.kernel]]) for st in kept]
    node_step = {st.node: i for i, st in enumerate(steps)}
    is_step = [v in node_step for v in range(graph.num_nodes)]
    chains, waits = lane_waits(graph, schedule, is_step)
    hb = happens_before(graph, chains, waits, schedule.order)
    planned = merge_concats(graph, sites) if sites else graph
    offset_of, arena_bytes = _arena_offsets(planned, schedule.order, hb, method)
    own = {(t.node, t.field): i for i, t in enumerate(low.tensors)
           if t.kind == "extern" and t.node >= 0}
    tensors = []
    for t in low.tensors:
        if t.kind == "extern" and t.node >= 0:
            if (t.node, t.field) in slice_of:
                c, off = slice_of[(t.node, t.field)]
                t = TensorSpec("view", t.shape, t.dtype, index=own[(c, 0)], offset=int(off),
                               node=t.node, field=t.field)
            else:
                off = offset_of(t.node, t.field)
                if off is not None:
                    t = TensorSpec("arena", t.shape, t.dtype, offset=int(off), node=t.node,
                                   field=t.field)
                elif t.node in gone:
                    raise ExtractionError(f"the concatenate of node {t.node} has no arena "
                                          "offset")
        tensors.append(t)
    return _Layout(tuple(names), tuple(tensors), tuple(steps),
                   tuple(tuple(node_step[v] for v in c) for c in chains),
                   tuple(tuple(node_step[u] for u in waits[st.node]) for st in steps),
                   -(-int(arena_bytes) // ALIGN) * ALIGN, len(gone))


def _choose_sites(low: _Lowering, graph: OpGraph, schedule: Schedule, sites) -> list:
    """The sites, in program order, whose merging does not grow the (greedy) arena: a merged
    concatenation is live from its first input's producer, which can cost more bytes than the
    copy saves when that producer runs long before the others."""
    best = _layout(low, graph, schedule, (), "greedy").arena_bytes
    chosen: list = []
    for site in sites:
        trial = _layout(low, graph, schedule, [*chosen, site], "greedy").arena_bytes
        if trial <= best:
            chosen.append(site)
            best = trial
    return chosen


def plan_module(mod: tvm.IRModule, schedule: Schedule | None = None, *,
                graph: OpGraph | None = None, threads_per_lane: int = 1,
                arena_method: str = "auto", func: str = "main",
                meta: dict | None = None, zero_copy_concat: bool = True) -> LanePlan:
    """The lane plan of a fused module under a lane schedule.

    Parameters
    ----------
    mod
        A fused Relax module (:func:`tvm_sched.relax.frontend.prepare`).
    schedule
        A schedule of the nodes of ``graph`` (lanes optional: one lane); ``None``: the module's
        own order on one lane.
    graph
        The OpGraph of ``main``'s dataflow block (default: :func:`main_graph`).
    threads_per_lane
        TVM CPU threads per lane (recorded in the plan).
    arena_method
        Passed to the arena planner.
    zero_copy_concat
        Let the eligible concatenates vanish (see the module docstring); ``False``: the
        copying plan.
    func
        The function to plan.
    meta
        Entries for the plan's ``meta``.

    Returns
    -------
    LanePlan
        Steps, lanes, waits and tensors (intermediates placed in one arena).

    Raises
    ------
    ExtractionError
        A binding the runtime cannot run (named), not exactly one dataflow block, or a
        ``graph`` that was not extracted from a Relax module.
    InvalidScheduleError
        The schedule does not fit the graph.
    """
    graph = main_graph(mod, func=func) if graph is None else graph
    if "planner" not in graph.meta or "positions" not in graph.meta:
        raise ExtractionError("the graph was not extracted from a Relax module")
    if schedule is None:
        schedule = Schedule(order=tuple(program_order(graph).tolist()))
    schedule.validate(graph)
    low = _Lowering(mod, graph, func)
    low.lower()
    lay = _layout(low, graph, schedule, (), arena_method)
    info = {"func": func, "schedule": schedule.to_dict(), "num_consts": low.num_consts}
    sites = concat_sites(mod, graph) if zero_copy_concat else []
    if sites:
        chosen = _choose_sites(low, graph, schedule, sites)
        zero = _layout(low, graph, schedule, chosen, arena_method) if chosen else lay
        info["zero_copy_concat"] = {"eligible": len(sites), "removed": 0,
                                    "copying_arena_bytes": lay.arena_bytes,
                                    "zero_copy_arena_bytes": zero.arena_bytes}
        if chosen and zero.arena_bytes <= lay.arena_bytes:
            lay = zero
            info["zero_copy_concat"]["removed"] = zero.removed
    f = mod[func]
    attrs = dict(f.attrs) if f.attrs is not None else {}
    info.update(meta or {})
    plan = LanePlan(
        kernels=lay.kernels, tensors=lay.tensors, steps=lay.steps,
        lanes=lay.lanes, waits=lay.waits, outputs=tuple(low.outputs),
        num_input=int(attrs.get("num_input", len(f.params))), num_params=len(f.params),
        arena_bytes=lay.arena_bytes,
        threads_per_lane=int(threads_per_lane), num_nodes=graph.num_nodes, meta=info)
    plan.validate()
    return plan
