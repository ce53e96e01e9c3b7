"""
Scheduling the operators of a Relax module
==========================================

TVM runs the operators of a Relax function in the order of its bindings, and its static memory
planner (``StaticPlanBlockMemory``) hands out storage greedily, in that order. So the order
decides how many bytes the compiled model reserves for its intermediate tensors -- most of all in
models with parallel branches, where many orders are legal.

This tutorial takes a small Inception-like torch model to a compiled TVM module through
tvm_sched's ``ScheduleOperators`` pass: import, fuse, look at the operator graph, read what TVM's
planner allocates, reorder, compile, and check that the reordered module computes the same
outputs. Set ``TVM_SCHED_TUTORIAL_SMALL=1`` to run everything at a tiny size (that is what the
tests do).
"""

import os

import numpy as np
import torch
import tvm
from torch import nn
from tvm import relax

import tvm_sched.relax
from tvm_sched.relax import (
    ScheduleOperators,
    extract_op_graphs,
    from_torch,
    planned_bytes,
    prepare,
)

SMALL = os.environ.get("TVM_SCHED_TUTORIAL_SMALL") == "1"
WIDTH, BLOCKS, SIZE = (4, 2, 8) if SMALL else (32, 4, 32)
ZOO_MODEL = "inception" if SMALL else "nasnet"

######################################################################
# A model with parallel branches
# ------------------------------
# Each block runs four branches of different widths on the same input -- a 1x1 convolution,
# 1x1 then 3x3, 1x1 then 5x5, and max-pooling then 1x1 -- and concatenates them. Any branch can
# run first, and the branches' intermediate tensors have different sizes, so the order matters.


def conv_relu(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU())


class Branches(nn.Module):
    def __init__(self, cin, w):
        super().__init__()
        self.one = conv_relu(cin, w, 1)
        self.three = nn.Sequential(conv_relu(cin, w // 2, 1), conv_relu(w // 2, w, 3))
        self.five = nn.Sequential(conv_relu(cin, w // 4, 1), conv_relu(w // 4, w // 2, 5))
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_relu(cin, 2 * w, 1))
        self.out_channels = w + w + w // 2 + 2 * w

    def forward(self, x):
        return torch.cat([self.one(x), self.three(x), self.five(x), self.pool(x)], dim=1)


class Net(nn.Module):
    def __init__(self, w, blocks, classes=10):
        super().__init__()
        self.stem = conv_relu(3, 2 * w, 3)
        layers, cin = [], 2 * w
        for _ in range(blocks):
            layers.append(Branches(cin, w))
            cin = layers[-1].out_channels
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


torch.manual_seed(0)
model = Net(WIDTH, BLOCKS)
example = (torch.randn(1, 3, SIZE, SIZE),)

######################################################################
# Import and fuse
# ---------------
# ``from_torch`` runs ``torch.export`` and TVM's Relax frontend and keeps the weights apart as
# parameters (it also records torch's own outputs on the example input). ``prepare`` lifts the
# weight-only work into ``main_transform_params`` and runs the fusion prefix of TVM's build
# (legalise, fold constants, ``FuseOps``, ``FuseTIR``). ``FuseOps`` reorders bindings and nothing
# after it does, so the fused module is the one whose order the scheduler chooses.

imported = from_torch(model, example, name="branches")
mod = prepare(imported.mod)

######################################################################
# The operator graph
# ------------------
# ``extract_op_graphs`` gives one :class:`~tvm_sched.graph.OpGraph` per dataflow block: a node
# per fused kernel call, numbered in the module's own order, with the bytes of the tensor it
# produces; an edge per tensor passed. Any solver of :mod:`tvm_sched.solvers` works on it.

graphs = extract_op_graphs(mod)
for g in graphs:
    print(f"operator graph {g.meta['name']}: {g.num_nodes} nodes, {g.num_edges} edges, "
          f"{int(g.out_bytes.sum()):,} bytes of outputs in all")

######################################################################
# What TVM's planner allocates
# ----------------------------
# ``planned_bytes`` runs TVM's build passes up to the static memory planner on a copy of the
# module and adds up the storage it allocates for intermediate tensors (no build, milliseconds).
# This is the number the pass lowers.

before = planned_bytes(mod)
print(f"planned bytes, the module's own order: {before:,}")

######################################################################
# The ScheduleOperators pass
# --------------------------
# The pass extracts the graphs, asks each solver for candidate orders, adds a few baseline
# orders (depth- and breadth-first) and the module's own order, scores every candidate with an
# exact replica of TVM's planner and writes the best one back. On a tie it keeps the module's
# order, so it never makes the planned memory worse. Its options:
#
# - ``solver``: one registered name or a list (``tvm-sched solvers`` lists them);
# - ``objective``: what the solvers optimise -- ``"planned_memory"`` (the planner replica),
#   ``"peak_memory"`` (tensor liveness) or ``"makespan"`` with ``lanes``;
# - ``budget``: seconds per block and solver;
# - ``baselines``: orders always tried; ``select="proxy"`` trusts the solvers' own objective
#   instead of the planner.
#
# It is an ordinary module pass, so it goes in a ``Sequential`` like any TVM pass. ``report``
# says, per block, which candidate won and the planned bytes before and after.

schedule = ScheduleOperators(solver=["lpmf", "random"], objective="planned_memory", budget=1.0)
scheduled = tvm.transform.Sequential([schedule])(mod)
after = planned_bytes(scheduled)
print(f"planned bytes, scheduled order:         {after:,}")
print(f"saved {before - after:,} bytes ({100 * (before - after) / before:.1f}%)")
for row in schedule.report:
    print(f"  {row['block']}: best of {row['candidates']} candidates is {row['chosen']!r}, "
          f"{row['planned_before']:,} -> {row['planned_after']:,} bytes")

######################################################################
# ``gaus``, ``gumbel`` and ``cpsat`` do not model the planner: give them the liveness objective
# ``"peak_memory"``. The pass still picks among all candidates by TVM's planned bytes, because a
# lower liveness peak does not always mean fewer planned bytes (the planner reuses storage
# greedily, by size).

liveness = ScheduleOperators(solver=["gaus", "lpmf"], objective="peak_memory", budget=0.5)
print(f"planned bytes, gaus and lpmf on liveness: {planned_bytes(liveness(mod)):,} "
      f"(kept the {liveness.report[0]['chosen']!r} order)")

######################################################################
# Compile and check the outputs
# -----------------------------
# ``tvm_sched.relax.pipeline(**options)`` is the pass followed by TVM's default build pipeline;
# hand it to ``tvm.compile``. Importing ``tvm_sched.relax`` also registers it under the name
# ``"tvm_sched"`` (default options). Reordering never changes what is computed: all three
# executables give the same outputs.

dev = tvm.cpu()


def run(executable):
    """Run ``main`` of an executable built from ``mod`` on the example input."""
    vm = relax.VirtualMachine(executable, dev)
    weights = [tvm.runtime.tensor(w, dev) for w in imported.params]
    weights = list(vm["main_transform_params"](weights))  # lifted weight-only work
    out = vm["main"](*[tvm.runtime.tensor(x, dev) for x in imported.inputs], *weights)
    return out.numpy()


original = run(tvm.compile(mod, "llvm"))
options = {"solver": ["lpmf", "random"], "budget": 1.0}
reordered = run(tvm.compile(mod, "llvm", relax_pipeline=tvm_sched.relax.pipeline(**options)))
registered = run(tvm.compile(mod, "llvm", relax_pipeline="tvm_sched"))
np.testing.assert_allclose(reordered, original, rtol=1e-5, atol=1e-5)
np.testing.assert_allclose(registered, original, rtol=1e-5, atol=1e-5)
np.testing.assert_allclose(original, imported.reference[0], rtol=1e-4, atol=1e-4)
print(f"outputs match: original, scheduled and 'tvm_sched' pipeline agree "
      f"(and match torch), shape {original.shape}")

######################################################################
# A model from the zoo
# --------------------
# :mod:`tvm_sched.zoo` has small built-in models with random weights (``zoo.names()`` lists
# them). ``ScheduleOperators`` runs the fusion prefix itself when it is given an unfused module,
# so ``LiftTransformParams`` is all that is needed before it. NASNet-style cells are where the
# order matters most; at the small size the tutorial uses the Inception stack instead.

from tvm_sched import zoo  # noqa: E402

zoo_mod = relax.transform.LiftTransformParams()(zoo.load(ZOO_MODEL).mod)
zoo_pass = ScheduleOperators(solver=["lpmf", "random"], budget=1.0)
zoo_scheduled = zoo_pass(zoo_mod)
for row in zoo_pass.report:
    saved = row["planned_before"] - row["planned_after"]
    print(f"zoo {ZOO_MODEL}: planned bytes {row['planned_before']:,} -> {row['planned_after']:,}"
          f" (saved {saved:,}, {100 * saved / row['planned_before']:.1f}%, "
          f"{row['chosen']!r} order)")
