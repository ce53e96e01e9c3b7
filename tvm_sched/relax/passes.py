"""The ``ScheduleOperators`` pass and the ``tvm_sched`` compile pipeline.

``ScheduleOperators`` is a module pass: it runs the fusion prefix when the module is not fused
yet, extracts one graph per dataflow block, asks the solvers for candidate orders and writes the
best one back. "Best" is what the build will allocate for the block, scored without rewriting
the module: with the arena planner on (``arena=True``, the ``tvm_sched`` pipeline's setting) the
smaller of the greedy
arena (:func:`tvm_sched.memory.arena_bytes_batch`) and TVM's own plan (the exact replica
:func:`tvm_sched.cost.planned_memory`, equal to :func:`tvm_sched.relax.planned_bytes` of the
rewritten module) -- :class:`~tvm_sched.relax.arena.PlanArena` keeps whichever is smaller --
and with it off TVM's plan alone. The module's own order is always a candidate, kept on ties,
so the pass never makes a block allocate more than it did.

The pass changes the order of bindings and nothing else: a module that is already fused
(including one after ``RewriteDataflowReshape``, whose reshapes are views) is never fused again.

Use it in a ``Sequential`` or through :func:`pipeline`, which also plans the arena:

    ex = tvm.compile(mod, "llvm", relax_pipeline=tvm_sched.relax.pipeline())
    ex = tvm.compile(mod, "llvm", relax_pipeline="tvm_sched")  # registered name, defaults
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import tvm
from tvm import relax

from tvm_sched.cost import make_objective, planned_memory_batch
from tvm_sched.errors import ExtractionError
from tvm_sched.memory import arena_bytes_batch
from tvm_sched.relax.arena import PlanArena, arena_pipeline
from tvm_sched.relax.extract import extract
from tvm_sched.relax.fold import FoldBatchNormIntoWeights
from tvm_sched.relax.inplace import KeepInplaceCallsUnfused
from tvm_sched.relax.prologue import InlineElementwisePrologues
from tvm_sched.relax.reorder import apply
from tvm_sched.schedule import Schedule
from tvm_sched.solvers import get_solver
from tvm_sched.solvers.portfolio import MEMORY_FALLBACKS, propose

__all__ = ["ScheduleOperators", "pipeline", "fusion_prefix", "is_fused"]

log = logging.getLogger(__name__)

_HIGH_LEVEL_OK = {
    "relax.call_tir", "relax.call_tir_inplace", "relax.call_dps_packed", "relax.call_pure_packed",
    "relax.call_builtin_with_ctx", "relax.null_value",
    # views: ``RewriteDataflowReshape`` turns reshape kernels of a fused module into these
    "relax.reshape", "relax.memory.view", "relax.memory.ensure_zero_offset",
}


def fusion_prefix() -> tvm.transform.Pass:
    """Decompose inference-only ops, legalise, annotate, fold, fuse, fuse TIR, eliminate dead
    code (DESIGN.md's prefix): the one prefix of the pass, the tuner and the lane runtime.

    In-place calls, and the calls that read a tensor before an in-place call overwrites it, stay
    unfused (:class:`~tvm_sched.relax.inplace.KeepInplaceCallsUnfused`).

    Returns
    -------
    tvm.transform.Pass
        A fresh ``Sequential`` of the passes.
    """
    return tvm.transform.Sequential([
        # BatchNorm after a convolution with constant weights goes into the weights
        FoldBatchNormIntoWeights(),
        # inference-only ops first: BatchNorm becomes a multiply-add that FuseOps folds into
        # the convolution before it (its epilogue) instead of a kernel of its own
        relax.transform.DecomposeOpsForInference(),
        relax.transform.CanonicalizeBindings(),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        KeepInplaceCallsUnfused(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        # pre-activation ReLUs: computed inside their consumers instead of a pass over memory
        InlineElementwisePrologues(),
        relax.transform.FuseTIR(),
        relax.transform.DeadCodeElimination(),
    ])


def is_fused(mod: tvm.IRModule) -> bool:
    """True when no Relax function calls a high-level operator (everything is lowered to TIR).

    Reshapes count as lowered: after ``RewriteDataflowReshape`` they are views of a fused
    module, and fusing again would turn them back into kernels.

    Looks at the bindings of each function's blocks (normalised Relax has no nested calls), and
    walks the whole expression only for bodies that are not a plain sequence of blocks: a full
    walk visits every constant and shape and was most of the pass's time on large modules.

    Parameters
    ----------
    mod
        Any IRModule; only its Relax functions are read.

    Returns
    -------
    bool
        False as soon as one binding calls an operator that is not a kernel call, a view or a
        memory, builtin or VM operator.
    """

    def high_level(expr) -> bool:
        return (isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op)
                and expr.op.name not in _HIGH_LEVEL_OK
                and not expr.op.name.startswith(("relax.memory.", "relax.builtin.", "relax.vm.")))

    found = False

    def visit(expr) -> None:
        nonlocal found
        found = found or high_level(expr)

    for _, func in mod.functions.items():
        if not isinstance(func, relax.Function):
            continue
        body = func.body
        simple = isinstance(body, relax.SeqExpr) and all(
            not isinstance(b.value, (relax.If, relax.SeqExpr, relax.Function))
            for block in body.blocks for b in block.bindings)
        if simple:
            if any(high_level(b.value) for block in body.blocks for b in block.bindings):
                return False
        else:
            relax.analysis.post_order_visit(body, visit)
            if found:
                return False
    return True


@tvm.transform.module_pass(opt_level=0, name="tvm_sched.ScheduleOperators")
class ScheduleOperators:
    """Reorder every dataflow block of ``func`` to the best of several solvers' orders.

    Parameters
    ----------
    solver
        Main solver name (any registered solver) or a list of names; each proposes candidates.
        The default pairs the least-peak-memory-first greedy with CP-SAT on liveness (within
        ``budget``), whose orders the arena packs at their liveness peak.
    objective
        The objective the solvers optimise: ``"arena_memory"`` (the default with ``arena``),
        ``"planned_memory"`` (the planner replica, the default without), ``"peak_memory"``
        (liveness) or ``"makespan"`` with ``lanes``. A solver that does not handle it proposes
        on ``"planned_memory"`` or ``"peak_memory"`` instead; one that fails is skipped with a
        warning (candidates come from :func:`tvm_sched.solvers.portfolio.propose`, as the
        tuner's do).
    lanes
        Lanes for a makespan objective.
    budget
        Seconds per block and solver.
    baselines
        Orders always tried besides the solvers' (the module's own order is always kept).
    func
        Function to schedule.
    seed
        Seed passed to every solver.
    solver_options
        Configuration of the solvers in ``solver`` (their ``Config`` fields), the same for each.
    select
        ``"planned"``: keep the candidate with the fewest bytes the build allocates (see the
        module docstring; the default); ``"proxy"``: keep the solver's best by the proxy
        objective (no planner call).
    arena
        Score orders by what :class:`~tvm_sched.relax.arena.PlanArena` will allocate; on in
        the ``tvm_sched`` pipeline, which runs it. Off (the default for the pass on its own,
        followed by TVM's default lowering): by TVM's planner alone, so the order never makes
        TVM's own plan larger.
    exact_max_nodes
        ``cpsat`` proposes only for blocks of at most this many operators: on larger ones its
        liveness model rarely beats the greedy within a pass-sized budget, and building the
        model alone takes a second.

    Raises
    ------
    ValueError
        ``select`` is neither ``"planned"`` nor ``"proxy"``, or the objective is unknown or
        does not take ``lanes``.
    UnknownSolverError
        A name in ``solver`` or ``baselines`` is not a registered solver.
    SolverUnavailableError
        One of those solvers needs a package that is not installed.
    ExtractionError
        (When run) the module has no function ``func``.
    """

    def __init__(
        self,
        solver: str | Sequence[str] = ("lpmf", "cpsat"),
        objective: str | None = None,
        lanes: int | None = None,
        budget: float | None = 1.0,
        baselines: Sequence[str] = ("topo-dfs", "topo-bfs", "list"),
        func: str = "main",
        select: str = "planned",
        seed: int = 0,
        solver_options: dict[str, Any] | None = None,
        arena: bool = False,
        exact_max_nodes: int = 300,
    ):
        if select not in ("planned", "proxy"):
            raise ValueError(f"select must be 'planned' or 'proxy', got {select!r}")
        self.solvers = [solver] if isinstance(solver, str) else list(solver)
        for name in [*self.solvers, *baselines]:
            get_solver(name)  # fail early on an unknown name
        if objective is None:
            objective = "arena_memory" if arena else "planned_memory"
        self.objective = make_objective(objective, lanes=lanes)
        self.arena = bool(arena)
        self.budget = budget
        self.baselines = list(baselines)
        self.func = func
        self.select = select
        self.seed = seed
        self.solver_options = dict(solver_options or {})
        self.exact_max_nodes = int(exact_max_nodes)
        #: Per block: (graph name, chosen source, planned bytes before, after).
        self.report: list[dict[str, Any]] = []

    def transform_module(self, mod: tvm.IRModule, ctx: tvm.transform.PassContext) -> tvm.IRModule:
        """Fuse ``mod`` if needed, then reorder each dataflow block of ``func``.

        Refills ``report`` with one entry per block.

        Parameters
        ----------
        mod
            A Relax module, fused or not.
        ctx
            The pass context (unused).

        Returns
        -------
        tvm.IRModule
            The module with the chosen orders written back.

        Raises
        ------
        ExtractionError
            The module has no Relax function ``func``.
        """
        names = [gv.name_hint for gv, f in mod.functions.items() if isinstance(f, relax.Function)]
        if self.func not in names:
            raise ExtractionError(f"ScheduleOperators: the module has no function "
                                  f"{self.func!r} (it has: {', '.join(sorted(names))})")
        if not is_fused(mod):
            mod = fusion_prefix()(mod)
        self.report = []
        for graph in extract(mod, self.func):
            mod = self._schedule_block(mod, graph)
        return mod

    def _candidates(self, graph) -> list[tuple[str, Schedule, float]]:
        # the shared generator (tvm_sched.solvers.portfolio), as the tuner uses it; a
        # fixed-order baseline proposes on liveness when the pass re-scores every order below
        limits = {"cpsat": self.exact_max_nodes}
        solved = propose(graph, self.objective, self.solvers, budget=self.budget, seed=self.seed,
                         options={n: self.solver_options for n in self.solvers},
                         fallbacks=MEMORY_FALLBACKS, max_nodes=limits)
        fixed = propose(graph, "peak_memory" if self.select == "planned" else self.objective,
                        [b for b in self.baselines if b not in self.solvers],
                        budget=self.budget, seed=self.seed, max_nodes=limits)
        return [(p.source, p.schedule, p.value) for p in [*solved, *fixed]]

    def _schedule_block(self, mod: tvm.IRModule, graph) -> tvm.IRModule:
        cands = self._candidates(graph)
        if self.select == "proxy":
            name, sched, _ = min(cands, key=lambda c: c[2])
            self.report.append({"block": graph.meta["name"], "chosen": name})
            return apply(mod, [(graph, sched)])
        # the module's own order first: on a tie it is kept
        names = ["original"] + [c[0] for c in cands]
        orders = np.array([np.arange(graph.num_nodes)] + [c[1].order for c in cands],
                          dtype=np.int64).reshape(len(names), graph.num_nodes)
        _, first = np.unique(orders, axis=0, return_index=True)
        keep = np.sort(first)  # the first occurrence of each order; the original stays first
        names = [names[i] for i in keep]
        orders = orders[keep]
        planned = planned_memory_batch(graph, orders)
        score = np.minimum(planned, arena_bytes_batch(graph, orders)) if self.arena else planned
        k = int(np.argmin(score))
        self.report.append({"block": graph.meta["name"], "chosen": names[k],
                            "planned_before": int(planned[0]), "planned_after": int(planned[k]),
                            "allocated_before": int(score[0]), "allocated_after": int(score[k]),
                            "candidates": len(names)})
        log.info("%s: %s order, allocated bytes %d -> %d", graph.meta["name"], names[k],
                 score[0], score[k])
        if k == 0:
            return mod
        return apply(mod, [(graph, Schedule(order=tuple(orders[k].tolist())))])


def pipeline(**options: Any) -> tvm.transform.Pass:
    """``ScheduleOperators(**options)`` followed by TVM's default build pipeline, with
    :class:`~tvm_sched.relax.arena.PlanArena` after its memory planner (``arena=False``: TVM's
    default pipeline unchanged).

    Pass it as ``tvm.compile(mod, target, relax_pipeline=pipeline(...))``.

    Parameters
    ----------
    **options
        Keyword arguments of :class:`ScheduleOperators`; ``arena`` defaults to true here.
        ``zero_copy_concat`` (default true) goes to :class:`~tvm_sched.relax.arena.PlanArena`:
        ``False`` keeps every concatenate copying.

    Returns
    -------
    tvm.transform.Pass
        A ``Sequential`` named ``"tvm_sched.pipeline"``.

    Raises
    ------
    ValueError, UnknownSolverError, SolverUnavailableError
        As :class:`ScheduleOperators` does for bad options.
    """
    options = {"arena": True, **options}
    zero_copy = bool(options.pop("zero_copy_concat", True))
    lower = arena_pipeline(PlanArena(zero_copy_concat=zero_copy)) if options["arena"] else \
        relax.get_pipeline("default")
    return tvm.transform.Sequential([ScheduleOperators(**options), lower],
                                    name="tvm_sched.pipeline")


def _register() -> None:
    from tvm.relax import pipeline as tvm_pipeline

    if "tvm_sched" not in tvm_pipeline.PIPELINE_MAP:
        tvm_pipeline.register_pipeline("tvm_sched")(pipeline)


_register()
