"""Storage planning: one arena with byte offsets for the intermediate tensors of a block.

A layer of its own between ``graph`` and ``cost``: the cost layer uses the arena planner as the
exact evaluator of the ``arena_memory`` objective, the Relax integration writes its offsets into
the module, and the lane runtime plans an arena that is safe under concurrency with it. Pure
numpy; no TVM (OR-Tools only for the exact packing, imported lazily).

Where each memory concept lives, and why
----------------------------------------
- **What the planner sees** (:mod:`tvm_sched.memory.planner`): :class:`PlannerMeta` reads the
  extraction's ``graph.meta["planner"]`` (kinds, output tensors with bytes, dtype and whether
  they are planned, reads through views and tuples, merged tensors) into typed data, or the
  one-tensor-per-node default for other graphs. The one reader, here because both the replica
  and the arena (and through them the cost layer) must count the same tensors.
- **Liveness peak** (:mod:`tvm_sched.cost.memory`, objective ``peak_memory``): bytes live at
  the worst step of an order, one ``out_bytes`` tensor per node. A model of memory, not an
  allocation: the cheap, smooth surrogate the solvers search with (GauS's formulation, the
  GFlowNet's memory policy) and the lower bound. In ``cost``: it needs nothing but the graph.
- **Planned bytes replica** (:mod:`tvm_sched.cost.planned_memory`, objective
  ``planned_memory``): a replay of TVM's ``StaticPlanBlockMemory`` token reuse on an order --
  what TVM will allocate when it plans the module itself. In ``cost`` (pure Python, no TVM) so
  solvers can score thousands of orders; :func:`tvm_sched.relax.memory.planned_bytes` measures
  the real planner on a module, and the tests hold the replica to it.
- **Arena packing** (:mod:`tvm_sched.memory.arena`, objective ``arena_memory``): offsets in one
  buffer for every planned tensor, sequentially (live ranges in an order) or under concurrency
  (a happens-before relation). Here, below ``cost``, because it is both an evaluator (cost) and
  a plan that TVM passes and the runtime apply.
- **Relax ``PlanArena``** (:mod:`tvm_sched.relax.arena`): a TVM pass after
  ``StaticPlanBlockMemory`` that replaces the planner's storages by one arena at the offsets
  :func:`pack` gives. In ``relax`` because it rewrites IR; it owns no packing of its own, so
  the module allocates what ``arena_memory`` predicts.
- **Lane-plan arena** (:mod:`tvm_sched.runtime`): the arena of a lane plan, planned with
  :func:`plan_arena` under the happens-before of the lanes
  (:func:`happens_before_from_lanes`), so concurrent lanes never share live bytes. In
  ``runtime`` because it allocates real tensors; the rule is ONNX Runtime's (see
  :mod:`tvm_sched.memory.arena`).
"""

from tvm_sched.memory.arena import (
    ALIGN,
    EXACT_MAX_TENSORS,
    ArenaPlan,
    ArenaTensor,
    arena_bytes_batch,
    arena_lower_bound,
    arena_tensors,
    happens_before_from_lanes,
    liveness_intervals,
    merged_slices,
    pack,
    plan_arena,
)
from tvm_sched.memory.planner import OutputTensor, PlannerMeta

__all__ = ["ALIGN", "EXACT_MAX_TENSORS", "ArenaPlan", "ArenaTensor", "OutputTensor",
           "PlannerMeta", "arena_bytes_batch", "arena_lower_bound", "arena_tensors",
           "happens_before_from_lanes", "liveness_intervals", "merged_slices", "pack",
           "plan_arena"]
