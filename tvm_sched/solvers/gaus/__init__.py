"""GauS: differentiable scheduling by Gaussian reparameterisation (registry name ``"gaus"``).

Importing this package imports torch; ``import tvm_sched`` and ``tvm_sched.solvers`` do not (the
registry imports it lazily). Modules: :mod:`.distributions` (Phi masses, closed-form dependency
term), :mod:`.formulations` (the four relaxed problems), :mod:`.legalize` (objective-aware list
schedulers keyed by the means), :mod:`.solver` (the augmented-Lagrangian anytime loop).
"""

from tvm_sched.solvers.gaus.solver import GauSSolver

__all__ = ["GauSSolver"]
