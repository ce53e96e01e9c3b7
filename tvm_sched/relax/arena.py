"""``PlanArena``: make TVM allocate one arena with offsets instead of its storage tokens.

TVM's ``StaticPlanBlockMemory`` gives every reusable tensor a whole *storage token*
(``R.memory.alloc_storage``) and reuses tokens greedily; it allocates 1.1-2.4x the liveness
peak of the same order. This pass runs right after it (see :func:`arena_pipeline`) and, per
Relax function, replaces the planned storages of constant size by one storage -- the arena --
with every tensor at the offset :func:`tvm_sched.memory.pack` gives it.

Analysis (on the planned function, whose bindings run in program order):

- the tensors are the ``R.memory.alloc_tensor`` bindings on storages of constant size; each is
  live from its binding to the last binding that uses it or any alias of it (a variable bound
  to an expression that mentions it, other than a kernel call: views, tuples, get-items and
  plain aliases all count, conservatively);
- two tensors conflict when their live ranges overlap (inclusive), exactly as in
  :func:`tvm_sched.memory.plan_arena` with sequential execution, so the packing here equals the
  plan of the extracted graph in the same order;
- a storage whose size is symbolic, or a function whose body is not a flat sequence of binding
  blocks (control flow), keeps TVM's plan, with a warning that names the binding/function.

Zero-copy concatenation (``zero_copy_concat=True``, the default): a call of a pure
concatenate kernel (:func:`tvm_sched.relax.concat.concat_layout`) whose output and inputs are
distinct tensors of the arena, each input written by an earlier kernel call and then only read
(no call of a kernel the module calls in place, no packed call, no view of it), is removed:
the output and its inputs are planned as one tensor, live from the first of their bindings to
the last use of any of them, and each input is allocated at its slice of the output. As in the
lane runtime, the concatenates are taken in program order, each kept when the greedy packing
does not grow with it, and all of them dropped when the final arena would be larger than the
copying one. The names of the kernels called in place are read before lowering by the first
pass of :func:`arena_pipeline`; without it (``PlanArena`` used on its own) nothing is removed.

Rewrite: one ``alloc_storage`` of the arena size where the first planned storage was bound;
each tensor becomes ``alloc_tensor(arena, offset, ...)`` followed by
``R.memory.ensure_zero_offset`` -- TVM 0.27's default kernels reject a tensor whose
``byte_offset`` is not 0, and that builtin turns a 64-byte-aligned offset into an advanced data
pointer on CPU and CUDA (no copy). The rewrite is kept only when the arena is smaller than the
storages it replaces, so the pass never allocates more than TVM's plan.

:func:`allocated_bytes` reads back what a pipeline really allocates: the sum of the
``alloc_storage`` sizes of the lowered module.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.relax.op import memory as memory_ops

from tvm_sched.memory import ALIGN, pack
from tvm_sched.relax.concat import concat_layout

__all__ = ["PlanArena", "arena_pipeline", "allocated_bytes", "planned_storage", "ArenaReport"]

log = logging.getLogger(__name__)

_ALLOC_STORAGE = "relax.memory.alloc_storage"
_ALLOC_TENSOR = "relax.memory.alloc_tensor"
_KILL = ("relax.memory.kill_tensor", "relax.memory.kill_storage")


def _op_name(value) -> str | None:
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
        return value.op.name
    return None


def _const_shape(expr) -> list[int] | None:
    if not isinstance(expr, relax.ShapeExpr):
        return None
    out = []
    for d in expr.values:
        if not isinstance(d, tvm.tirx.IntImm):
            return None
        out.append(int(d))
    return out


def _const_int(expr) -> int | None:
    value = getattr(expr, "value", None)
    if isinstance(expr, tvm.tirx.IntImm):
        return int(value)
    if isinstance(value, tvm.tirx.IntImm):  # an integer wrapped in a Relax value
        return int(value.value)
    return None


@dataclass
class ArenaReport:
    """What :class:`PlanArena` did to one function."""

    func: str
    storages: int = 0  # planned storages of constant size found
    tensors: int = 0  # tensors placed on them
    tvm_bytes: int = 0  # their total size in TVM's plan
    arena_bytes: int = 0  # the arena (0 when not rewritten)
    lower_bound: int = 0  # liveness peak of the tensors in program order (aligned)
    proven: bool = False
    rewritten: bool = False
    kept: list[str] = field(default_factory=list)  # bindings left on TVM's plan, and why
    concats_removed: int = 0  # concatenate calls that vanished (zero-copy)
    copying_arena_bytes: int = 0  # the arena with every concatenate copying

    def to_dict(self) -> dict[str, Any]:
        """The report as a plain dictionary (for JSON).

        Returns
        -------
        dict
            One entry per field, ``kept`` the report's own list.
        """
        return dict(self.__dict__)


def _flat_bindings(func: relax.Function) -> list | None:
    body = func.body
    if not isinstance(body, relax.SeqExpr):
        return None
    out = []
    for block in body.blocks:
        for b in block.bindings:
            if not isinstance(b, relax.VarBinding):
                return None
            if isinstance(b.value, (relax.If, relax.SeqExpr, relax.Function)):
                return None
            out.append(b)
    return out


def _analyse(name: str, bindings: list) -> tuple[dict, list, list[str], dict]:
    """Storages of constant size, the tensors on them with live ranges, and what is kept."""
    storages: dict = {}  # var -> (position, bytes)
    kept: list[str] = []
    tensors: list[dict] = []  # {"pos", "var", "storage", "bytes", "end"}
    alias_of: dict = {}  # var -> tensor indices it may alias
    for pos, b in enumerate(bindings):
        op = _op_name(b.value)
        if op == _ALLOC_STORAGE:
            shape = _const_shape(b.value.args[0])
            if shape is None:
                kept.append(f"{name}: storage {b.var.name} has a symbolic size")
            else:
                storages[b.var] = (pos, int(np.prod(shape, dtype=np.int64)))
            continue
        if op == _ALLOC_TENSOR:
            st = b.value.args[0]
            shape = _const_shape(b.value.args[2])
            offset = _const_int(b.value.args[1])
            if st in storages and shape is not None and offset == 0:
                dt = tvm.runtime.DataType(str(b.value.args[3].value))
                nbytes = int(np.prod(shape, dtype=np.int64)) * max(1, dt.bits * dt.lanes // 8)
                tensors.append({"pos": pos, "var": b.var, "storage": st, "bytes": nbytes,
                                "end": pos})
                alias_of[b.var] = {len(tensors) - 1}
            elif st in storages:
                kept.append(f"{name}: tensor {b.var.name} on {st.name} is not a constant shape "
                            "at offset 0")
                storages.pop(st)
            continue
        if op in _KILL:
            continue
        used = [v for v in relax.analysis.free_vars(b.value) if v in alias_of]
        if not used:
            continue
        hit = set().union(*(alias_of[v] for v in used))
        for t in hit:
            tensors[t]["end"] = pos
        is_kernel = isinstance(b.value, relax.Call) and isinstance(b.value.op, tvm.ir.GlobalVar)
        if not is_kernel:
            alias_of[b.var] = hit  # views, tuples, get-items, aliases: the same bytes
    # a tensor on a storage dropped above leaves the arena with its storage
    keep = [i for i, t in enumerate(tensors) if t["storage"] in storages]
    new_index = {i: k for k, i in enumerate(keep)}
    alias_of = {v: {new_index[i] for i in s if i in new_index} for v, s in alias_of.items()}
    return storages, [tensors[i] for i in keep], kept, alias_of


_VIEW_OPS = ("relax.reshape", "relax.memory.view", "relax.memory.ensure_zero_offset")


def _concat_groups(bindings: list, tensors: list, alias_of: dict, layouts: dict,
                   inplace: set) -> list[dict]:
    """The concatenate calls that can vanish (see the module docstring): per call its binding
    position, output tensor and ``(input tensor, byte offset)`` pairs."""
    first: dict[int, int] = {}  # tensor -> position of the first kernel call using it
    bad: set[int] = set()  # inputs left alone: maybe written again, kept or viewed
    for pos, b in enumerate(bindings):
        value = b.value
        op = _op_name(value)
        if op in (_ALLOC_STORAGE, _ALLOC_TENSOR) or op in _KILL or isinstance(value, relax.Var):
            continue
        used = [v for v in relax.analysis.free_vars(value) if v in alias_of]
        if not used:
            continue
        hit = set().union(*(alias_of[v] for v in used))
        if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar):
            for t in hit:
                if t not in first:
                    first[t] = pos
                elif value.op.name_hint in inplace:
                    bad.add(t)
        elif isinstance(value, relax.Call):
            bad.update(hit)  # a view, a packed or another call
    groups: list[dict] = []
    taken: set[int] = set()
    for pos, b in enumerate(bindings):
        value = b.value
        if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar)):
            continue
        layout = layouts.get(value.op.name_hint)
        if layout is None or len(value.args) != len(layout.offsets) + 1:
            continue
        ids = []
        for a in value.args:
            s = alias_of.get(a) if isinstance(a, relax.Var) else None
            if not s or len(s) != 1:
                break
            ids.append(next(iter(s)))
        if len(ids) != len(value.args) or len(set(ids)) != len(ids):
            continue
        *ins, out = ids
        if any(t in taken or t in bad for t in ins) or out in taken or first.get(out) != pos:
            continue
        if any(first.get(t, pos) >= pos for t in ins):
            continue  # an input no kernel wrote before the concatenate
        if tensors[out]["bytes"] != layout.nbytes or any(
                tensors[t]["bytes"] != sz for t, sz in zip(ins, layout.sizes, strict=True)):
            continue
        groups.append({"pos": pos, "out": out,
                       "inputs": list(zip(ins, layout.offsets, strict=True))})
        taken.update(ids)
    return groups


def _pack_groups(tensors: list, groups: list[dict], num_bindings: int, method: str,
                 budget: float | None, align: int) -> tuple[np.ndarray, int, bool, int]:
    """Pack the tensors with each group's members as one tensor (its output's size, live over
    all of theirs); per tensor its offset, the arena bytes, proven optimal, the lower bound."""
    unit = list(range(len(tensors)))
    delta = [0] * len(tensors)
    for g in groups:
        for t, off in g["inputs"]:
            unit[t], delta[t] = g["out"], off
    roots = sorted(set(unit))
    at = {r: k for k, r in enumerate(roots)}
    start = np.array([tensors[r]["pos"] for r in roots], dtype=np.int64)
    end = np.array([tensors[r]["end"] for r in roots], dtype=np.int64)
    for t, r in enumerate(unit):
        k = at[r]
        start[k] = min(start[k], tensors[t]["pos"])
        end[k] = max(end[k], tensors[t]["end"])
    sizes = -(-np.array([tensors[r]["bytes"] for r in roots], dtype=np.int64) // align) * align
    conf = (start[:, None] <= end[None, :]) & (start[None, :] <= end[:, None])
    live = np.zeros(num_bindings + 1, dtype=np.int64)
    np.add.at(live, start, sizes)
    np.subtract.at(live, end + 1, sizes)
    lower = int(np.cumsum(live).max())
    offs, arena, proven = pack(sizes, conf, align=align, method=method, budget=budget,
                               lower=lower)
    offsets = np.array([int(offs[at[r]]) + d for r, d in zip(unit, delta, strict=True)],
                       dtype=np.int64)
    return offsets, int(arena), bool(proven), lower


def _choose_groups(tensors: list, groups: list[dict], num_bindings: int, align: int) -> list:
    """The groups, in program order, whose merging does not grow the greedy packing."""
    best = _pack_groups(tensors, [], num_bindings, "greedy", None, align)[1]
    chosen: list[dict] = []
    for g in groups:
        trial = _pack_groups(tensors, [*chosen, g], num_bindings, "greedy", None, align)[1]
        if trial <= best:
            chosen.append(g)
            best = trial
    return chosen


def _rewrite(func: relax.Function, name: str, method: str, budget: float | None,
             align: int, layouts: dict | None = None,
             inplace: set | None = None) -> tuple[relax.Function, ArenaReport]:
    report = ArenaReport(name)
    bindings = _flat_bindings(func)
    if bindings is None:
        report.kept.append(f"{name}: not a flat sequence of bindings (control flow)")
        return func, report
    storages, tensors, kept, alias_of = _analyse(name, bindings)
    report.kept.extend(kept)
    used = {t["storage"] for t in tensors}
    storages = {v: s for v, s in storages.items() if v in used}
    report.storages, report.tensors = len(storages), len(tensors)
    report.tvm_bytes = int(sum(s for _, s in storages.values()))
    if not tensors:
        return func, report
    n = len(bindings)
    offsets, arena, proven, report.lower_bound = _pack_groups(tensors, [], n, method, budget,
                                                              align)
    report.copying_arena_bytes = arena
    groups = []
    if layouts and inplace is not None:
        groups = _choose_groups(tensors, _concat_groups(bindings, tensors, alias_of, layouts,
                                                        inplace), n, align)
    if groups:
        z_offsets, z_arena, z_proven, z_lower = _pack_groups(tensors, groups, n, method,
                                                             budget, align)
        if z_arena <= arena:
            offsets, arena, proven, report.lower_bound = z_offsets, z_arena, z_proven, z_lower
            report.concats_removed = len(groups)
        else:
            groups = []
    report.arena_bytes, report.proven = int(arena), bool(proven)
    if arena >= report.tvm_bytes:
        log.info("%s: arena %d B is not below TVM's %d B; TVM's plan kept", name, arena,
                 report.tvm_bytes)
        return func, report
    first = min(p for p, _ in storages.values())
    proto = bindings[first].value
    arena_call = memory_ops.alloc_storage(relax.ShapeExpr([arena]), proto.args[1],
                                          proto.args[2], "uint8")
    arena_var = relax.Var("tvm_sched_arena", bindings[first].var.ty)
    offset_of = {t["var"]: int(o) for t, o in zip(tensors, offsets.tolist(), strict=True)}
    removed = {g["pos"] for g in groups}
    new_bindings = []
    for pos, b in enumerate(bindings):
        if pos == first:
            new_bindings.append(relax.VarBinding(arena_var, arena_call))
        if pos in removed:
            continue  # a concatenate whose inputs were written in place
        if b.var in storages:
            continue  # replaced by the arena
        if b.var in offset_of:
            v = b.value
            off = offset_of[b.var]
            alloc = memory_ops.alloc_tensor(arena_var, off, *v.args[2:])
            if off == 0:
                new_bindings.append(relax.VarBinding(b.var, alloc))
            else:
                raw = relax.Var(f"{b.var.name}_at", b.var.ty)
                new_bindings.append(relax.VarBinding(raw, alloc))
                new_bindings.append(relax.VarBinding(b.var, memory_ops.ensure_zero_offset(raw)))
            continue
        if _op_name(b.value) == "relax.memory.kill_storage" and b.value.args[0] in storages:
            continue
        new_bindings.append(b)
    seq = relax.SeqExpr([relax.BindingBlock(new_bindings)], func.body.body)
    new = relax.Function(func.params, seq, func.ret_ty, func.is_pure, func.attrs)
    report.rewritten = True
    return new, report


@tvm.transform.module_pass(opt_level=0, name="tvm_sched.PlanArena")
class PlanArena:
    """Replace TVM's storage tokens by one arena per function (see the module docstring).

    Run it right after ``relax.transform.StaticPlanBlockMemory`` (before ``LowerAllocTensor``);
    :func:`arena_pipeline` does. ``report`` lists an :class:`ArenaReport` per function.

    Parameters
    ----------
    method
        Packing: ``"greedy"``, ``"exact"`` or ``"auto"`` (see :func:`tvm_sched.memory.pack`).
    budget
        Seconds for the exact packing per function.
    align
        Offset alignment in bytes (at least 64: ``ensure_zero_offset`` needs it).

    Raises
    ------
    ValueError
        When ``align`` is not a multiple of 64 or ``method`` is not one of the three.
    """

    def __init__(self, method: str = "auto", budget: float | None = 1.0, align: int = ALIGN,
                 zero_copy_concat: bool = True):
        if align < ALIGN or align % ALIGN:
            raise ValueError(f"align must be a multiple of {ALIGN}, got {align!r}")
        if method not in ("greedy", "exact", "auto"):
            raise ValueError(f"method must be 'greedy', 'exact' or 'auto', got {method!r}")
        self.method, self.budget, self.align = method, budget, align
        self.zero_copy_concat = bool(zero_copy_concat)
        #: Names of the kernels some function calls in place (set by the first pass of
        #: :func:`arena_pipeline`; ``None``: unknown, no concatenate is removed).
        self.inplace_kernels: set[str] | None = None
        self.report: list[ArenaReport] = []

    def note_inplace_kernels(self, names) -> None:
        """Record the names of the kernels the module calls in place (a method, so that it
        reaches the pass object behind TVM's pass wrapper).

        Parameters
        ----------
        names
            The kernels' names (any iterable of strings); they replace the recorded set.
        """
        self.inplace_kernels = set(names)

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        """Rewrite every Relax function of ``mod`` whose arena beats TVM's plan.

        Refills ``report`` and warns once per binding or function left on TVM's plan.

        Parameters
        ----------
        mod
            A module planned by ``StaticPlanBlockMemory``.
        ctx
            The pass context (unused).

        Returns
        -------
        tvm.IRModule
            ``mod`` itself when no function was rewritten, else a new module.
        """
        self.report = []
        updates = {}
        layouts = {}
        if self.zero_copy_concat:
            for gv, func in mod.functions.items():
                layout = concat_layout(func) if isinstance(func, tvm.tirx.PrimFunc) else None
                if layout is not None:
                    layouts[gv.name_hint] = layout
        for gv, func in mod.functions.items():
            if not isinstance(func, relax.Function):
                continue
            new, rep = _rewrite(func, gv.name_hint, self.method, self.budget, self.align,
                                layouts, self.inplace_kernels)
            self.report.append(rep)
            for why in rep.kept:
                warnings.warn(f"PlanArena keeps TVM's plan for {why}", stacklevel=2)
            if rep.rewritten:
                updates[gv] = relax.BlockBuilder().normalize(new)
        if not updates:
            return mod
        funcs = {gv: updates.get(gv, f) for gv, f in mod.functions.items()}
        return tvm.IRModule(funcs, attrs=mod.attrs, global_infos=mod.global_infos)


def _record_inplace_kernels(arena: PlanArena) -> tvm.transform.Pass:
    """A pass that changes nothing and tells ``arena`` which kernels are called in place."""

    @tvm.transform.module_pass(opt_level=0, name="tvm_sched.RecordInplaceKernels")
    def record(mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        names: set[str] = set()

        def visit(expr) -> None:
            if _op_name(expr) == "relax.call_tir_inplace" and \
                    isinstance(expr.args[0], tvm.ir.GlobalVar):
                names.add(expr.args[0].name_hint)

        for _, func in mod.functions.items():
            if isinstance(func, relax.Function):
                relax.analysis.post_order_visit(func.body, visit)
        arena.note_inplace_kernels(names)
        return mod

    return record


def arena_pipeline(arena: PlanArena | None = None) -> tvm.transform.Pass:
    """TVM's default build pipeline (0.27) with :class:`PlanArena` after its memory planner
    (and, first, a pass that tells it which kernels are called in place).

    Parameters
    ----------
    arena
        The pass instance to run (keep it to read its ``report``); default a fresh
        ``PlanArena()``.

    Returns
    -------
    tvm.transform.Pass
        A ``Sequential`` named ``"tvm_sched.arena_pipeline"``.
    """
    from tvm.relax import backend, transform

    arena = arena or PlanArena()
    return tvm.transform.Sequential([
        _record_inplace_kernels(arena),
        backend.DispatchSampling(),
        backend.DispatchSortScan(),
        transform.LegalizeOps(),
        transform.RewriteDataflowReshape(),
        transform.ToNonDataflow(),
        transform.RemovePurityChecking(),
        transform.CallTIRRewrite(),
        transform.StaticPlanBlockMemory(),
        arena,
        transform.RewriteCUDAGraph(),
        transform.LowerAllocTensor(),
        transform.KillAfterLastUse(),
        transform.LowerRuntimeBuiltin(),
        transform.ComputePrimValue(),
        transform.VMShapeLower(),
        transform.AttachGlobalSymbol(),
    ], name="tvm_sched.arena_pipeline")


def planned_storage(mod: tvm.IRModule, func: str = "main") -> list[int]:
    """Sizes of the ``alloc_storage`` calls of ``mod[func]`` (a planned or lowered module).

    Symbolic sizes are left out.

    Parameters
    ----------
    mod
        A module after ``StaticPlanBlockMemory`` (``relax.memory``) or lowered (``relax.vm``).
    func
        The function to read.

    Returns
    -------
    list of int
        Bytes per storage call, in post-order of the function body.
    """
    sizes: list[int] = []
    names = ("relax.memory.alloc_storage", "relax.vm.alloc_storage")

    def visit(expr) -> None:
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and \
                expr.op.name in names:
            shape = _const_shape(expr.args[0])
            if shape is not None:
                sizes.append(int(np.prod(shape, dtype=np.int64)))

    relax.analysis.post_order_visit(mod[func].body, visit)
    return sizes


def allocated_bytes(mod: tvm.IRModule, pipeline: tvm.transform.Pass | str = "tvm_sched",
                    func: str = "main") -> int:
    """Bytes of storage the compiled ``mod[func]`` allocates through ``pipeline``.

    Runs the pipeline (no kernel build) and sums the ``alloc_storage`` sizes of the result --
    the storage the VM reserves for intermediates (function outputs are allocated separately
    and not counted). ``pipeline`` is a pass or a registered Relax pipeline name
    (``"tvm_sched"``, ``"default"``).

    Parameters
    ----------
    mod
        The Relax module, before any lowering.
    pipeline
        The pass to run, or the name of a registered Relax pipeline.
    func
        The function whose storage is counted.

    Returns
    -------
    int
        The sum of the constant ``alloc_storage`` sizes (symbolic ones are left out).
    """
    if isinstance(pipeline, str):
        pipeline = relax.get_pipeline(pipeline)
    with tvm.target.Target("llvm"):
        lowered = pipeline(mod)
    return int(sum(planned_storage(lowered, func)))
