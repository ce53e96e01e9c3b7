"""The GFlowNet sampler of "Robust Scheduling with GFlowNets" (registry name ``"gflownet"``).

Importing this package imports torch; ``import tvm_sched`` does not (the registry imports it
lazily). Modules: :mod:`.env` (batched partial schedules, forward/backward masks and steps),
:mod:`.features` (static, dynamic and pair features), :mod:`.model` (the sigma-conditioned
Topoformer with P_F, P_B and log Z heads), :mod:`.reward`, :mod:`.loss` (log-partition variance
and trajectory balance), :mod:`.sampler` (rollouts), :mod:`.checkpoint`, :mod:`.train` (the
training command) and :mod:`.solver`.
"""

from tvm_sched.solvers.gflownet.checkpoint import CheckpointError
from tvm_sched.solvers.gflownet.solver import GFlowNetSolver

__all__ = ["GFlowNetSolver", "CheckpointError"]
