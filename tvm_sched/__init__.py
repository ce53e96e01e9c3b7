"""tvm_sched: operator scheduling for TVM Relax modules.

Importing this package is cheap: it pulls in numpy and the pure-Python core only. torch,
OR-Tools and TVM are imported lazily by the layers that need them.
"""

from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule

__version__ = "0.1.0"

__all__ = ["OpGraph", "Schedule", "__version__"]
