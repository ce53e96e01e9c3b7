"""TVM (Relax) integration of tvm_sched: extraction, reordering, the scheduling pass, the arena.

Importing it registers the ``"tvm_sched"`` compile pipeline
(``tvm.compile(mod, target, relax_pipeline="tvm_sched")``: :class:`ScheduleOperators`, then
TVM's default lowering with :class:`PlanArena` after its memory planner). ``relax``,
``runtime`` and ``tune`` are the packages that import TVM; the layers below them never do.

tvm_sched's exceptions are registered with tvm-ffi, so an error raised inside a pass reaches
the caller as its own type (an ``InvalidScheduleError``, not a ``RuntimeError``).
"""

import tvm_ffi as _tvm_ffi

from tvm_sched import errors as _errors
from tvm_sched.relax.arena import PlanArena, allocated_bytes, arena_pipeline
from tvm_sched.relax.extract import DEVICES, DeviceSpec
from tvm_sched.relax.extract import extract as extract_op_graphs
from tvm_sched.relax.frontend import (
    ImportedModule,
    flatten_values,
    from_torch,
    prepare,
    run_module,
)
from tvm_sched.relax.inplace import KeepInplaceCallsUnfused, inplace_hazards
from tvm_sched.relax.memory import plan_memory, planned_bytes
from tvm_sched.relax.passes import ScheduleOperators, fusion_prefix, is_fused, pipeline
from tvm_sched.relax.profile import profile_kernels
from tvm_sched.relax.reorder import ReorderBindings, apply, apply_order


def _register_errors() -> None:
    for name in _errors.__all__:
        cls = getattr(_errors, name)
        if cls is _errors.DatasetFormatError:  # its constructor takes (path, line, reason)
            continue
        try:
            _tvm_ffi.register_error(name, cls)
        except Exception:  # noqa: BLE001 - already registered by an earlier import
            pass


_register_errors()

__all__ = [
    "DEVICES", "DeviceSpec", "ImportedModule", "KeepInplaceCallsUnfused", "PlanArena",
    "ReorderBindings", "ScheduleOperators", "allocated_bytes", "apply", "apply_order",
    "arena_pipeline", "extract_op_graphs", "flatten_values", "from_torch", "fusion_prefix",
    "inplace_hazards", "is_fused", "pipeline", "plan_memory", "planned_bytes", "prepare",
    "profile_kernels", "run_module",
]
