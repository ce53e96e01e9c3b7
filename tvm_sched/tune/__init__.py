"""The tuner: build candidate orders, measure them on devices over TVM RPC, pick the best.

``tvm-sched tune`` is its command line. Layers: :mod:`~tvm_sched.tune.model` (what is tuned),
:mod:`~tvm_sched.tune.candidates` (orders and proxies), :mod:`~tvm_sched.tune.builder`,
:mod:`~tvm_sched.tune.runner` (RPC runners and the measurement protocol),
:mod:`~tvm_sched.tune.database` (JSONL records), :mod:`~tvm_sched.tune.report`,
:mod:`~tvm_sched.tune.tuner` (the loop). Importing it imports TVM.
"""

from tvm_sched.tune.builder import Builder, Built
from tvm_sched.tune.candidates import Candidate, propose
from tvm_sched.tune.database import Database
from tvm_sched.tune.model import TuneModel, check_target, load_model
from tvm_sched.tune.runner import (
    EmbeddedRunner,
    InProcessRunner,
    Measurer,
    Runner,
    ServerRunner,
    TrackerRunner,
    runner_from_args,
)
from tvm_sched.tune.tuner import TuneConfig, TuneResult, tune

__all__ = ["Builder", "Built", "Candidate", "propose", "Database", "TuneModel", "check_target",
           "load_model", "EmbeddedRunner", "InProcessRunner", "Measurer", "Runner",
           "ServerRunner", "TrackerRunner", "runner_from_args", "TuneConfig", "TuneResult",
           "tune"]
