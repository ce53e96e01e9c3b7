"""The planner replica (``tvm_sched.cost.planned_memory``) against TVM's own planner.

For every model -- the zoo when it is installed, and small models built here that exercise what
the planner treats specially (tuple outputs, reshape views, several dtypes, tuple function
outputs, wide branching with equal sizes) -- the replica must give exactly the bytes
``planned_bytes`` reads from ``StaticPlanBlockMemory`` for the program order, the four
``relax.transform.TopologicalSort`` orders and 50 random orders.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch
import tvm
from tvm import relax

from tvm_sched.cost import make_objective, planned_memory, planned_memory_batch
from tvm_sched.relax.extract import extract
from tvm_sched.relax.memory import planned_bytes
from tvm_sched.relax.passes import fusion_prefix
from tvm_sched.relax.reorder import apply_order
from tvm_sched.solvers import get_solver

pytestmark = pytest.mark.integration

nn = torch.nn


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.a = nn.Sequential(nn.Conv2d(8, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 8, 1))
        self.b = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1))
        self.c = nn.Conv2d(8, 16, 1)
        self.head = nn.Conv2d(24, 4, 1)

    def forward(self, x):
        s = torch.relu(self.stem(x))
        return self.head(torch.cat([self.a(s) + self.b(s), self.c(s)], 1)) + 1.0


class Inception(nn.Module):
    """Three inception blocks: four branches of different widths, concatenated."""

    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.blocks = nn.ModuleList()
        for _ in range(3):
            self.blocks.append(nn.ModuleList([
                nn.Conv2d(c, 4, 1),
                nn.Sequential(nn.Conv2d(c, 6, 1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1)),
                nn.Sequential(nn.Conv2d(c, 2, 1), nn.Conv2d(2, 4, 5, padding=2)),
                nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, 4, 1)),
            ]))
            c = 20
        self.fc = nn.Linear(20, 10)

    def forward(self, x):
        x = self.stem(x)
        for br in self.blocks:
            x = torch.relu(torch.cat([m(x) for m in br], 1))
        return self.fc(x.mean((2, 3)))


class Attention(nn.Module):
    """A transformer block: a split (tuple output), reshapes (views), an int32 output."""

    def __init__(self, d=32, h=4):
        super().__init__()
        self.h = h
        self.qkv, self.o = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (y.reshape(b, t, self.h, d // self.h).transpose(1, 2)
                   for y in self.qkv(self.ln1(x)).split(d, dim=-1))
        a = torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
        x = x + self.ff(self.ln2(x))
        return x, (x.sum(-1) > 0).to(torch.int32)


class RandWire(nn.Module):
    """A random DAG of equal-sized convolutions joined by sums (many equal-size tokens)."""

    def __init__(self, n=14, c=8, seed=3):
        super().__init__()
        r = random.Random(seed)
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.ins = [[j for j in range(i) if r.random() < 0.35] or [max(0, i - 1)]
                    for i in range(n)]
        self.ins[0] = []
        self.convs = nn.ModuleList([nn.Conv2d(c, c, 3 if i % 2 else 1, padding=i % 2)
                                    for i in range(n)])
        used = {j for ins in self.ins for j in ins}
        self.outs = [i for i in range(n) if i not in used]

    def forward(self, x):
        x = self.stem(x)
        h = []
        for i, conv in enumerate(self.convs):
            s = x if not self.ins[i] else sum(h[j] for j in self.ins[i])
            h.append(conv(torch.relu(s)))
        return sum(h[i] for i in self.outs).mean((2, 3))


class NasCell(nn.Module):
    """Two NASNet-like cells reading the two previous cells' outputs."""

    def __init__(self, c=8):
        super().__init__()
        self.c = c
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.cells = nn.ModuleList([nn.ModuleList([
            nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, padding=k // 2, groups=g),
                          nn.BatchNorm2d(c))
            for k, g in [(3, c), (5, c), (3, 1), (1, 1), (5, 1), (3, c)]]) for _ in range(2)])
        self.fc = nn.Linear(3 * c, 10)

    def forward(self, x):
        prev = cur = self.stem(x)
        for ops in self.cells:
            n0 = ops[0](cur) + ops[1](prev)
            n1 = ops[2](prev) + torch.max_pool2d(cur, 3, 1, 1)
            n2 = ops[3](n0) + ops[4](cur)
            n3 = ops[5](n1) + nn.functional.avg_pool2d(prev, 3, 1, 1)
            prev, cur = cur, torch.cat([n1, n2, n3], 1)[:, : self.c] * 1.0
        return self.fc(torch.cat([n1, n2, n3], 1).mean((2, 3)))


class Mixed(nn.Module):
    """Uneven split, int64 and bool tensors, a view, a tuple output also read inside."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 12, 3, padding=1)
        self.c2, self.c3 = nn.Conv2d(4, 8, 1), nn.Conv2d(6, 8, 1)
        self.w = nn.Parameter(torch.randn(64))

    def forward(self, x):
        a, b = torch.split(torch.relu(self.c1(x)), [4, 8], 1)
        c = self.c2((a.half() * 2).float()) + self.c3(b[:, :6])
        mid = torch.sigmoid(c.reshape(1, 8, 64) + self.w.reshape(1, 1, 64))
        q = mid.flatten(1).sum(1, keepdim=True) + torch.argmax(c, 1).sum().float()
        return mid, q, (b.mean((2, 3)) > 0)


LOCAL = {
    "branchy": (Branchy, (1, 3, 8, 8)),
    "inception": (Inception, (1, 3, 8, 8)),
    "attention": (Attention, (2, 8, 32)),
    "randwire": (RandWire, (1, 3, 8, 8)),
    "nascell": (NasCell, (1, 3, 8, 8)),
    "mixed": (Mixed, (1, 3, 8, 8)),
}


def _build_local(name: str) -> tvm.IRModule:
    from tvm.relax.frontend.torch import from_exported_program

    cls, shape = LOCAL[name]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = cls().eval()
        args = (torch.randn(*shape),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(model, args)
    mod = from_exported_program(ep, keep_params_as_input=True, unwrap_unit_return_tuple=True)
    mod, _ = relax.frontend.detach_params(mod)
    return fusion_prefix()(relax.transform.LiftTransformParams()(mod))


def _zoo_names() -> list[str]:
    try:
        from tvm_sched import zoo
    except ImportError:
        return []
    return [f"zoo:{n}" for n in zoo.names()]


def _build(name: str) -> tvm.IRModule:
    if name.startswith("zoo:"):
        from tvm_sched import zoo
        from tvm_sched.relax.frontend import prepare

        return prepare(zoo.load(name[4:]).mod)
    return _build_local(name)


TOPO_SORTS = [(o, d) for o in ("depth-first", "breadth-first")
              for d in ("from-inputs", "from-outputs")]


def topological_sort_order(mod, graph, order: str, direction: str) -> list[int]:
    """The order of ``graph``'s nodes after ``relax.transform.TopologicalSort``.

    Bindings keep their variables through the pass, so each binding of the sorted block is
    mapped back to its node by its variable.
    """
    info = graph.meta
    block = mod[info["func"]].body.blocks[info["block"]]
    node_of = {block.bindings[p].var: v for v, p in enumerate(info["positions"])}
    sorted_mod = relax.transform.TopologicalSort(order=order, direction=direction)(mod)
    sorted_block = sorted_mod[info["func"]].body.blocks[info["block"]]
    return [node_of[b.var] for b in sorted_block.bindings if b.var in node_of]


def _model_names() -> list[str]:
    """The zoo plus the local models it does not cover (all local models without a zoo)."""
    zoo = _zoo_names()
    return [*zoo, "mixed", "attention"] if zoo else list(LOCAL)


@pytest.mark.parametrize("name", _model_names())
def test_replica_equals_tvm_planner(name):
    mod = _build(name)
    graphs = extract(mod)
    assert graphs
    total = planned_bytes(mod)
    for g in graphs:
        n = g.num_nodes
        program = list(range(n))
        # Bytes planned in the function's other blocks do not depend on this block's order.
        rest = total - planned_memory(g, program)
        orders = {"program": program}
        for o, d in TOPO_SORTS:
            orders[f"{o}/{d}"] = topological_sort_order(mod, g, o, d)
        res = get_solver("random", samples=50, top_k=50).solve(
            g, make_objective("peak_memory"), seed=0)
        for i, s in enumerate(res.schedules):
            orders[f"random{i}"] = list(s.order)
        batch = planned_memory_batch(g, np.array(list(orders.values())))
        mismatches = []
        for (label, order), mine in zip(orders.items(), batch.tolist(), strict=True):
            tvm_bytes = planned_bytes(apply_order(mod, g, order))
            if tvm_bytes != rest + mine:
                mismatches.append((label, tvm_bytes, rest + mine))
        assert not mismatches, f"{name} {g.meta['name']}: {mismatches[:5]}"


def test_topological_sort_orders_are_what_the_pass_writes():
    mod = _build_local("inception")
    g = extract(mod)[0]
    for o, d in TOPO_SORTS:
        order = topological_sort_order(mod, g, o, d)
        sorted_mod = relax.transform.TopologicalSort(order=o, direction=d)(mod)
        assert sorted(order) == list(range(g.num_nodes))
        assert planned_bytes(sorted_mod) == planned_memory(g, order)


def _resize_chain(sizes: list[int], dtype: str = "float32") -> tvm.IRModule:
    """x (sizes[0] elements) -> add -> [sum -> broadcast_to(n)] for each n -> add (output)."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([sizes[0]], dtype))
    with bb.function("main", [x]):
        with bb.dataflow():
            t = bb.emit(relax.op.add(x, x))
            for n in sizes[1:]:
                s = bb.emit(relax.op.sum(t, axis=[0], keepdims=True))
                t = bb.emit(relax.op.broadcast_to(s, relax.ShapeExpr([n])))
            out = bb.emit_output(relax.op.add(t, t))
        bb.emit_func_output(out)
    return relax.transform.LegalizeOps()(bb.get())


@pytest.mark.parametrize("sizes, expected", [
    # A free 4096-byte token serves a 256-byte tensor (256 * 16 = 4096: inclusive) ...
    ([1024, 64, 64], 4096 + 4),
    # ... a 4100-byte one does not.
    ([1025, 64, 64], 4100 + 4 + 256),
    # A free 4-byte token grows to 68 bytes (68 // 16 = 4: integer division) ...
    ([1, 17, 17], 68 + 4),
    # ... not to 80 bytes (80 // 16 = 5).
    ([1, 20, 20], 4 + 4 + 80),
    # A free 64-byte token serves a 4-byte tensor; a 68-byte one does not.
    ([16, 1, 1], 64 + 4),
    ([17, 1, 1], 68 + 4 + 4),
])
def test_reuse_window_boundaries(sizes, expected):
    mod = _resize_chain(sizes)
    g = extract(mod)[0]
    assert planned_bytes(mod) == expected
    assert planned_memory(g, range(g.num_nodes)) == expected


def test_extraction_records_views_tuples_dtypes_and_unplanned_outputs():
    g = extract(_build_local("mixed"))[0]
    info = g.meta["planner"]
    assert set(info["dtypes"]) >= {"float32", "int64", "bool"}
    assert "view" in info["kind"]
    assert any(len(f) == 2 for f in info["out"])  # the split's tuple output
    unplanned = [v for v in range(g.num_nodes) if any(not p for _, _, p in info["out"][v])]
    assert len(unplanned) == 3  # the three fields of the returned tuple
    import json

    assert json.loads(json.dumps(g.meta)) == g.meta
