"""The GFlowNet solver, its checkpoints, its model at scale and its training command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tvm_sched.cost import Comm, Makespan, PeakMemory, PlannedMemory, StageCost
from tvm_sched.datasets.generators import generate
from tvm_sched.solvers import get_solver, solve
from tvm_sched.solvers.gflownet import CheckpointError, GFlowNetSolver
from tvm_sched.solvers.gflownet.checkpoint import (
    DEFAULT_CHECKPOINT,
    FORMAT_VERSION,
    load_checkpoint,
    save_checkpoint,
)
from tvm_sched.solvers.gflownet.features import encode_graph
from tvm_sched.solvers.gflownet.model import ModelConfig, PolicyNet
from tvm_sched.solvers.gflownet.reward import Task
from tvm_sched.solvers.gflownet.solver import node_logits
from tvm_sched.solvers.gflownet.train import GraphSource
from tvm_sched.solvers.gflownet.train import main as train_main
from tvm_sched.testing.dags import random_dag

TINY = ModelConfig(dim=16, static_layers=1, cond_dim=8)


def _logits(net, graph, lanes=2, memory=False):
    task = Task(PeakMemory()) if memory else Task(Makespan(lanes=lanes))
    return node_logits(net, encode_graph(graph, lanes), task, sigma=0.1)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    net = PolicyNet(TINY)
    torch.nn.init.normal_(net.head.out.weight)  # a head that is not zero
    path = save_checkpoint(tmp_path / "c.pt", net, train={"iterations": 0},
                           progress={"iteration": 0})
    loaded, doc = load_checkpoint(path)
    assert loaded.cfg == TINY and doc["version"] == FORMAT_VERSION
    g = random_dag(10, 0.3, seed=0)
    assert np.array_equal(_logits(net, g), _logits(loaded, g))


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


def test_windowed_attention_equals_dense_when_the_window_covers_the_graph():
    torch.manual_seed(1)
    g = generate("layered", 40, seed=3)
    dense = PolicyNet(TINY)
    torch.nn.init.normal_(dense.head.out.weight)
    windowed = PolicyNet(ModelConfig(dim=16, static_layers=1, cond_dim=8, dense_nodes=0,
                                     window=64))
    windowed.load_state_dict(dense.state_dict())
    assert np.allclose(_logits(dense, g), _logits(windowed, g), atol=1e-5)
    small = PolicyNet(ModelConfig(dim=16, static_layers=1, cond_dim=8, dense_nodes=0, window=8))
    assert np.all(np.isfinite(_logits(small, g)))  # several windows


def test_solver_objectives():
    g = random_dag(20, 0.15, seed=1)
    for obj in (Makespan(lanes=4), Makespan(lanes=2, comm=Comm(a=1e-4, b=0.5)), PeakMemory(),
                PlannedMemory(), StageCost(stages=3)):
        res = solve(g, obj, solver="gflownet", samples=40, batch=20, top_k=3, seed=0,
                    seeds=False)
        assert 1 <= len(res) <= 3
        for s in res:
            obj.evaluate(g, s)  # valid
        assert res.info["samples"] == 40 or (res.proven and res.info["samples"] == 20)
        assert res.info["samples_per_s"] > 0
        assert res.value == obj.evaluate(g, res.best)
        if not res.proven:
            assert res.value <= res.info["mean_value"] + 1e-9


def test_seeds_make_it_never_worse_than_the_prior_order():
    g = generate("layered", 60, seed=5)
    for lanes in (2, 4):
        obj = Makespan(lanes=lanes)
        res = GFlowNetSolver(samples=8).solve(g, obj, seed=0)
        assert res.value <= get_solver("list").solve(g, obj).value + 1e-9
        assert res.info["best_from"] in ("seed", "sample")
    nos = GFlowNetSolver(samples=8, seeds=False).solve(g, Makespan(lanes=2))
    assert nos.info["best_from"] == "sample"


def test_same_seed_same_schedules():
    g = random_dag(15, 0.2, seed=2)
    a = GFlowNetSolver(samples=20).solve(g, Makespan(lanes=2), seed=3)
    b = GFlowNetSolver(samples=20).solve(g, Makespan(lanes=2), seed=3)
    assert a.schedules == b.schedules


def test_bad_config():
    with pytest.raises(ValueError, match="sigma > 0"):
        GFlowNetSolver(sigma=0.0).solve(random_dag(5, 0.3, seed=0))


def test_train_command_and_resume(tmp_path, capsys, one_thread):
    from tvm_sched.datasets.io import save_json

    out = tmp_path / "t.pt"
    handed = tmp_path / "model.json"
    save_json(generate("layered", 90, seed=1), handed)
    common = ["--out", str(out), "--nodes", "6", "10", "--batch", "4", "--dim", "16",
              "--static-layers", "1", "--cond-dim", "8", "--log-every", "1",
              "--graphs", str(handed), "--graphs-frac", "0.5", "--graphs-max-nodes", "30"]
    assert train_main(common + ["--iterations", "2"]) == 0
    _, doc = load_checkpoint(out)
    assert doc["progress"]["iteration"] == 2 and "optimizer" in doc
    assert doc["train"]["graphs"] == [str(handed)]
    assert train_main(common + ["--iterations", "3", "--resume", str(out), "--loss", "tb"]) == 0
    _, doc = load_checkpoint(out)
    assert doc["progress"]["iteration"] == 3
    text = capsys.readouterr().out
    assert "[3/3] loss" in text and "graphs: 1 handed (90 nodes)" in text
    with pytest.raises(CheckpointError, match="--dim 32 differs"):
        train_main(["--out", str(out), "--resume", str(out), "--dim", "32"])
    res = GFlowNetSolver(checkpoint=str(out), samples=8).solve(random_dag(8, 0.3, seed=1),
                                                               PeakMemory())
    assert len(res) == 1


def test_graph_source_windows_large_handed_graphs_and_checks_its_arguments():
    big = generate("layered", 200, seed=0)
    src = GraphSource(["layered"], (5, 8), [big], 1.0, 40, np.random.default_rng(0))
    for _ in range(5):
        g = src.draw()
        assert 25 <= g.num_nodes <= 40
    with pytest.raises(ValueError, match="unknown families"):
        GraphSource(["nope"], (5, 8), [], 0.0, 40, np.random.default_rng(0))
    with pytest.raises(ValueError, match="--nodes"):
        GraphSource(["layered"], (9, 8), [], 0.0, 40, np.random.default_rng(0))


def test_training_code_imports_no_tvm_frontend_or_zoo():
    code = ("import sys, tvm_sched.solvers.gflownet.train\n"
            "bad = [m for m in sys.modules if m == 'tvm' or m.startswith(('tvm.', "
            "'tvm_sched.relax', 'tvm_sched.zoo', 'tvm_sched.frontend'))]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
