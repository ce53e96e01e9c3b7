"""Helpers for tests and tutorials: canonical DAGs, brute-force reference optima, data checks.

Nothing here is imported by the library itself. The DAG builders and the brute-force optima are
public (tutorials use them); the hypothesis strategies live in :mod:`tvm_sched.testing.strategies`
(importing it needs ``hypothesis``, a development dependency).
"""

from tvm_sched.testing.brute import (
    brute_makespan,
    brute_peak_memory,
    brute_stage,
    topological_orders,
)
from tvm_sched.testing.dags import (
    canonical_dags,
    chain,
    diamond,
    fork,
    fork_join,
    join,
    random_dag,
    wide,
)
from tvm_sched.testing.data import have_data, needs_data

__all__ = [
    "brute_makespan", "brute_peak_memory", "brute_stage", "canonical_dags", "chain", "diamond",
    "fork", "fork_join", "have_data", "join", "needs_data", "random_dag", "topological_orders",
    "wide",
]
