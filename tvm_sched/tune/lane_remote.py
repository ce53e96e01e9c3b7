"""Deprecated: the old home of the lane functions a device serves; they are
:mod:`tvm_sched.runtime.rpc` (the RPC functions, one module cache) and
:mod:`tvm_sched.runtime.cores` (usable cores, the parallelism probe, ``lanes_for``) now.

The names below stay importable for code not yet moved; new code imports those modules.
"""

from __future__ import annotations

from tvm_sched.runtime.cores import MIN_EFFICIENCY, lanes_for, num_cores, parallelism
from tvm_sched.runtime.rpc import NUM_CORES, PARALLELISM, forget, register
from tvm_sched.runtime.rpc import RUN_FUNC as LANE_RUN
from tvm_sched.runtime.rpc import TIME_RUNS as LANE_TIME
from tvm_sched.runtime.rpc import TIME_STEP as LANE_STEP

__all__ = ["register", "NUM_CORES", "PARALLELISM", "LANE_RUN", "LANE_TIME", "LANE_STEP",
           "num_cores", "parallelism", "lanes_for", "forget", "MIN_EFFICIENCY"]
