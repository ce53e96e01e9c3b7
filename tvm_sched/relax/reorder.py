"""Rewrite dataflow blocks into a schedule's order: ``apply_order``, ``ReorderBindings`` pass.

Analysis first, rewrite second: the order is checked against the block's graph (an order that is
not topological is rejected with an error naming the binding and its input), then the block's
bindings are re-emitted with the compute bindings in the new order. Bindings that are not
operators (tuples, tuple-get-items, aliases) follow their inputs: each is emitted as soon as
everything it reads is, in its original relative order. The new function is normalised with
``relax.BlockBuilder().normalize``. Everything after ``FuseOps`` keeps binding order down to the
VM bytecode, so the order written here is the order the VM runs the kernels in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tvm
from tvm import relax

from tvm_sched.errors import ExtractionError, InvalidScheduleError
from tvm_sched.graph import OpGraph
from tvm_sched.relax.extract import block_info
from tvm_sched.schedule import Schedule

__all__ = ["apply_order", "apply", "ReorderBindings", "binding_order"]


def _block_deps(block: relax.DataflowBlock) -> list[set[int]]:
    pos = {b.var: i for i, b in enumerate(block.bindings)}
    deps = []
    for b in block.bindings:
        used = relax.analysis.free_vars(b.value)
        deps.append({pos[v] for v in used if v in pos})
    return deps


def binding_order(block: relax.DataflowBlock, node_positions: Sequence[int]) -> list[int]:
    """The full binding order when the compute bindings run in ``node_positions`` order.

    Parameters
    ----------
    block
        The dataflow block.
    node_positions
        Binding positions of the compute bindings, in the order they should run.

    Returns
    -------
    list of int
        A permutation of the block's binding positions; the other bindings follow their inputs.

    Raises
    ------
    InvalidScheduleError
        ``node_positions`` repeats a position, or a binding would come before a binding it reads
        (names both).
    """
    bindings = block.bindings
    deps = _block_deps(block)
    nodes = set(node_positions)
    if len(nodes) != len(node_positions):
        raise InvalidScheduleError("the order repeats a binding")
    emitted: set[int] = set()
    out: list[int] = []
    pending = [i for i in range(len(bindings)) if i not in nodes]

    def flush() -> None:
        progress = True
        while progress:
            progress = False
            for i in list(pending):
                if deps[i] <= emitted:
                    pending.remove(i)
                    emitted.add(i)
                    out.append(i)
                    progress = True

    flush()
    for p in node_positions:
        missing = deps[p] - emitted
        if missing:
            q = min(missing)
            raise InvalidScheduleError(
                f"binding {p} ({bindings[p].var.name}) would run before its input "
                f"{bindings[q].var.name} (binding {q})"
            )
        emitted.add(p)
        out.append(p)
        flush()
    if pending:
        i = pending[0]
        raise InvalidScheduleError(f"binding {i} ({bindings[i].var.name}) could not be placed")
    return out


def _replace_block(func: relax.Function, b: int, new_block: relax.DataflowBlock) -> relax.Function:
    body = func.body
    blocks = list(body.blocks)
    blocks[b] = new_block
    seq = relax.SeqExpr(blocks, body.body)
    new = relax.Function(func.params, seq, func.ret_ty, func.is_pure, func.attrs)
    return relax.BlockBuilder().normalize(new)


def _with_funcs(mod: tvm.IRModule, funcs: Mapping[str, relax.Function]) -> tvm.IRModule:
    new = {gv: (funcs.get(gv.name_hint, f)) for gv, f in mod.functions.items()}
    return tvm.IRModule(new, attrs=mod.attrs, global_infos=mod.global_infos)


def apply_order(mod: tvm.IRModule, graph: OpGraph, order: Sequence[int] | Schedule
                ) -> tvm.IRModule:
    """A copy of ``mod`` whose block (the one ``graph`` was extracted from) runs in ``order``.

    Parameters
    ----------
    mod
        The module ``graph`` was extracted from.
    graph
        An extracted graph (:func:`tvm_sched.relax.extract`).
    order
        A node order of ``graph``, or a schedule holding one.

    Returns
    -------
    tvm.IRModule
        ``mod`` itself when the block is already in that order, else a new module.

    Raises
    ------
    InvalidScheduleError
        ``order`` is not a topological order of ``graph`` (the message names the bindings).
    ExtractionError
        ``graph`` does not match the module (other function or block size).
    """
    sched = order if isinstance(order, Schedule) else Schedule(order=tuple(order))
    sched.validate(graph)
    return apply(mod, [(graph, sched)])


def apply(mod: tvm.IRModule, schedules: Sequence[tuple[OpGraph, Schedule | Sequence[int]]]
          ) -> tvm.IRModule:
    """Rewrite several blocks at once: each (graph, schedule) pair names its block.

    Parameters
    ----------
    mod
        The module the graphs were extracted from.
    schedules
        (graph, schedule or node order) pairs, at most one per block.

    Returns
    -------
    tvm.IRModule
        ``mod`` itself when no block changes, else a new module.

    Raises
    ------
    InvalidScheduleError
        A schedule is not a topological order of its graph.
    ExtractionError
        A graph was not extracted, or does not match the module (other function or block size).
    """
    per_func: dict[str, relax.Function] = {}
    for graph, sched in schedules:
        sched = sched if isinstance(sched, Schedule) else Schedule(order=tuple(sched))
        sched.validate(graph)
        info = block_info(graph)
        func = per_func.get(info.func)
        if func is None:
            try:
                func = mod[info.func]
            except Exception as err:  # noqa: BLE001
                raise ExtractionError(f"the module has no function {info.func!r}") from err
        block = func.body.blocks[info.block]
        if not isinstance(block, relax.DataflowBlock) or len(block.bindings) != info.num_bindings:
            raise ExtractionError(
                f"{info.func} block {info.block} no longer matches the extracted graph "
                f"({len(block.bindings)} bindings, expected {info.num_bindings})"
            )
        node_positions = [info.positions[v] for v in sched.order]
        order = binding_order(block, node_positions)
        if order == list(range(len(block.bindings))):
            continue  # already in this order: leave the block untouched
        new_block = relax.DataflowBlock([block.bindings[i] for i in order])
        per_func[info.func] = _replace_block(func, info.block, new_block)
    if not per_func:
        return mod
    return _with_funcs(mod, per_func)


@tvm.transform.module_pass(opt_level=0, name="tvm_sched.ReorderBindings")
class ReorderBindings:
    """A module pass writing given orders into their blocks.

    Parameters
    ----------
    schedules
        (graph, schedule or order) pairs, graphs from :func:`tvm_sched.relax.extract` on the
        module the pass will run on.
    """

    def __init__(self, schedules: Sequence[tuple[OpGraph, Schedule | Sequence[int]]]):
        self.schedules = list(schedules)

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        """Write the orders into ``mod`` (see :func:`apply`).

        Parameters
        ----------
        mod
            The module the graphs were extracted from.
        ctx
            The pass context (unused).

        Returns
        -------
        tvm.IRModule
            The rewritten module (``mod`` when nothing changes).

        Raises
        ------
        InvalidScheduleError, ExtractionError
            As :func:`apply`.
        """
        return apply(mod, self.schedules)


def node_order(mod: tvm.IRModule, graph: OpGraph, other: tvm.IRModule) -> list[int] | None:
    """The order in which ``other`` (``mod`` rewritten by some pass) runs ``graph``'s nodes.

    Nodes are matched by their binding variables, so this reads the order of any pass that only
    permutes bindings (``relax.transform.TopologicalSort``, for one). ``None`` when the pass did
    more than that (a node's binding is missing).

    Parameters
    ----------
    mod
        The module ``graph`` was extracted from.
    graph
        An extracted graph.
    other
        ``mod`` after a pass.

    Returns
    -------
    list of int or None
        The node order of the block in ``other``, or ``None``.

    Raises
    ------
    ExtractionError
        ``graph`` was not extracted from a Relax module.
    """
    info = block_info(graph)
    block = mod[info.func].body.blocks[info.block]
    node_of = {block.bindings[p].var: v for v, p in enumerate(info.positions)}
    try:
        new = other[info.func].body.blocks[info.block]
    except (IndexError, KeyError, AttributeError):
        return None
    order = [node_of[b.var] for b in getattr(new, "bindings", ()) if b.var in node_of]
    return order if sorted(order) == list(range(graph.num_nodes)) else None
