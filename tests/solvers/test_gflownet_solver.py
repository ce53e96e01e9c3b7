"""The GFlowNet solver, its checkpoints and its training command."""

from __future__ import annotations

import pytest
import torch

from tvm_sched.cost import Comm, Makespan, PeakMemory
from tvm_sched.solvers import get_solver, solve
from tvm_sched.solvers.gflownet import CheckpointError, GFlowNetSolver
from tvm_sched.solvers.gflownet.checkpoint import (
    DEFAULT_CHECKPOINT,
    FORMAT_VERSION,
    load_checkpoint,
    save_checkpoint,
)
from tvm_sched.solvers.gflownet.env import ScheduleEnv
from tvm_sched.solvers.gflownet.features import GraphContext
from tvm_sched.solvers.gflownet.model import ModelConfig, PolicyNet
from tvm_sched.solvers.gflownet.sampler import ModelPolicy
from tvm_sched.solvers.gflownet.train import main as train_main
from tvm_sched.testing.dags import random_dag

TINY = ModelConfig(dim=16, static_layers=1, dynamic_layers=1, cond_dim=8)


def _logits(net, graph, lanes=2):
    env = ScheduleEnv(graph, lanes)
    ctx = GraphContext.build(env)
    with torch.no_grad():
        pol = ModelPolicy(net, ctx, -2.0, False)
        return pol(env.reset(2))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    net = PolicyNet(TINY)
    path = save_checkpoint(tmp_path / "c.pt", net, train={"iterations": 0},
                           progress={"iteration": 0})
    loaded, doc = load_checkpoint(path)
    assert loaded.cfg == TINY and doc["version"] == FORMAT_VERSION
    g = random_dag(10, 0.3, seed=0)
    for a, b in zip(_logits(net, g), _logits(loaded, g), strict=True):
        assert torch.equal(a, b)


def test_incompatible_or_absent_checkpoint_is_a_clear_error(tmp_path):
    net = PolicyNet(TINY)
    path = save_checkpoint(tmp_path / "old.pt", net, train={}, progress={})
    doc = torch.load(path, weights_only=True)
    doc["version"] = FORMAT_VERSION + 1
    torch.save(doc, path)
    with pytest.raises(CheckpointError, match=rf"old\.pt.*version {FORMAT_VERSION + 1}.*"
                                              rf"version {FORMAT_VERSION}"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        GFlowNetSolver(checkpoint=str(tmp_path / "missing.pt")).solve(random_dag(5, 0.3, seed=0))
    doc["version"] = FORMAT_VERSION
    doc["model"]["dim"] = 32  # the weights are 16 wide
    torch.save(doc, path)
    with pytest.raises(CheckpointError, match="does not fit its model config"):
        load_checkpoint(path)
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not a GFlowNet checkpoint"):
        load_checkpoint(tmp_path / "x.pt")


def test_shipped_checkpoint_loads():
    net, doc = load_checkpoint(DEFAULT_CHECKPOINT)
    assert doc["version"] == FORMAT_VERSION and doc["progress"]["iteration"] > 0
    assert DEFAULT_CHECKPOINT.stat().st_size < 5 * 2**20


def test_solver_makespan_with_comm_and_memory():
    g = random_dag(20, 0.15, seed=1)
    for obj in (Makespan(lanes=4), Makespan(lanes=2, comm=Comm(a=1e-4, b=0.5)), PeakMemory()):
        res = solve(g, obj, solver="gflownet", samples=40, batch=20, top_k=3, seed=0,
                    time_limit_s=600)
        assert 1 <= len(res) <= 3
        for s in res:
            s.validate(g, lanes=obj.lanes)
        assert res.info["samples"] == 40 and res.info["samples_per_s"] > 0
        assert res.value <= res.info["mean_value"] + 1e-9
    res = get_solver("gflownet", samples=30).solve(g, Makespan(lanes=3))
    assert res.best.lane is not None and max(res.best.lane) < 3


def test_same_seed_same_schedules():
    g = random_dag(15, 0.2, seed=2)
    a = GFlowNetSolver(samples=20).solve(g, Makespan(lanes=2), seed=3)
    b = GFlowNetSolver(samples=20).solve(g, Makespan(lanes=2), seed=3)
    assert a.schedules == b.schedules


def test_train_command_and_resume(tmp_path, capsys, one_thread):
    out = tmp_path / "t.pt"
    common = ["--out", str(out), "--nodes", "6", "10", "--batch", "4", "--dim", "16",
              "--static-layers", "1", "--cond-dim", "8", "--log-every", "1"]
    assert train_main(common + ["--iterations", "2"]) == 0
    _, doc = load_checkpoint(out)
    assert doc["progress"]["iteration"] == 2 and "optimizer" in doc
    assert train_main(common + ["--iterations", "3", "--resume", str(out), "--loss", "tb"]) == 0
    _, doc = load_checkpoint(out)
    assert doc["progress"]["iteration"] == 3
    assert "[3/3] loss" in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="--dim 32 differs"):
        train_main(["--out", str(out), "--resume", str(out), "--dim", "32"])
    res = GFlowNetSolver(checkpoint=str(out), samples=8).solve(random_dag(8, 0.3, seed=1),
                                                               PeakMemory())
    assert len(res) == 1


def test_list_redecoding_never_worse_without_comm():
    import numpy as np

    from tvm_sched.cost.makespan import makespan_batch
    from tvm_sched.solvers.gflownet.solver import redecode_by_start

    g = random_dag(18, 0.2, seed=4)
    rng = np.random.default_rng(0)
    orders = np.array([g.topological_order] * 6)
    lane = rng.integers(0, 3, size=(6, g.num_nodes))
    chain = makespan_batch(g, orders, lane=lane)
    o, ln, v = redecode_by_start(g, orders, lane, 3)
    assert np.all(v <= chain + 1e-12) and np.all(ln < 3)
    assert np.allclose(makespan_batch(g, o, lane=ln), v)
    for row in o:  # still topological orders
        pos = np.argsort(row)
        assert all(pos[u] < pos[w] for u, w in g.edges)
    a = GFlowNetSolver(samples=20, decode="chain").solve(g, Makespan(lanes=3), seed=1)
    b = GFlowNetSolver(samples=20, decode="both").solve(g, Makespan(lanes=3), seed=1)
    b.best.validate(g, lanes=3)
    assert b.value <= a.value + 1e-12 and b.info["decode"] == "both"
    with pytest.raises(ValueError, match="decode must be"):
        GFlowNetSolver(decode="lanes").solve(g, Makespan(lanes=3))
