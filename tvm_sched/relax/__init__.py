"""TVM (Relax) integration of tvm_sched: the only sub-package that imports TVM.

Importing it registers the ``"tvm_sched"`` compile pipeline
(``tvm.compile(mod, target, relax_pipeline="tvm_sched")``).
"""

from tvm_sched.relax.frontend import ImportedModule, from_torch, run_module
from tvm_sched.relax.passes import ScheduleOperators, pipeline

__all__ = ["ImportedModule", "from_torch", "run_module", "ScheduleOperators", "pipeline"]
