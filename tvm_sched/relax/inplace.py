"""In-place calls (``R.call_tir_inplace``): which bindings must keep their program order.

An in-place call overwrites some of its arguments and returns them as its outputs. Data edges
alone do not order it against the *other* bindings that access the tensor it overwrites: a
binding that reads the old value must run before the write (write-after-read), and one that
reads it after the write must stay after it. Any pass that reorders bindings -- ``FuseOps``
(which emits a fused group where its last binding was), the scheduler's solvers, the lane
runtime -- has to keep those pairs in program order.

Contract
--------
:func:`inplace_hazards` analyses one binding block and returns the pairs ``(p, q)`` of binding
positions, ``p < q``, that must stay in that order: each in-place call paired with every other
call that accesses a tensor it overwrites. A tensor is followed through variable aliases,
tuples, tuple-get-items, in-place outputs (an in-place output *is* the tensor it overwrote) and,
when given, the positions of bindings that become views of their first argument (reshapes that
``RewriteDataflowReshape`` rewrites). Parameters and constants are tensors of their own.

:class:`KeepInplaceCallsUnfused` is the fusion side: it keeps every in-place call, and every
call that accesses a tensor before an in-place call overwrites it, out of ``FuseOps``'s groups,
so those calls stay single bindings that ``FuseOps`` emits where they were.
"""

from __future__ import annotations

from collections.abc import Iterable

import tvm
from tvm import relax

__all__ = ["inplace_hazards", "KeepInplaceCallsUnfused", "inplace_indices"]

_INPLACE = "relax.call_tir_inplace"
_DPS = ("relax.call_tir", "relax.call_tir_inplace", "relax.call_dps_packed")
#: ``op_pattern`` of a kernel ``FuseOps`` never fuses (TVM's ``OpPatternKind::kOpaque``).
OPAQUE_PATTERN = 8


def _op_name(value) -> str | None:
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
        return value.op.name
    return None


def inplace_indices(call: relax.Call) -> list[int] | None:
    """Per output of ``call``, the argument it overwrites (``-1``: a fresh tensor); ``None``
    when ``call`` is not an in-place call.

    Parameters
    ----------
    call
        Any binding value; only a ``relax.call_tir_inplace`` call has indices.

    Returns
    -------
    list of int or None
        The call's ``inplace_indices`` attribute, or ``None``.
    """
    if _op_name(call) != _INPLACE:
        return None
    return [int(i) for i in call.attrs.inplace_indices]


def _call_args(call: relax.Call) -> list[relax.Expr]:
    """The tensor arguments of ``call`` (the argument tuple of a destination-passing call)."""
    if _op_name(call) in _DPS:
        args = call.args[1]
        return list(args.fields) if isinstance(args, relax.Tuple) else [args]
    return list(call.args)


class _Roots:
    """The tensors (roots) each variable of a block may stand for, per tuple field."""

    def __init__(self) -> None:
        self.fields: dict = {}  # var -> list of frozensets of roots, one per field

    def of(self, expr) -> frozenset:
        if isinstance(expr, relax.Tuple):
            return frozenset().union(*(self.of(f) for f in expr.fields))
        if expr in self.fields:
            return frozenset().union(*self.fields[expr])
        if isinstance(expr, relax.Var):
            return frozenset({("var", expr)})
        if isinstance(expr, tvm.ir.expr.Constant):
            return frozenset({("const", expr)})
        return frozenset()  # shapes, strings, primitive values: not tensors

    def field_roots(self, expr) -> list[frozenset]:
        if isinstance(expr, relax.Tuple):
            return [self.of(f) for f in expr.fields]
        if expr in self.fields:
            return list(self.fields[expr])
        return [self.of(expr)]


def _num_fields(ty) -> int:
    return len(ty.fields) if isinstance(ty, relax.TupleType) else 1


def _accesses(block, views: Iterable[int] = ()) -> tuple[list, dict[int, frozenset]]:
    """Per binding position, the roots its call accesses (``None`` for non-calls), and per
    in-place call the roots it overwrites."""
    views = set(views)
    roots = _Roots()
    access: list[frozenset | None] = []
    writes: dict[int, frozenset] = {}
    for pos, binding in enumerate(block.bindings):
        var = binding.var
        value = getattr(binding, "value", None)
        if isinstance(value, relax.Tuple):
            roots.fields[var] = [roots.of(f) for f in value.fields]
            access.append(None)
            continue
        if isinstance(value, relax.TupleGetItem):
            fields = roots.field_roots(value.tuple_value)
            idx = value.index
            roots.fields[var] = [fields[idx] if 0 <= idx < len(fields) and len(fields) > 1
                                 else frozenset().union(*fields)]
            access.append(None)
            continue
        if isinstance(value, relax.Var):
            roots.fields[var] = roots.field_roots(value)
            access.append(None)
            continue
        if not isinstance(value, relax.Call):
            access.append(None)  # constants, shapes, match-casts: no kernel runs
            continue
        args = _call_args(value)
        arg_roots = [roots.of(a) for a in args]
        access.append(frozenset().union(*arg_roots))
        fresh = [frozenset({("out", pos, k)}) for k in range(_num_fields(var.ty))]
        indices = inplace_indices(value)
        if indices is not None:
            out = []
            for k, i in enumerate(indices):
                out.append(arg_roots[i] if 0 <= i < len(arg_roots) else fresh[k])
            writes[pos] = frozenset().union(*(arg_roots[i] for i in indices
                                              if 0 <= i < len(arg_roots)))
            roots.fields[var] = out
        elif pos in views and args:
            roots.fields[var] = [arg_roots[0]]
        else:
            roots.fields[var] = fresh
    return access, writes


def inplace_hazards(block, views: Iterable[int] = ()) -> list[tuple[int, int]]:
    """Pairs of binding positions ``(p, q)``, ``p < q``, that must keep their order because one
    of them is an in-place call overwriting a tensor the other accesses.

    Parameters
    ----------
    block
        A Relax binding block (dataflow or not).
    views
        Positions of bindings whose output is a view of their first argument.

    Returns
    -------
    list of tuple of int
        Sorted, without repeats; empty when the block has no in-place call.
    """
    if not any(inplace_indices(getattr(b, "value", None)) is not None for b in block.bindings):
        return []  # the common case: nothing is overwritten
    access, writes = _accesses(block, views)
    pairs: set[tuple[int, int]] = set()
    for w, overwritten in writes.items():
        if not overwritten:
            continue
        for r, acc in enumerate(access):
            if r != w and acc is not None and acc & overwritten:
                pairs.add((min(r, w), max(r, w)))
    return sorted(pairs)


@tvm.transform.module_pass(opt_level=0, name="tvm_sched.KeepInplaceCallsUnfused")
class KeepInplaceCallsUnfused:
    """Keep in-place calls, and the calls that access a tensor before an in-place call
    overwrites it, out of ``FuseOps``'s groups.

    ``AnnotateTIROpPattern`` gives an in-place kernel the pattern of its loops (an in-place add
    is element-wise), and ``FuseOps`` then fuses it with its neighbours: ``FuseTIR`` cannot lower
    many such groups (a kernel whose body is not one root block: "Only schedulable functions
    ... can be fused"; a call that also returns a fresh tensor: ``IndexError``), and ``FuseOps``
    orders bindings by data edges only, so a reader of the old value fused with a later binding
    runs after the write. This pass marks every PrimFunc called in place opaque, and calls each
    earlier reader of an overwritten tensor through an opaque copy of its PrimFunc (other calls
    of that PrimFunc still fuse). ``FuseOps`` emits a binding that is a group of its own where
    it was, so these keep their program order; everything else fuses as before.

    Run it between ``AnnotateTIROpPattern`` and ``FuseOps``
    (:func:`tvm_sched.relax.passes.fusion_prefix` does). A module without in-place calls is
    returned unchanged.
    """

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        """Mark in-place kernels opaque and route their earlier readers through opaque copies.

        Parameters
        ----------
        mod
            A legalised module whose PrimFuncs carry ``op_pattern`` (after
            ``AnnotateTIROpPattern``).
        ctx
            The pass context (unused).

        Returns
        -------
        tvm.IRModule
            ``mod`` itself when it has no in-place call, else the rewritten module.
        """
        bb = relax.BlockBuilder(mod)
        opaque_copy: dict[str, tvm.ir.GlobalVar] = {}
        inplace_callees: dict[str, tvm.ir.GlobalVar] = {}
        updates: dict[tvm.ir.GlobalVar, relax.Function] = {}
        for gv, func in mod.functions.items():
            if not isinstance(func, relax.Function) or not isinstance(func.body, relax.SeqExpr):
                continue
            blocks, changed = [], False
            for block in func.body.blocks:
                for b in block.bindings:
                    if inplace_indices(b.value) is not None and \
                            isinstance(b.value.args[0], tvm.ir.GlobalVar):
                        callee = b.value.args[0]
                        inplace_callees[callee.name_hint] = callee
                readers = {p for p, q in inplace_hazards(block)
                           if inplace_indices(block.bindings[q].value) is not None
                           and inplace_indices(block.bindings[p].value) is None}
                new = list(block.bindings)
                for p in sorted(readers):
                    call = new[p].value
                    if _op_name(call) != "relax.call_tir" or \
                            not isinstance(call.args[0], tvm.ir.GlobalVar):
                        continue  # FuseOps fuses only call_tir
                    target = call.args[0]
                    if target.name_hint not in opaque_copy:
                        prim = mod[target].with_attr("op_pattern", OPAQUE_PATTERN)
                        copy = bb.add_func(prim, f"{target.name_hint}_before_inplace")
                        if prim.attrs is not None and "global_symbol" in prim.attrs:
                            # a public kernel: the copy must not export the same symbol
                            bb.update_func(copy, prim.with_attr("global_symbol",
                                                                copy.name_hint))
                        opaque_copy[target.name_hint] = copy
                    value = relax.Call(call.op, [opaque_copy[target.name_hint], *call.args[1:]],
                                       call.attrs, call.ty_args)
                    new[p] = relax.VarBinding(new[p].var, value)
                    changed = True
                blocks.append(type(block)(new) if changed else block)
            if changed:
                seq = relax.SeqExpr(blocks, func.body.body)
                updates[gv] = relax.Function(func.params, seq, func.ret_ty, func.is_pure,
                                             func.attrs)
        if not inplace_callees:
            return mod
        for callee in inplace_callees.values():
            prim = mod[callee]
            if isinstance(prim, tvm.tirx.PrimFunc):
                bb.update_func(callee, prim.with_attr("op_pattern", OPAQUE_PATTERN))
        for gv, func in updates.items():
            bb.update_func(gv, relax.BlockBuilder().normalize(func))
        return bb.get()
