"""Proxy cost models: makespan on m lanes, liveness peak memory, stage-partition cost.

Every function here is exact for its model and has a batched numpy form that scores many
candidates of one graph at once. Nothing here imports TVM or a solver.
"""

from tvm_sched.cost.cache import cache_miss_bytes, cache_miss_bytes_batch
from tvm_sched.cost.makespan import Comm, makespan_batch, times_batch
from tvm_sched.cost.memory import peak_memory, peak_memory_batch
from tvm_sched.cost.objectives import (
    MEMORY_OBJECTIVES,
    OBJECTIVES,
    ArenaMemory,
    Makespan,
    Objective,
    PeakMemory,
    PlannedMemory,
    StageCost,
    make_objective,
)
from tvm_sched.cost.pipeline import Pipeline
from tvm_sched.cost.planned_memory import planned_memory, planned_memory_batch
from tvm_sched.cost.stage import stage_cost_batch

#: The public API: the objectives and their exact, batched evaluators. The building blocks
#: (chain/list start times, liveness profiles, stage chunking, modulo list scheduling, lower
#: bounds) are imported from their modules.
__all__ = [
    "Objective", "Makespan", "PeakMemory", "PlannedMemory", "ArenaMemory", "StageCost",
    "Pipeline", "Comm", "make_objective", "OBJECTIVES", "MEMORY_OBJECTIVES",
    "makespan_batch", "times_batch", "peak_memory", "peak_memory_batch", "planned_memory",
    "planned_memory_batch", "stage_cost_batch", "cache_miss_bytes", "cache_miss_bytes_batch",
]
