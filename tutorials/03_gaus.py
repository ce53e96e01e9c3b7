"""
GauS: differentiable scheduling with Gaussian start steps
=========================================================

GauS (Cai et al., arXiv 2602.20427) gives every operator a Gaussian start step
``N(mu_i, sigma_i)``, writes the schedule's objective and constraints as smooth expectations of
those Gaussians, and optimises all of them at once with gradient descent under an augmented
Lagrangian. Every few hundred steps the means are legalised by a list scheduler keyed by ``mu``,
the legal schedule is scored exactly, and the best one is kept: an *anytime* solver.

This tutorial runs GauS on the four formulations it supports -- makespan on ``m`` lanes, peak
memory of an order, the ICML'24 stage partition and pipelined (modulo) scheduling -- and
compares it with the Gumbel-softmax baseline and list scheduling. Set
``TVM_SCHED_TUTORIAL_SMALL=1`` to run everything at a tiny size (that is what the tests do).
"""

import os

from tvm_sched.cost import Makespan, PeakMemory, Pipeline, StageCost
from tvm_sched.solvers import get_solver
from tvm_sched.testing import random_dag

SMALL = os.environ.get("TVM_SCHED_TUTORIAL_SMALL") == "1"
N = 16 if SMALL else 120
BUDGET = 0.5 if SMALL else 5.0

######################################################################
# A random operator graph
# -----------------------
# ``random_dag`` draws a DAG with integer durations and tensor sizes; any
# :class:`~tvm_sched.graph.OpGraph` works, e.g. one extracted from a Relax module.

graph = random_dag(N, 0.1, seed=0, int_durations=True)
print(graph)

######################################################################
# Makespan on four lanes
# ----------------------
# The relaxation spreads each operator's start over steps; the expected number of operators
# running on a step must stay below the lane count, and each edge ``u -> v`` must keep
# ``start_v >= start_u + duration_u`` (the penalty uses the closed-form expected shortfall of the
# difference of two Gaussians). ``device="auto"`` runs on a GPU when there is one.

gaus = get_solver("gaus")
res = gaus.solve(graph, Makespan(lanes=4), budget=BUDGET, seed=0, device="auto")
lst = get_solver("list").solve(graph, Makespan(lanes=4))
print(f"makespan: gaus {res.value:g} (lower bound {res.bound:g}), list scheduling {lst.value:g}")
print(f"  initialisation {res.info['init_value']:g} -> {res.value:g} after "
      f"{res.info['rounds']} rounds on {res.info['device']}")

######################################################################
# Peak memory of a single-lane order
# ----------------------------------
# Each operator gets its own step; a tensor is live from its producer's step until all of its
# consumers have run, and the log-sum-exp of the expected live bytes is the smooth peak.

res = gaus.solve(graph, PeakMemory(), budget=BUDGET, seed=0)
lpmf = get_solver("lpmf").solve(graph, PeakMemory())
print(f"peak memory: gaus {res.value:g} bytes, least-peak-memory-first {lpmf.value:g}")

######################################################################
# The stage partition of the ICML'24 papers
# -----------------------------------------
# Cost = ``ratio * (heaviest stage) + (stage boundaries crossed by data edges)``; a consumer may
# share its producer's stage. Here GauS is compared with the Gumbel-softmax scheduler of
# "Differentiable Combinatorial Scheduling at Scale" (ICML 2024) at the same budget.

stage = StageCost(stages=5, ratio=10.0)
for name in ("gaus", "gumbel", "list"):
    r = get_solver(name).solve(graph, stage, budget=BUDGET, seed=0)
    print(f"stage cost, {name:6s}: {r.value:g}")

######################################################################
# Pipelined (modulo) scheduling
# -----------------------------
# A new iteration starts every ``II`` steps; a recurrence edge ``(u, v, k)`` says that ``v`` of
# iteration ``i + k`` reads ``u`` of iteration ``i``. GauS minimises the iteration latency; an
# ``II`` below the resource or recurrence bound raises an ``InfeasibleError`` naming the bound.

last, first = int(graph.topological_order[-1]), int(graph.topological_order[0])
ii = int(graph.total_duration) // 2 + 4
pipe = Pipeline(ii=ii, lanes=2, recurrences=((last, first, 2),))
res = gaus.solve(graph, pipe, budget=BUDGET, seed=0)
print(f"pipeline at II={ii}: iteration latency {res.value:g} "
      f"(critical path {graph.critical_path_length:g})")

from tvm_sched.errors import InfeasibleError  # noqa: E402

try:
    gaus.solve(graph, Pipeline(ii=1, lanes=2))
except InfeasibleError as err:
    print("II=1:", err)
