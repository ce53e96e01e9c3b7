"""TVM (Relax) integration of tvm_sched: the only sub-package that imports TVM."""

from tvm_sched.relax.frontend import ImportedModule, from_torch, run_module

__all__ = ["ImportedModule", "from_torch", "run_module"]
