"""Proxy cost models: makespan on m lanes, liveness peak memory, stage-partition cost.

Every function here is exact for its model and has a batched numpy form that scores many
candidates of one graph at once. Nothing here imports TVM or a solver.
"""

from tvm_sched.cost.cache import cache_miss_bytes, cache_miss_bytes_batch
from tvm_sched.cost.makespan import (
    Comm,
    chain_times,
    list_times,
    makespan_batch,
    makespan_chain,
    makespan_list,
    times_batch,
)
from tvm_sched.cost.memory import (
    memory_lower_bound,
    memory_profile,
    memory_profile_batch,
    peak_memory,
    peak_memory_batch,
)
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
from tvm_sched.cost.pipeline import Pipeline, check_pipeline, modulo_list_schedule
from tvm_sched.cost.planned_memory import (
    planned_memory,
    planned_memory_batch,
    planned_memory_lower_bound,
)
from tvm_sched.cost.stage import (
    check_stages,
    node_weights,
    stage_cost,
    stage_cost_batch,
    stage_lower_bound,
    stages_from_order,
    stages_from_orders,
)

__all__ = [
    "Comm", "chain_times", "list_times", "makespan_batch", "makespan_chain", "makespan_list",
    "times_batch", "memory_lower_bound", "memory_profile", "memory_profile_batch", "peak_memory",
    "peak_memory_batch", "OBJECTIVES", "Makespan", "Objective", "PeakMemory", "StageCost",
    "make_objective", "check_stages", "node_weights", "stage_cost", "stage_cost_batch",
    "stage_lower_bound", "stages_from_order", "stages_from_orders",
    "planned_memory", "planned_memory_batch", "planned_memory_lower_bound", "PlannedMemory",
    "ArenaMemory", "MEMORY_OBJECTIVES", "Pipeline", "check_pipeline", "modulo_list_schedule",
    "cache_miss_bytes",
    "cache_miss_bytes_batch",
]
