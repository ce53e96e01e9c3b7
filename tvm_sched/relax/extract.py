"""Extract one :class:`~tvm_sched.graph.OpGraph` per dataflow block of a fused Relax function.

Nodes are the bindings that compute -- ``call_tir`` and every other call -- keyed by their
*position* in the block (fused modules repeat binding names). Tuples and tuple-get-items are not
nodes: they are folded into their producers' edges, so a node reading ``tup[1]`` depends on the
producer of field 1. Edges carry the bytes of the tensor passed; ``out_bytes`` comes from the
binding's type (tuples: the sum of their fields), ``flops`` from
``tvm.s_tir.analysis.estimate_tir_flops`` of the called PrimFunc, and ``duration`` from a
roofline estimate ``max(flops / peak_flops, bytes moved / bandwidth)`` for a :class:`DeviceSpec`.
A binding whose variable is not a ``DataflowVar`` leaves the block: its node is an output.

Each graph's ``meta`` records the function, the block index and the binding position of each
node (``positions``), which :mod:`tvm_sched.relax.reorder` uses to write an order back, and under
``"planner"`` what :func:`tvm_sched.cost.planned_memory` needs to replay TVM's static memory
planner on an order (see :func:`_planner_info`): per node its kind (``"alloc"``: a call whose
outputs get storage; ``"view"``: a reshape that ``RewriteDataflowReshape`` turns into a view of
its input; ``"inplace"``: a ``call_tir_inplace``, whose in-place outputs keep the tokens of the
arguments they overwrite and whose other outputs get storage; ``"opaque"``: any other call), its
output tensors ``[bytes, dtype index, planned]``
(unplanned: the tensor reaches the function's return value, another block or an opaque call
other than a packed function, which TVM's planner trusts not to keep its arguments),
and the tensors it reads, ``[node, field]`` in argument order, seen through views and tuples.

An in-place call is ordered against every other access of a tensor it overwrites
(:func:`tvm_sched.relax.inplace.inplace_hazards`): those pairs are edges of 0 bytes when no data
edge joins them, so no topological order moves a reader of the old value after the write.

A block with a symbolic shape in a node's tensor cannot be sized: it is skipped with a warning
that names it (``skip_symbolic=True``) or raises :class:`~tvm_sched.errors.ExtractionError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import tvm
from tvm import relax

from tvm_sched.errors import ExtractionError
from tvm_sched.graph import OpGraph
from tvm_sched.relax.inplace import inplace_hazards, inplace_indices

__all__ = ["DeviceSpec", "DEVICES", "extract", "tensor_bytes", "BlockInfo"]


@dataclass(frozen=True)
class DeviceSpec:
    """A roofline: peak arithmetic rate and memory bandwidth."""

    name: str
    peak_flops: float  # FLOP/s
    bandwidth: float  # bytes/s
    launch_s: float = 2e-6  # fixed cost per kernel

    def duration(self, flops: float, bytes_moved: float) -> float:
        """Roofline seconds of one kernel: launch cost plus the slower of compute and memory.

        Parameters
        ----------
        flops
            Floating-point operations of the kernel.
        bytes_moved
            Bytes it reads and writes.

        Returns
        -------
        float
            ``launch_s + max(flops / peak_flops, bytes_moved / bandwidth)``.
        """
        return self.launch_s + max(flops / self.peak_flops, bytes_moved / self.bandwidth)


#: Named device specs for the roofline estimate (rough public figures).
DEVICES = {
    "cpu": DeviceSpec("cpu", peak_flops=50e9, bandwidth=20e9),
    "cpu-1core": DeviceSpec("cpu-1core", peak_flops=10e9, bandwidth=10e9),
    "h100": DeviceSpec("h100", peak_flops=60e12, bandwidth=3.3e12, launch_s=5e-6),
}


@dataclass(frozen=True)
class BlockInfo:
    """Where a graph came from: function name, block index, binding positions of its nodes."""

    func: str
    block: int
    positions: tuple[int, ...]
    num_bindings: int


def _dtype_bytes(dtype: str) -> int:
    return max(1, tvm.runtime.DataType(dtype).bits * tvm.runtime.DataType(dtype).lanes // 8)


def tensor_bytes(ty) -> int | None:
    """Bytes of a tensor (or the sum over a tuple) type; ``None`` when a shape is symbolic.

    Parameters
    ----------
    ty
        A Relax type (``TensorType``, ``TupleType`` or any other).

    Returns
    -------
    int or None
        Elements times dtype bytes (at least 1 byte per element); the sum of the fields of a
        tuple; 0 for a type that is neither; ``None`` when a shape is unknown or symbolic.
    """
    if isinstance(ty, relax.TupleType):
        total = 0
        for f in ty.fields:
            b = tensor_bytes(f)
            if b is None:
                return None
            total += b
        return total
    if isinstance(ty, relax.TensorType):
        shape = ty.shape
        if shape is None or not isinstance(shape, relax.ShapeExpr):
            return None
        n = 1
        for d in shape.values:
            if not isinstance(d, tvm.tirx.IntImm):
                return None
            n *= int(d)
        return n * _dtype_bytes(str(ty.dtype))
    return 0


def _callee(call: relax.Call) -> tuple[str, relax.Expr | None]:
    """(op kind, the GlobalVar of a called PrimFunc if any)."""
    op = call.op
    if isinstance(op, tvm.ir.Op):
        if op.name in ("relax.call_tir", "relax.call_tir_inplace", "relax.call_dps_packed") and \
                len(call.args) and isinstance(call.args[0], tvm.ir.GlobalVar):
            return call.args[0].name_hint, call.args[0]
        return op.name, None
    if isinstance(op, tvm.ir.GlobalVar):
        return op.name_hint, op
    return type(op).__name__, None


def _call_inputs(call: relax.Call) -> list[relax.Expr]:
    args = list(call.args)
    if isinstance(call.op, tvm.ir.Op) and call.op.name in (
        "relax.call_tir", "relax.call_tir_inplace", "relax.call_dps_packed"
    ):
        args = args[1:2]  # the argument tuple
    return args


def _flatten(expr: relax.Expr, memo: dict | None = None) -> list[relax.Expr]:
    """Leaves of nested tuples. ``memo`` caches per tuple: reading a field through tvm-ffi costs
    tens of microseconds, and extraction reads every call's argument tuple twice."""
    if not isinstance(expr, relax.Tuple):
        return [expr]
    if memo is not None and expr in memo:
        return memo[expr]
    out = []
    for f in expr.fields:
        out.extend(_flatten(f, memo))
    if memo is not None:
        memo[expr] = out
    return out


def _flops(mod: tvm.IRModule, gv) -> float:
    if gv is None:
        return 0.0
    try:
        func = mod[gv]
    except Exception:  # noqa: BLE001 - not in the module (extern)
        return 0.0
    if not isinstance(func, tvm.tirx.PrimFunc):
        return 0.0
    try:
        from tvm.s_tir.analysis import estimate_tir_flops

        return float(estimate_tir_flops(tvm.IRModule({gv: func})))
    except Exception:  # noqa: BLE001 - analysis unsupported for this kernel
        return 0.0


def extract(
    mod: tvm.IRModule,
    func: str = "main",
    *,
    device: str | DeviceSpec = "cpu",
    skip_symbolic: bool = True,
    min_nodes: int = 1,
    kernel_times: Mapping[str, float] | None = None,
) -> list[OpGraph]:
    """One OpGraph per dataflow block of ``mod[func]`` (fused module expected).

    Parameters
    ----------
    mod
        A Relax module, normally after the fusion prefix (:func:`tvm_sched.relax.prepare`).
    func
        The function to read.
    device
        Name in :data:`DEVICES` or a :class:`DeviceSpec` for the roofline durations.
    skip_symbolic
        Skip blocks with symbolic shapes (with a warning naming them) instead of raising.
    min_nodes
        Blocks with fewer compute bindings are left out.
    kernel_times
        Measured seconds per kernel name (:func:`tvm_sched.relax.profile.profile_kernels`):
        the duration of every node calling a named kernel; the others keep the roofline.

    Returns
    -------
    list of OpGraph
        One per dataflow block with at least ``min_nodes`` nodes, in block order; empty when
        the function body is not a sequence of blocks.

    Raises
    ------
    ExtractionError
        No such function (or not a Relax function), a ``match_cast`` binding in a block, or a
        symbolic block when ``skip_symbolic`` is false.
    """
    spec = DEVICES[device] if isinstance(device, str) else device
    try:
        f = mod[func]
    except Exception as err:  # noqa: BLE001 - TVM raises its own error types
        raise ExtractionError(f"the module has no function {func!r}") from err
    if not isinstance(f, relax.Function):
        raise ExtractionError(f"{func!r} is not a Relax function")
    body = f.body
    if not isinstance(body, relax.SeqExpr):
        return []
    views = _view_positions(mod, func)
    graphs = []
    memo: dict = {}
    for b, block in enumerate(body.blocks):
        if not isinstance(block, relax.DataflowBlock):
            continue
        g = _extract_block(mod, func, b, block, spec, skip_symbolic, kernel_times or {}, memo,
                           views.get(b, set()))
        if g is not None:
            g = _with_planner_info(g, f, b, block, views.get(b, set()), memo)
        if g is not None and g.num_nodes >= min_nodes:
            graphs.append(g)
    return graphs


def _extract_block(mod, func, b, block, spec, skip_symbolic, kernel_times,
                   memo: dict | None = None, views: set[int] = frozenset()) -> OpGraph | None:
    # var -> list of (producer node, bytes) it stands for
    source: dict[relax.Var, list[tuple[int, int]]] = {}
    tuple_fields: dict[relax.Var, list[list[tuple[int, int]]]] = {}
    names, ops, out_bytes, flops, is_output, positions = [], [], [], [], [], []
    in_bytes: list[int] = []
    edges: dict[tuple[int, int], int] = {}
    for pos, binding in enumerate(block.bindings):
        var = binding.var
        value = binding.value if isinstance(binding, relax.VarBinding) else None
        if value is None:
            raise ExtractionError(f"{func} block {b}: binding {pos} ({var.name}) is a match_cast;"
                                  " only var bindings are supported")
        if not isinstance(value, relax.Call):
            _forward_sources(var, value, source, tuple_fields, memo)
            continue
        nbytes = tensor_bytes(var.ty)
        if nbytes is None:
            msg = (f"{func} block {b}: binding {pos} ({var.name}) has a symbolic shape; "
                   "the block is left in its own order")
            if skip_symbolic:
                warnings.warn(msg, stacklevel=3)
                return None
            raise ExtractionError(msg)
        v = len(names)
        kind, gv = _callee(value)
        names.append(var.name)
        ops.append(kind)
        out_bytes.append(nbytes)
        flops.append(_flops(mod, gv))
        is_output.append(not isinstance(var, relax.DataflowVar))
        positions.append(pos)
        in_bytes.append(_add_data_edges(edges, value, v, source, memo))
        source[var] = [(v, nbytes)]
    if not names:
        return None
    _add_hazard_edges(edges, block, views, positions)
    dur = [float(kernel_times[op]) if op in kernel_times else spec.duration(fl, ib + ob)
           for op, fl, ib, ob in zip(ops, flops, in_bytes, out_bytes, strict=True)]
    pairs = sorted(edges)
    return OpGraph(
        len(names),
        pairs,
        duration=dur,
        out_bytes=out_bytes,
        flops=flops,
        is_output=is_output,
        edge_bytes=[edges[p] for p in pairs],
        names=names,
        ops=ops,
        meta={"func": func, "block": b, "positions": positions,
              "num_bindings": len(block.bindings), "device": spec.name,
              "name": f"{func}/block{b}"},
    )


def _forward_sources(var: relax.Var, value: relax.Expr, source: dict, tuple_fields: dict,
                     memo: dict | None) -> None:
    """The producers a binding that is not a call stands for: through tuples, fields, aliases."""
    if isinstance(value, relax.Tuple):
        tuple_fields[var] = [[s for e in _flatten(f, memo) for s in source.get(e, [])]
                             for f in value.fields]
        source[var] = [s for f in tuple_fields[var] for s in f]
    elif isinstance(value, relax.TupleGetItem):
        tv = value.tuple_value
        if tv in tuple_fields:
            source[var] = tuple_fields[tv][value.index]
        else:  # a field of a node's tuple output: depends on that node, field-sized
            nb = tensor_bytes(var.ty) or 0
            source[var] = [(u, nb) for u, _ in source.get(tv, [])]
    elif isinstance(value, relax.Var):
        source[var] = source.get(value, [])
    else:
        source[var] = []  # constants, shapes: not operators


def _add_data_edges(edges: dict[tuple[int, int], int], call: relax.Call, v: int, source: dict,
                    memo: dict | None) -> int:
    """Add the bytes node ``v`` reads from each producer to ``edges``; the bytes of its inputs."""
    read = 0
    for arg in _call_inputs(call):
        for e in _flatten(arg, memo):
            for u, ub in source.get(e, []):
                if u != v:
                    edges[(u, v)] = edges.get((u, v), 0) + ub
            if isinstance(e, relax.Expr) and hasattr(e, "ty"):
                read += tensor_bytes(e.ty) or 0
    return read


def _add_hazard_edges(edges: dict[tuple[int, int], int], block, views: set[int],
                      positions: list[int]) -> None:
    """Add a 0-byte edge for each in-place hazard between two nodes that no data edge joins.

    An in-place call keeps its program order against every other access of the tensor it
    overwrites (no data edge says that a reader of the old value must run before it).
    """
    node_at = {p: v for v, p in enumerate(positions)}
    for p, q in inplace_hazards(block, views):
        if p in node_at and q in node_at:
            edges.setdefault((node_at[p], node_at[q]), 0)


_TIR_CALLS = ("relax.call_tir", "relax.call_dps_packed")
_PACKED = "relax.call_pure_packed"


def _view_positions(mod: tvm.IRModule, func: str) -> dict[int, set[int]]:
    """Per block, the positions of the bindings ``RewriteDataflowReshape`` turns into views."""
    try:
        f = relax.transform.RewriteDataflowReshape()(mod)[func]
    except Exception:  # noqa: BLE001 - the pass rejects the module: no views
        return {}
    reshape = tvm.ir.Op.get("relax.reshape")
    before = mod[func].body.blocks
    out: dict[int, set[int]] = {}
    for b, block in enumerate(f.body.blocks):
        if b >= len(before) or len(before[b].bindings) != len(block.bindings):
            continue  # not rewritten binding for binding: positions would not match
        out[b] = {i for i, bd in enumerate(block.bindings)
                  if isinstance(bd, relax.VarBinding) and isinstance(bd.value, relax.Call)
                  and isinstance(bd.value.op, tvm.ir.Op) and bd.value.op.same_as(reshape)}
    return out


def _fields(ty) -> list:
    return list(ty.fields) if isinstance(ty, relax.TupleType) else [ty]


def _planner_info(func: relax.Function, b: int, block, views: set[int],
                  memo: dict | None = None) -> dict:
    """What the static planner sees in one block (the ``"planner"`` entry of a graph's meta).

    After ``CallTIRRewrite`` each output tensor of a ``call_tir`` is an ``alloc_tensor`` that the
    planner gives a storage token; a reshape rewritten to ``R.reshape`` is a view sharing its
    input's token; tokens are passed through aliases, tuples and tuple-get-items. A
    ``call_tir_inplace`` allocates only its fresh outputs; each in-place output is the argument
    it overwrites (``CallTIRRewrite`` binds it to that argument). A packed function
    (``call_pure_packed``) holds references to its arguments and returns an unplanned tensor. A
    token that reaches the function's return value, another block or any other call is never
    planned.
    """
    dtypes: list[str] = []
    kind: list[str] = []
    out: list[list[list]] = []
    reads: list[list[list[int]]] = []
    tok: dict = {}  # var -> flat list of (node, field)
    tok_fields: dict = {}  # tuple var -> per-field lists
    discard: set[tuple[int, int]] = set()

    for pos, binding in enumerate(block.bindings):
        var, value = binding.var, binding.value
        if not isinstance(value, relax.Call):
            _forward_tokens(var, value, tok, tok_fields, memo)
            continue
        v = len(kind)
        is_tir = isinstance(value.op, tvm.ir.Op) and value.op.name in _TIR_CALLS
        args = [t for a in _call_inputs(value) for t in _tokens_of(a, tok, memo)]
        if pos in views:
            kind.append("view")
            out.append([])
            reads.append([])
            tok[var] = args[:1] if value.args else []
            continue
        indices = inplace_indices(value)
        if indices is not None:
            # after CallTIRRewrite: a fresh output is an alloc_tensor passed to the kernel, an
            # in-place output is an alias of the argument it overwrites (that keeps its token)
            per_arg = [_tokens_of(a, tok, memo) for a in _flatten(value.args[1], memo)]
            kind.append("inplace")
            fields, field_tok = _inplace_outputs(var.ty, v, indices, per_arg, dtypes)
            out.append(fields)
            reads.append([list(t) for t in args])
            tok[var] = [t for f in field_tok for t in f]
            if isinstance(var.ty, relax.TupleType):
                tok_fields[var] = field_tok
            continue
        if not is_tir:
            # a packed function (``call_pure_packed`` lowers to a call of an ``ExternFunc``)
            # holds references to its arguments like a kernel and returns a tensor of its own;
            # any other call may keep its arguments: they are never planned
            packed = isinstance(value.op, tvm.ir.Op) and value.op.name == _PACKED
            kind.append("opaque")
            out.append([])
            reads.append([list(t) for t in args] if packed else [])
            if not packed:
                discard.update(args)
            tok[var] = []
            continue
        kind.append("alloc")
        fields = [_planned_tensor(ty, dtypes) for ty in _fields(var.ty)]
        out.append(fields)
        reads.append([list(t) for t in args])
        tok[var] = [(v, k) for k in range(len(fields))]
        if isinstance(var.ty, relax.TupleType):
            tok_fields[var] = [[(v, k)] for k in range(len(fields))]

    discard.update(_tokens_used_outside(func, b, tok))
    for u, k in discard:
        out[u][k][2] = False
    return {"dtypes": dtypes, "kind": kind, "out": out, "reads": reads}


def _tokens_of(e: relax.Expr, tok: dict, memo: dict | None) -> list[tuple[int, int]]:
    """The storage tokens ``(node, field)`` an argument stands for, through tuples."""
    return [t for x in _flatten(e, memo) for t in tok.get(x, [])]


def _forward_tokens(var: relax.Var, value: relax.Expr, tok: dict, tok_fields: dict,
                    memo: dict | None) -> None:
    """Pass the tokens through a binding that is not a call: a tuple, a field or an alias."""
    if isinstance(value, relax.Tuple):
        tok_fields[var] = [_tokens_of(f, tok, memo) for f in value.fields]
        tok[var] = [t for f in tok_fields[var] for t in f]
    elif isinstance(value, relax.TupleGetItem):
        tv = value.tuple_value
        if tv in tok_fields and value.index < len(tok_fields[tv]):
            tok[var] = list(tok_fields[tv][value.index])
        else:
            tok[var] = list(tok.get(tv, []))
    elif isinstance(value, relax.Var):
        tok[var] = list(tok.get(value, []))
        if value in tok_fields:
            tok_fields[var] = tok_fields[value]


def _planned_tensor(ty, dtypes: list[str]) -> list:
    """``[bytes, dtype index, planned=True]`` of an output tensor; adds its dtype to ``dtypes``."""
    dt = str(ty.dtype)
    if dt not in dtypes:
        dtypes.append(dt)
    return [int(tensor_bytes(ty) or 0), dtypes.index(dt), True]


def _inplace_outputs(ty, v: int, indices, per_arg: list,
                     dtypes: list[str]) -> tuple[list[list], list[list[tuple[int, int]]]]:
    """The fresh output tensors of in-place node ``v`` and the tokens of each output field."""
    fields, field_tok = [], []
    for k, fty in enumerate(_fields(ty)):
        i = indices[k] if k < len(indices) else -1
        if 0 <= i < len(per_arg):
            field_tok.append(list(per_arg[i]))
            continue
        field_tok.append([(v, len(fields))])
        fields.append(_planned_tensor(fty, dtypes))
    return fields, field_tok


def _tokens_used_outside(func: relax.Function, b: int, tok: dict) -> set[tuple[int, int]]:
    """Tokens used outside block ``b`` (other blocks, the return value): never planned."""
    outside = [func.body.body] + [bd.value for i, blk in enumerate(func.body.blocks) if i != b
                                  for bd in blk.bindings]
    used: set[tuple[int, int]] = set()
    for e in outside:
        for x in relax.analysis.free_vars(e):
            used.update(tok.get(x, []))
    return used


def _with_planner_info(g: OpGraph, func, b, block, views, memo: dict | None = None) -> OpGraph:
    meta = g.meta
    meta["planner"] = _planner_info(func, b, block, views, memo)
    return OpGraph(g.num_nodes, g.edges, duration=g.duration, out_bytes=g.out_bytes,
                   flops=g.flops, is_output=g.is_output, edge_bytes=g.edge_bytes,
                   names=g.names, ops=g.ops, meta=meta)


def block_info(graph: OpGraph) -> BlockInfo:
    """The :class:`BlockInfo` stored in an extracted graph's metadata.

    Parameters
    ----------
    graph
        A graph returned by :func:`extract`.

    Returns
    -------
    BlockInfo
        Function, block index, binding positions of the nodes, bindings in the block.

    Raises
    ------
    ExtractionError
        When the metadata lacks one of these entries (the graph was not extracted).
    """
    m = graph.meta
    try:
        return BlockInfo(m["func"], int(m["block"]), tuple(int(p) for p in m["positions"]),
                         int(m["num_bindings"]))
    except KeyError as err:
        raise ExtractionError("this graph was not extracted from a Relax module "
                              f"(metadata lacks {err})") from None
