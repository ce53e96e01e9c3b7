"""The GFlowNet sampler of "Robust Scheduling with GFlowNets" (registry name ``"gflownet"``).

Importing this package imports torch; ``import tvm_sched`` does not (the registry imports it
lazily). Modules: :mod:`.features` (per-graph features, priors, relations, condition),
:mod:`.model` (the sigma-conditioned Topoformer scoring every node once), :mod:`.sampler` (the
one-shot priority action space: exact exponential-race sampling and ``log P_F``),
:mod:`.reward`, :mod:`.loss` (log-partition variance and trajectory balance),
:mod:`.checkpoint`, :mod:`.train` (the training command) and :mod:`.solver`.
"""

from tvm_sched.solvers.gflownet.checkpoint import CheckpointError
from tvm_sched.solvers.gflownet.solver import GFlowNetSolver

__all__ = ["GFlowNetSolver", "CheckpointError"]
