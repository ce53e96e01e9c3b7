"""Inline cheap elementwise kernels into their consumers (issue 22 item 4, pre-activation ReLU).

Contract
--------
:class:`InlineElementwisePrologues` runs between ``FuseOps`` and ``FuseTIR``. Where a kernel
``y = call_tir(f, (x,))`` is *cheap elementwise* (``op_pattern`` 0, one input of ``y``'s shape
and dtype, its one block storing only loads, max/min, casts and constants: ReLU, ReLU6,
clip) and every use of ``y`` is one argument of a call to a fused (primitive) function or of a
plain ``call_tir`` in the same dataflow block (other than a pure concatenate, which zero-copy
concatenation can remove: :mod:`tvm_sched.relax.concat`), each such consumer becomes a new primitive
function that takes ``x`` and computes ``f`` first; ``FuseTIR`` then makes the two one kernel
and ``y`` is never written to memory. The producer's output is then read by every consumer
through ``max(x, 0)``, which MetaSchedule's inlining rule folds into the consumer's loads.

Why: TVM's ``FuseOps`` fuses elementwise ops only after a reduction (an epilogue), never before
one. A network with pre-activation ReLUs (NASNet, DARTS: ``relu -> conv`` on a tensor that is
also used without the ReLU) therefore runs each ReLU as a kernel of its own that reads and
writes the whole tensor: on the tuned bench NASNet, 42% of the one-thread kernel time. Inlined,
the ReLU costs one ``max`` per load in its consumers and no memory traffic.

Outputs are bit-identical (the same ``max`` on the same values). Consumers share new functions:
one per (consumer function, argument position, elementwise function).
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax, s_tir, tirx

from tvm_sched.relax.concat import concat_layout

__all__ = ["InlineElementwisePrologues", "is_cheap_elementwise"]

def is_cheap_elementwise(func) -> bool:
    """Whether ``func`` is a one-input elementwise PrimFunc of loads, max/min, casts, constants.

    Parameters
    ----------
    func
        Any function of a module.

    Returns
    -------
    bool
        True for ReLU-like kernels (``op_pattern`` 0, two buffers, one store whose value has
        nothing but loads, ``max``/``min``, casts and constants).
    """
    if not isinstance(func, tirx.PrimFunc) or func.attrs is None:
        return False
    if int(dict(func.attrs).get("op_pattern", -1)) != 0 or len(func.params) != 2:
        return False
    stores = _stores(func.body)
    return stores is not None and len(stores) == 1 and _cheap(stores[0].value)


def _stores(stmt) -> list | None:
    """The BufferStores of a loop nest of blocks, or None when ``stmt`` holds anything else.

    TVM 0.27 has no Python TIR visitor (``tirx.stmt_functor`` is gone), so this walks the few
    statement kinds an elementwise kernel is made of and gives up on any other.
    """
    if isinstance(stmt, s_tir.stmt.SBlockRealize):
        return _stores(stmt.block)
    if isinstance(stmt, s_tir.stmt.SBlock):
        if stmt.init is not None or len(stmt.alloc_buffers) or len(stmt.match_buffers):
            return None
        return _stores(stmt.body)
    if isinstance(stmt, tirx.For):
        return _stores(stmt.body)
    if isinstance(stmt, tirx.SeqStmt):
        found = []
        for s in stmt.seq:
            inner = _stores(s)
            if inner is None:
                return None
            found += inner
        return found
    if isinstance(stmt, tirx.BufferStore):
        return [stmt]
    return None


def _cheap(expr) -> bool:
    """Whether ``expr`` is made of loads, max/min, casts, variables and constants only."""
    if isinstance(expr, (tvm.ir.TensorLoad, tirx.FloatImm, tirx.IntImm, tirx.Var)):
        return True
    if isinstance(expr, (tirx.Max, tirx.Min)):
        return _cheap(expr.a) and _cheap(expr.b)
    if isinstance(expr, tirx.Cast):
        return _cheap(expr.value)
    return False


def _call_tir_parts(call: relax.Call):
    """(PrimFunc GlobalVar, argument list) of a plain two-argument ``call_tir``, else None."""
    if not (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.call_tir"):
        return None
    if len(call.args) != 2 or not isinstance(call.args[1], relax.Tuple):
        return None
    return call.args[0], list(call.args[1].fields)


class _Rewriter:
    """Rewrites one module; holds the new primitive functions, shared between call sites."""

    def __init__(self, mod: tvm.IRModule):
        self.mod = mod
        self.bb = relax.BlockBuilder(mod)
        self.made: dict[tuple, relax.GlobalVar] = {}
        self.new: dict[relax.GlobalVar, relax.Function] = {}

    def function(self, gv: relax.GlobalVar):
        """The function of ``gv``, made here or in the module."""
        return self.new[gv] if gv in self.new else self.mod[gv]

    def _add(self, fn: relax.Function, name: str) -> relax.GlobalVar:
        gv = self.bb.add_func(fn, name)
        self.new[gv] = fn
        return gv

    def _primitive(self, callee) -> bool:
        if not isinstance(callee, relax.GlobalVar):
            return False
        fn = self.function(callee)
        return (isinstance(fn, relax.Function) and fn.attrs is not None
                and bool(dict(fn.attrs).get("Primitive", 0)))

    def consumer_slot(self, value, y) -> int | None:
        """The one argument position of ``y`` in a rewritable consumer ``value``, else None."""
        if not isinstance(value, relax.Call):
            return None
        parts = _call_tir_parts(value)
        args = parts[1] if parts is not None else list(value.args)
        if parts is None and not self._primitive(value.op):
            return None
        if parts is not None and concat_layout(self.function(parts[0])) is not None:
            return None  # a pure concatenate that can vanish (zero-copy) stays one
        slots = [k for k, a in enumerate(args) if a.same_as(y)]
        if len(slots) != 1 or any(not isinstance(a, (relax.Var, tvm.ir.expr.Constant))
                                  for a in args):
            return None
        return slots[0]

    def _fused_with(self, callee, slot: int, elem, x_ty) -> relax.GlobalVar:
        fn = self.function(callee)
        params = list(fn.params)
        x = relax.Var("x", x_ty)
        first = relax.VarBinding(params[slot], relax.call_tir(elem, relax.Tuple([x]),
                                                              params[slot].ty))
        blocks = list(fn.body.blocks)
        blocks[0] = relax.DataflowBlock([first, *blocks[0].bindings])
        params[slot] = x
        new = relax.Function(params, relax.SeqExpr(blocks, fn.body.body), fn.ret_ty,
                             fn.is_pure, fn.attrs)
        return self._add(new, f"fused_{elem.name_hint}_{callee.name_hint.removeprefix('fused_')}")

    def _wrapped(self, call: relax.Call, slot: int, elem, x_ty) -> relax.GlobalVar:
        prim, args = _call_tir_parts(call)
        params = [relax.Var(f"a{k}", a.ty) for k, a in enumerate(args)]
        y = relax.DataflowVar("y", params[slot].ty)
        out = relax.Var("out", call.ty)
        params[slot] = relax.Var("x", x_ty)
        inner = [y if k == slot else p for k, p in enumerate(params)]
        block = relax.DataflowBlock([
            relax.VarBinding(y, relax.call_tir(elem, relax.Tuple([params[slot]]), y.ty)),
            relax.VarBinding(out, relax.Call(call.op, [prim, relax.Tuple(inner)], call.attrs,
                                             call.ty_args))])
        new = relax.Function(params, relax.SeqExpr([block], out), call.ty, True,
                             tvm.ir.make_node("ir.DictAttrs", Primitive=True))
        return self._add(new, f"fused_{elem.name_hint}_{prim.name_hint}")

    def rewrite(self, value: relax.Call, slot: int, elem, x) -> relax.Call:
        """``value`` with its ``slot`` argument computed from ``x`` inside the callee.

        Parameters
        ----------
        value
            A consumer call (:meth:`consumer_slot` gave ``slot``).
        slot
            The argument position of the elementwise kernel's output.
        elem
            The elementwise PrimFunc's GlobalVar.
        x
            The elementwise kernel's input.

        Returns
        -------
        relax.Call
            A call of a primitive function that computes ``elem`` on ``x`` and then what
            ``value`` computes.
        """
        parts = _call_tir_parts(value)
        callee = parts[0] if parts is not None else value.op
        key = (callee, slot, elem)
        if key not in self.made:
            self.made[key] = (self._wrapped(value, slot, elem, x.ty) if parts is not None
                              else self._fused_with(callee, slot, elem, x.ty))
        args = list(value.args) if parts is None else list(parts[1])
        args[slot] = x
        return relax.Call(self.made[key], args)

    def block(self, block: relax.DataflowBlock, elsewhere: set) -> relax.DataflowBlock:
        """``block`` with every inlinable elementwise kernel moved into its consumers.

        Parameters
        ----------
        block
            A dataflow block of a non-primitive function.
        elsewhere
            Variables used outside ``block`` (their kernels stay).

        Returns
        -------
        relax.DataflowBlock
            The rewritten block (the same object when nothing changed).
        """
        bindings = list(block.bindings)
        values = [b.value for b in bindings]
        uses: dict = {}
        for k, b in enumerate(bindings):
            for v in relax.analysis.free_vars(b.value):
                uses.setdefault(v, []).append(k)
        dropped = set()
        for k, b in enumerate(bindings):
            parts = _call_tir_parts(values[k]) if isinstance(values[k], relax.Call) else None
            if (parts is None or len(parts[1]) != 1 or not isinstance(parts[1][0], relax.Var)
                    or b.var in elsewhere or not uses.get(b.var)
                    or not is_cheap_elementwise(self.function(parts[0]))
                    or not tvm_ffi.structural_equal(parts[1][0].ty, b.var.ty)):
                continue
            slots = [self.consumer_slot(values[j], b.var) for j in uses[b.var]]
            if any(s is None for s in slots):
                continue
            for j, s in zip(uses[b.var], slots, strict=True):
                values[j] = self.rewrite(values[j], s, parts[0], parts[1][0])
            dropped.add(k)
        if not dropped:
            return block
        return relax.DataflowBlock([relax.VarBinding(b.var, values[k])
                                    for k, b in enumerate(bindings) if k not in dropped])


def _used(expr_or_block) -> set:
    if isinstance(expr_or_block, relax.BindingBlock):
        return {v for b in expr_or_block.bindings for v in relax.analysis.free_vars(b.value)}
    return set(relax.analysis.free_vars(expr_or_block))


@tvm.transform.module_pass(opt_level=0, name="InlineElementwisePrologues")
class InlineElementwisePrologues:
    """Move cheap elementwise kernels into their consumers (run between FuseOps and FuseTIR).

    See the module docstring for which kernels and consumers qualify.
    """

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext
                         ) -> tvm.IRModule:
        """Rewrite every non-primitive Relax function of ``mod``.

        Parameters
        ----------
        mod, ctx
            As TVM's module passes receive them.

        Returns
        -------
        tvm.IRModule
            ``mod`` with the new primitive functions added and the consumers calling them
            (``FuseTIR`` makes each one kernel; ``DeadCodeElimination`` drops what is left
            unused).
        """
        rw = _Rewriter(mod)
        changed = {}
        for gv, fn in mod.functions.items():
            if (not isinstance(fn, relax.Function) or not isinstance(fn.body, relax.SeqExpr)
                    or (fn.attrs is not None and bool(dict(fn.attrs).get("Primitive", 0)))):
                continue
            blocks = list(fn.body.blocks)
            for k, block in enumerate(blocks):
                if not isinstance(block, relax.DataflowBlock):
                    continue
                elsewhere = _used(fn.body.body)
                for j, other in enumerate(blocks):
                    if j != k:
                        elsewhere |= _used(other)
                blocks[k] = rw.block(block, elsewhere)
            if any(a is not b for a, b in zip(blocks, fn.body.blocks, strict=True)):
                changed[gv] = relax.Function(fn.params, relax.SeqExpr(blocks, fn.body.body),
                                             fn.ret_ty, fn.is_pure, fn.attrs)
        if not changed:
            return mod
        for gv, fn in changed.items():
            rw.bb.update_func(gv, fn)
        return rw.bb.get()
