"""Storage planning: one arena with byte offsets for the intermediate tensors of a block.

A layer of its own between ``graph`` and ``cost``: the cost layer uses the arena planner as the
exact evaluator of the ``arena_memory`` objective, the Relax integration writes its offsets into
the module, and the lane runtime plans an arena that is safe under concurrency with it. Pure
numpy; no TVM (OR-Tools only for the exact packing, imported lazily).
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
    pack,
    plan_arena,
)

__all__ = ["ALIGN", "EXACT_MAX_TENSORS", "ArenaPlan", "ArenaTensor", "arena_bytes_batch",
           "arena_lower_bound", "arena_tensors", "happens_before_from_lanes",
           "liveness_intervals", "pack", "plan_arena"]
