"""
GFlowNet: sampling many good schedules
======================================

"Robust Scheduling with GFlowNets" (Zhang et al., ICLR 2023) trains a policy that draws whole
schedules with probability proportional to a reward, ``exp((U - m) / sigma)`` for a speedup
``U`` on ``m`` lanes. tvm_sched's sampler uses the action space of one-shot priority sampling
(Jeon et al., ICLR 2023) so that it scales to models of a thousand operators: a graph-conditioned
network scores every operator once, a trajectory appends one *ready* operator at a time with
probability softmax(scores over the ready ones), and the finished order is decoded onto the lanes
by list scheduling. A low temperature ``sigma`` concentrates the samples on fast schedules
while keeping many different ones, which pays off when the real target (noisy runtimes,
communication costs) differs from the proxy the policy was trained on: draw many, keep the best
by the proxy, measure those.

This tutorial trains a tiny model for a few seconds with the project's training command, samples
from it, and then uses the pretrained checkpoint shipped with the package through the solver
registry. Set ``TVM_SCHED_TUTORIAL_SMALL=1`` to run it at a tiny size (that is what the tests do).
"""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tvm_sched.cost import Comm, Makespan, PeakMemory, makespan_batch
from tvm_sched.datasets import generate
from tvm_sched.solvers import get_solver, load_checkpoint, sample_schedules
from tvm_sched.solvers import train_gflownet as train

SMALL = os.environ.get("TVM_SCHED_TUTORIAL_SMALL") == "1"
ITERATIONS = 6 if SMALL else 300
N = 16 if SMALL else 50

######################################################################
# Train a tiny policy
# -------------------
# The training command draws a graph (here Erdős–Rényi or layered), a task (makespan on 2-4 lanes
# or, sometimes, peak memory on one lane) and a temperature per iteration, samples a batch of
# trajectories and minimises the variance of ``log R - sum log P_F`` over the batch (the
# log-partition-variance loss; a prefix of an order has one parent, so ``P_B = 1``). The same
# command is ``python -m tvm_sched.solvers.gflownet.train``; ``--resume`` continues a run.

tmp = Path(tempfile.mkdtemp())
ckpt = tmp / "tiny.pt"
train(["--out", str(ckpt), "--iterations", str(ITERATIONS), "--batch", "8",
       "--nodes", "8", str(N), "--dim", "16", "--static-layers", "1", "--cond-dim", "8",
       "--log-every", str(max(1, ITERATIONS // 3))])
net, doc = load_checkpoint(ckpt)
print(f"trained {doc['progress']['iteration']} iterations in {doc['progress']['seconds']:.1f} s")

######################################################################
# Sample schedules at a chosen temperature
# ----------------------------------------
# The network runs once per graph and temperature; the samples are then drawn together by an
# exact "exponential race" over the scores (no network call per step). Every sample is a device
# assignment plus per-lane chains (the list decoding of its order), evaluated with the chain
# semantics of :mod:`tvm_sched.cost.makespan`.

graph = generate("layered", N, seed=123)
out = sample_schedules(net, graph, Makespan(lanes=4), sigma=0.05, samples=64, batch=64)
ms = out["makespan"]
print(f"tiny model: best makespan {ms.min():.3f}, mean {ms.mean():.3f} "
      f"({out['samples_per_s']:.0f} samples/s)")

######################################################################
# The pretrained sampler through the registry
# -------------------------------------------
# ``solver="gflownet"`` loads the checkpoint shipped with the package. It draws ``samples``
# schedules at ``sigma`` and returns the ``top_k`` best by the proxy.

obj = Makespan(lanes=4)
res = get_solver("gflownet", samples=64 if SMALL else 500, top_k=10).solve(graph, obj, seed=0)
lst = get_solver("list").solve(graph, obj)
print(f"pretrained gflownet: makespan {res.value:.3f} (lower bound {res.bound:.3f}), "
      f"list scheduling {lst.value:.3f}, {res.info['samples_per_s']:.0f} samples/s")

######################################################################
# Robustness: pick among the top schedules on the real target
# -----------------------------------------------------------
# Suppose every transfer between lanes actually costs a fixed latency. The top schedules by the
# proxy differ in where they cut the graph, so the best of them on the target can beat the single
# list schedule by a wide margin.

target = Comm(a=0.0, b=float(graph.duration.mean()))
orders = np.array([s.order for s in res])
lanes = np.array([s.lane for s in res])
on_target = makespan_batch(graph, orders, lane=lanes, comm=target)
lst_target = makespan_batch(graph, np.array([lst.best.order]), lane=np.array([lst.best.lane]),
                            comm=target)[0]
print(f"latency-limited target: gflownet top-10 best {on_target.min():.3f}, "
      f"list scheduling {lst_target:.3f}")

######################################################################
# Peak memory of a one-lane order
# -------------------------------
# With ``m = 1`` a schedule is an order; the same network, conditioned on the memory task, samples
# orders rewarded by how close their liveness peak is to the best heuristic's.

mem = get_solver("gflownet", samples=32 if SMALL else 300).solve(graph, PeakMemory(), seed=0)
lpmf = get_solver("lpmf").solve(graph, PeakMemory())
print(f"peak memory: gflownet {mem.value:.0f} bytes, least peak memory first {lpmf.value:.0f}")

shutil.rmtree(tmp)  # the tiny checkpoint of the first section
