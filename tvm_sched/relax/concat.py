"""Zero-copy concatenation: which concatenates can vanish, their inputs written in place.

A concatenate copies its inputs into one tensor. When each input is a contiguous byte range of
the output -- the concatenation axis is the outermost axis of extent above 1 (channel concat at
batch 1 in NCHW, or axis 0) -- and each input is produced by a kernel of the same block, the
arena can place every producer's output at its slice of the concatenated tensor: the producers
write the result directly and the concatenate kernel is not run at all (no copy, no second
buffer). The lane runtime (:func:`tvm_sched.runtime.lower.plan_module`) and the ``tvm_sched``
pipeline (:class:`tvm_sched.relax.arena.PlanArena`) both use this module's analysis.

Contract
--------
:func:`concat_layout` reads a PrimFunc and returns its :class:`ConcatLayout` only when it is a
*pure* concatenate, checked structurally (not by its name): one block nest over the output's
axes, no initialisation or scratch buffers, and the one store ``out[v...] = if_then_else(c1 <=
v_a, in_1[..., v_a - c1, ...], if_then_else(c2 <= v_a, ...))`` whose branches take every input
exactly once, on consecutive ranges of axis ``a`` that tile the output; inputs and output share
the dtype and the other extents. A kernel fused with anything else is not a pure concatenate.
Byte offsets are kept only when every one is a multiple of :data:`ALIGN` (arena offsets and
DLPack views need 64-byte-aligned pointers).

:func:`concat_sites` finds, in the graph extracted from a dataflow block, the concatenates that
can vanish (:class:`ConcatSite`): the call's output is planned (in the arena), and each argument
is, directly or through plain aliases and tuple get-items, a distinct planned output of a
``call_tir`` of the block that no view aliases, no in-place call touches and no other chosen
concatenate takes (the first in program order keeps it; a concatenate whose output feeds a
chosen one, or that takes a chosen one's output, is left as it is -- no nesting). Other readers
of an input are fine: they read the same bytes where they now live.

:func:`merge_concats` records the sites in a copy of the graph's ``meta["planner"]`` under
``"merged"``: the arena planner (:mod:`tvm_sched.memory.arena`) then plans each concatenated
tensor as one tensor written by its inputs' producers (live from the first of them), and gives
each input the offset of its slice.

:class:`KeepConcatUnfused` marks pure concatenate kernels opaque before ``FuseOps`` (it does
not fuse them with their producers' element-wise tails, so a concatenate stays a kernel of its
own that can vanish); :func:`tvm_sched.relax.passes.fusion_prefix` runs it unless
``zero_copy_concat=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import relax

from tvm_sched.graph import OpGraph
from tvm_sched.relax.inplace import OPAQUE_PATTERN, inplace_indices

__all__ = ["ALIGN", "ConcatLayout", "ConcatSite", "concat_layout", "concat_sites",
           "merge_concats", "KeepConcatUnfused"]

#: Byte alignment every slice offset must have.
ALIGN = 64

_CALL_TIR = "relax.call_tir"


@dataclass(frozen=True)
class ConcatLayout:
    """A pure concatenate: along ``axis``, input ``i`` is bytes ``[offsets[i], offsets[i] +
    sizes[i])`` of the output (``nbytes`` in all)."""

    axis: int
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class ConcatSite:
    """A concatenate that can vanish: graph ``node`` (its output field 0 is the concatenated
    tensor) and, per argument, ``(producer node, output field, byte offset in the output)``."""

    node: int
    inputs: tuple[tuple[int, int, int], ...]


def _static(shape) -> tuple[int, ...] | None:
    dims = []
    for d in shape:
        if not isinstance(d, tvm.tirx.IntImm):
            return None
        dims.append(int(d))
    return tuple(dims)


def _int(e) -> int | None:
    return int(e.value) if isinstance(e, tvm.tirx.IntImm) else None


def _branches(value, var) -> list[tuple[int, object]] | None:
    """``[(lower bound on var, load), ...]`` of an ``if_then_else`` chain on ``c <= var``; the
    final else-branch gets bound 0."""
    out: list[tuple[int, object]] = []
    while isinstance(value, tvm.ir.expr.Call) and isinstance(value.op, tvm.ir.Op) and \
            value.op.name.endswith("if_then_else"):
        cond, then, other = value.args
        if not isinstance(cond, tvm.tirx.LE) or not cond.b.same_as(var):
            return None
        c = _int(cond.a)
        if c is None:
            return None
        out.append((c, then))
        value = other
    out.append((0, value))
    return out


def _load_shift(load, ivars, axis: int, params) -> tuple[int, int] | None:
    """(input index, shift) when ``load`` is ``param[v0, ..., v_axis - shift, ...]``."""
    if not isinstance(load, tvm.ir.expr.TensorLoad):
        return None
    idx = [k for k, p in enumerate(params) if load.source.same_as(p)]
    if len(idx) != 1 or len(load.indices) != len(ivars):
        return None
    shift = 0
    for k, (e, v) in enumerate(zip(load.indices, ivars, strict=True)):
        if e.same_as(v):
            continue
        if k == axis and isinstance(e, tvm.tirx.Sub) and e.a.same_as(v) and _int(e.b) is not None:
            shift = _int(e.b)
            continue
        return None
    return idx[0], shift


def concat_layout(prim) -> ConcatLayout | None:
    """The :class:`ConcatLayout` of ``prim`` when it is a pure concatenate whose inputs are
    contiguous, 64-byte-aligned slices of its output (see the module docstring); else ``None``.

    Parameters
    ----------
    prim
        The function to inspect; anything other than a ``PrimFunc`` with at least two
        parameters gives ``None``.

    Returns
    -------
    ConcatLayout or None
        The axis and the byte offset and size of each input in the output, or ``None`` when
        ``prim`` is not such a concatenate.
    """
    if not isinstance(prim, tvm.tirx.PrimFunc) or len(prim.params) < 2:
        return None
    tys = [p.ty for p in prim.params]
    shapes = [_static(getattr(t, "shape", ())) if hasattr(t, "shape") else None for t in tys]
    if any(s is None for s in shapes):
        return None
    dtypes = {str(t.dtype) for t in tys}
    if len(dtypes) != 1 or any(len(s) != len(shapes[-1]) for s in shapes):
        return None
    if any(len(getattr(t, "strides", ()) or ()) for t in tys):
        return None
    out_shape = shapes[-1]
    rank = len(out_shape)
    root = prim.body
    if not isinstance(root, tvm.s_tir.stmt.SBlockRealize):
        return None
    blk = root.block
    if blk.init is not None or len(blk.alloc_buffers) or len(blk.match_buffers):
        return None
    loops = []
    stmt = blk.body
    while isinstance(stmt, tvm.tirx.For):
        if _int(stmt.min) != 0 or int(stmt.kind) != 0:
            return None
        loops.append(stmt)
        stmt = stmt.body
    if not isinstance(stmt, tvm.s_tir.stmt.SBlockRealize) or len(loops) != rank:
        return None
    if tuple(_int(lp.extent) for lp in loops) != out_shape or \
            _int(stmt.predicate) not in (None, 1) or \
            not all(a.same_as(lp.loop_var) for a, lp in zip(stmt.iter_values, loops, strict=True)):
        return None
    inner = stmt.block
    if inner.init is not None or len(inner.alloc_buffers) or len(inner.match_buffers):
        return None
    ivars = [iv.var for iv in inner.iter_vars]
    if len(ivars) != rank or any(_int(iv.dom.min) != 0 or _int(iv.dom.extent) != e
                                 for iv, e in zip(inner.iter_vars, out_shape, strict=True)):
        return None
    store = inner.body
    if not isinstance(store, tvm.tirx.BufferStore) or not store.buffer.same_as(prim.params[-1]):
        return None
    if len(store.indices) != rank or \
            not all(e.same_as(v) for e, v in zip(store.indices, ivars, strict=True)):
        return None
    return _layout(store.value, ivars, prim.params[:-1], shapes, out_shape, dtypes.pop())


def _layout(value, ivars, params, shapes, out_shape, dtype) -> ConcatLayout | None:
    rank = len(out_shape)
    for axis in range(rank):
        br = _branches(value, ivars[axis])
        if br is None or len(br) != len(params):
            continue
        starts: list[int | None] = [None] * len(params)
        hi = out_shape[axis]
        ok = True
        for lo, load in br:
            hit = _load_shift(load, ivars, axis, params)
            if hit is None or starts[hit[0]] is not None or hit[1] != lo:
                ok = False
                break
            i = hit[0]
            want = list(out_shape)
            want[axis] = hi - lo
            if tuple(want) != shapes[i]:
                ok = False
                break
            starts[i] = lo
            hi = lo
        if not ok or hi != 0:
            continue
        if any(d != 1 for d in out_shape[:axis]):
            return None  # the slices are strided, not contiguous
        dt = tvm.runtime.DataType(dtype)
        inner = max(1, dt.bits * dt.lanes // 8)
        for d in out_shape[axis + 1:]:
            inner *= d
        offsets = tuple(int(s) * inner for s in starts)
        sizes = tuple(shapes[i][axis] * inner for i in range(len(params)))
        if any(o % ALIGN for o in offsets):
            return None
        total = inner * out_shape[axis]
        return ConcatLayout(axis, offsets, sizes, total)
    return None


def _prim(mod, gv):
    try:
        return mod[gv]
    except Exception:  # noqa: BLE001 - not in the module
        return None


def concat_sites(mod: tvm.IRModule, graph: OpGraph) -> list[ConcatSite]:
    """The concatenates of ``graph``'s block that can vanish (see the module docstring).

    ``graph`` is one extracted from ``mod`` (:func:`tvm_sched.relax.extract.extract`; its
    ``meta`` names the function, the block and each node's binding position).

    Parameters
    ----------
    mod
        The module ``graph`` was extracted from; its PrimFuncs are read to find the pure
        concatenates.
    graph
        The graph of one dataflow block, with the planner's metadata (``meta["planner"]``).

    Returns
    -------
    list[ConcatSite]
        The concatenates that can vanish, in program order; empty when ``graph`` carries no
        planner metadata or binding positions.
    """
    meta = graph.meta
    info = meta.get("planner")
    if info is None or "positions" not in meta:
        return []
    func = mod[meta["func"]]
    block = func.body.blocks[int(meta["block"])]
    node_at = {int(p): v for v, p in enumerate(meta["positions"])}
    kinds, outs = info["kind"], info["out"]
    token: dict = {}  # var -> (node, field) of a planned call_tir output
    fields: dict = {}  # var -> per-field tokens of a tuple output
    viewed: set = set()
    touched: set = set()  # tokens an in-place call accesses
    candidates: list[tuple[int, ConcatLayout, list]] = []
    for pos, binding in enumerate(block.bindings):
        var, value = binding.var, getattr(binding, "value", None)
        if isinstance(value, relax.Var):
            if value in token:
                token[var] = token[value]
            if value in fields:
                fields[var] = fields[value]
            continue
        if isinstance(value, relax.TupleGetItem):
            fs = fields.get(value.tuple_value)
            if fs is not None and 0 <= value.index < len(fs):
                token[var] = fs[value.index]
            continue
        if not isinstance(value, relax.Call):
            continue
        v = node_at.get(pos)
        if v is None:
            continue
        args = []
        if isinstance(value.op, tvm.ir.Op) and value.op.name.startswith("relax.call_") and \
                len(value.args) > 1:
            a = value.args[1]
            args = list(a.fields) if isinstance(a, relax.Tuple) else [a]
        else:
            args = list(value.args)
        if kinds[v] == "view":
            viewed.update(token[a] for a in args if a in token)
            continue
        if inplace_indices(value) is not None or kinds[v] != "alloc":
            touched.update(token[a] for a in args if a in token)
            for a in args:  # a tuple argument: every field
                touched.update(fields.get(a, ()))
            continue
        if isinstance(var.ty, relax.TupleType):
            fields[var] = [(v, k) for k in range(len(var.ty.fields))]
        else:
            token[var] = (v, 0)
        if not (isinstance(value.op, tvm.ir.Op) and value.op.name == _CALL_TIR):
            continue
        layout = concat_layout(_prim(mod, value.args[0]))
        if layout is None or isinstance(var.ty, relax.TupleType) or not outs[v][0][2]:
            continue
        if len(args) != len(layout.offsets) or any(a not in token for a in args):
            continue
        candidates.append((v, layout, [token[a] for a in args]))
    sites: list[ConcatSite] = []
    taken: set = set()
    outputs: set = set()
    for v, layout, toks in candidates:
        if len(set(toks)) != len(toks) or (v, 0) in taken:
            continue
        if any(t in taken or t in outputs or t in viewed or t in touched or
               not outs[t[0]][t[1]][2] or int(outs[t[0]][t[1]][0]) != size
               for t, size in zip(toks, layout.sizes, strict=True)):
            continue
        taken.update(toks)
        outputs.add((v, 0))
        sites.append(ConcatSite(v, tuple((u, k, o) for (u, k), o
                                         in zip(toks, layout.offsets, strict=True))))
    return sites


def merge_concats(graph: OpGraph, sites) -> OpGraph:
    """A copy of ``graph`` whose ``meta["planner"]["merged"]`` lists ``sites`` as
    ``[node, [[producer, field, byte offset], ...]]`` (what the arena planner reads).

    Parameters
    ----------
    graph
        A graph with planner metadata (``meta["planner"]``); it is not modified.
    sites
        The concatenates to merge, as :func:`concat_sites` returns them.

    Returns
    -------
    OpGraph
        A new graph with the same structure and attributes, its planner metadata copied and
        given the ``"merged"`` entry.
    """
    meta = dict(graph.meta)
    info = dict(meta["planner"])
    info["merged"] = [[s.node, [list(x) for x in s.inputs]] for s in sites]
    meta["planner"] = info
    return OpGraph(graph.num_nodes, graph.edges, duration=graph.duration,
                   out_bytes=graph.out_bytes, flops=graph.flops, is_output=graph.is_output,
                   edge_bytes=graph.edge_bytes, names=graph.names, ops=graph.ops, meta=meta)


@tvm.transform.module_pass(opt_level=0, name="tvm_sched.KeepConcatUnfused")
class KeepConcatUnfused:
    """Mark every pure concatenate kernel (:func:`concat_layout`) opaque, so that ``FuseOps``
    keeps it a kernel of its own; its producers then fuse their element-wise tails among
    themselves. Run it between ``AnnotateTIROpPattern`` and ``FuseOps``."""

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        """Give every pure concatenate PrimFunc of ``mod`` the opaque operator pattern.

        Parameters
        ----------
        mod
            The module to rewrite, its kernels annotated by ``AnnotateTIROpPattern``.
        ctx
            The pass context (unused).

        Returns
        -------
        tvm.IRModule
            ``mod`` itself when it has no pure concatenate, else a new module.
        """
        updates = {}
        for gv, func in mod.functions.items():
            if isinstance(func, tvm.tirx.PrimFunc) and concat_layout(func) is not None:
                updates[gv] = func.with_attr("op_pattern", OPAQUE_PATTERN)
        if not updates:
            return mod
        funcs = {gv: updates.get(gv, f) for gv, f in mod.functions.items()}
        return tvm.IRModule(funcs, attrs=mod.attrs, global_infos=mod.global_infos)
