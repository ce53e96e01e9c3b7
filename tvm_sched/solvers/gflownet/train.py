"""Train the GFlowNet sampler: ``python -m tvm_sched.solvers.gflownet.train [options]``.

Each iteration draws one graph, one task and one temperature, encodes the graph once, draws
``--batch`` orders from the current one-shot policy (:mod:`.sampler`; a share ``--epsilon`` of
them at half the logits, for exploration), and takes one Adam step on the log-partition-variance
loss (``--loss vargrad``, the paper's) or on trajectory balance with a learned
``log Z(graph, sigma)`` (``--loss tb``). The states form a tree, so ``log P_B = 0``.

- **Graphs**: a mixture of the generated families (``--families``, ``--nodes LO HI`` nodes, a fresh
  seed each time) and, with ``--graphs FILE ...`` and ``--graphs-frac > 0``, graphs handed in as
  files (``.json``, ``.stg``, ``.gml``; e.g. operator graphs extracted from models by
  ``benchmarks/zoo_graphs.py``). This module never extracts graphs itself (it imports no TVM).
  Handed graphs larger than ``--graphs-max-nodes`` are replaced by a random window of
  25..``--graphs-max-nodes`` consecutive nodes of their topological order.
- **Tasks**: makespan on a lane count drawn from ``--lanes``, or, with probability
  ``--memory-frac``, the one-lane peak-memory task.
- **Temperature**: sigma log-uniform in ``[--sigma-min, --sigma-max]``, fed to the network as
  log sigma.

Checkpoints (``--out``) carry the format version, the model config, the training arguments and
progress, and the optimiser state; ``--resume PATH`` continues from one (same model config),
counting iterations and seconds from where it stopped. ``tvm-sched train-gflownet`` uses
:func:`add_arguments` and :func:`run`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from tvm_sched.cost import Makespan, PeakMemory
from tvm_sched.graph import OpGraph
from tvm_sched.solvers.gflownet.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from tvm_sched.solvers.gflownet.features import encode_graph
from tvm_sched.solvers.gflownet.loss import log_partition_variance, trajectory_balance
from tvm_sched.solvers.gflownet.model import ModelConfig, PolicyNet, attention_blocks
from tvm_sched.solvers.gflownet.reward import Task, log_reward
from tvm_sched.solvers.gflownet.sampler import order_log_prob, race_orders

__all__ = ["add_arguments", "run", "main", "GraphSource", "train_step", "read_graphs"]


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the training options to ``p`` (also used by ``tvm-sched train-gflownet``).

    Parameters
    ----------
    p
        The parser to extend.

    Returns
    -------
    argparse.ArgumentParser
        ``p``.
    """
    p.add_argument("--out", type=Path, default=Path("gflownet.pt"), help="checkpoint to write")
    p.add_argument("--resume", type=Path, default=None, help="checkpoint to continue from")
    p.add_argument("--iterations", type=int, default=2000, help="total iterations (resumed "
                   "runs count the earlier ones)")
    p.add_argument("--time-limit-s", type=float, default=None, help="stop after this long")
    p.add_argument("--batch", type=int, default=32, help="orders per iteration")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss", choices=["vargrad", "tb"], default="vargrad")
    p.add_argument("--epsilon", type=float, default=0.1,
                   help="share of orders drawn at half the logits (exploration)")
    p.add_argument("--families", nargs="+", default=["erdos_renyi", "layered"])
    p.add_argument("--nodes", nargs=2, type=int, default=[20, 50], metavar=("LO", "HI"))
    p.add_argument("--graphs", nargs="*", type=Path, default=[],
                   help="graph files to train on besides the generated families")
    p.add_argument("--graphs-frac", type=float, default=0.0, help="share of --graphs draws")
    p.add_argument("--graphs-max-nodes", type=int, default=75)
    p.add_argument("--lanes", nargs="+", type=int, default=[2, 3, 4, 6, 8])
    p.add_argument("--memory-frac", type=float, default=0.2)
    p.add_argument("--sigma-min", type=float, default=0.005)
    p.add_argument("--sigma-max", type=float, default=1.0)
    for f in fields(ModelConfig):
        p.add_argument("--" + f.name.replace("_", "-"), type=int, default=None,
                       help=f"model {f.name} (default {f.default})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--save-every", type=int, default=200)
    return p


def read_graphs(paths: list[Path]) -> list[OpGraph]:
    """The graphs of ``paths`` (any format :func:`tvm_sched.datasets.read_graph` reads).

    Parameters
    ----------
    paths
        Graph files.

    Returns
    -------
    list of OpGraph
        One per file, in order, ``meta["name"]`` set to the file's stem.
    """
    from tvm_sched.datasets import read_graph

    out = []
    for p in paths:
        g = read_graph(p)
        out.append(g.replace(meta=dict(g.meta, name=Path(p).stem)))
    return out


class GraphSource:
    """Draws training graphs: generated families and (optionally) handed graphs or windows.

    Parameters
    ----------
    families
        Generator families (:data:`tvm_sched.datasets.generators.FAMILIES`).
    nodes
        ``(lo, hi)``: sizes of the generated graphs, inclusive.
    graphs
        Handed graphs to draw from besides the families.
    graphs_frac
        Share of draws taken from ``graphs`` (0 when there are none).
    graphs_max_nodes
        A larger handed graph is cut to a random window of its topological order (at least 25
        nodes).
    rng
        The generator of every draw.

    Raises
    ------
    ValueError
        An unknown family or a bad node range.
    """

    def __init__(self, families: list[str], nodes: tuple[int, int], graphs: list[OpGraph],
                 graphs_frac: float, graphs_max_nodes: int, rng: np.random.Generator):
        from tvm_sched.datasets.generators import FAMILIES

        bad = sorted(set(families) - set(FAMILIES))
        if bad:
            raise ValueError(f"unknown families {bad}; choose from {', '.join(FAMILIES)}")
        if not 1 <= nodes[0] <= nodes[1]:
            raise ValueError(f"--nodes must satisfy 1 <= LO <= HI, got {nodes}")
        self.families, self.nodes, self.graphs = families, nodes, graphs
        self.frac = graphs_frac if graphs else 0.0
        self.max_nodes, self.rng = max(25, graphs_max_nodes), rng

    def draw(self) -> OpGraph:
        """The next training graph.

        Returns
        -------
        OpGraph
            A handed graph (or a window of it), or a freshly generated one.
        """
        from tvm_sched.datasets.generators import generate

        rng = self.rng
        if rng.random() < self.frac:
            g = self.graphs[int(rng.integers(len(self.graphs)))]
            if g.num_nodes > self.max_nodes:
                k = int(rng.integers(25, self.max_nodes + 1))
                a = int(rng.integers(0, g.num_nodes - k + 1))
                g = g.subgraph(g.topological_order[a: a + k].tolist())
            return g
        fam = self.families[int(rng.integers(len(self.families)))]
        n = int(rng.integers(self.nodes[0], self.nodes[1] + 1))
        return generate(fam, n, seed=int(rng.integers(2**31)))


def train_step(net: PolicyNet, opt: torch.optim.Optimizer, graph: OpGraph, task: Task,
               sigma: float, *, batch: int, rng: np.random.Generator, loss_kind: str = "vargrad",
               epsilon: float = 0.1, device: str | torch.device = "cpu") -> dict:
    """One optimisation step on ``batch`` orders of ``graph`` at ``sigma``.

    Parameters
    ----------
    net
        The policy (in training mode).
    opt
        Its optimiser.
    graph
        The graph of this step.
    task
        What the orders are rewarded for.
    sigma
        The reward temperature.
    batch
        Orders drawn.
    rng
        The generator of the draws.
    loss_kind
        ``"vargrad"`` (log-partition variance) or ``"tb"`` (trajectory balance).
    epsilon
        Expected share of the orders drawn at half the logits (exploration).
    device
        Where the network runs.

    Returns
    -------
    dict
        ``loss`` and ``quality`` (lane efficiency for makespan, reference peak over mean peak
        for memory).
    """
    dev = torch.device(device)
    enc = encode_graph(graph, task.lanes)
    c = net.embed_condition(task.condition(math.log(sigma)).to(dev))
    h = net.encode(torch.as_tensor(enc.static, device=dev), attention_blocks(enc, net.cfg, dev), c)
    prior = torch.as_tensor(enc.prior(task.memory), dtype=torch.float32, device=dev)
    logits = net.logits(h, prior, c)
    lg = logits.detach().double().cpu().numpy()
    explore = int(rng.binomial(batch, epsilon)) if epsilon > 0 else 0
    orders = race_orders(graph, lg, batch - explore, rng)
    if explore:
        orders = np.concatenate([orders, race_orders(graph, 0.5 * lg, explore, rng)])
    log_pf = order_log_prob(graph, logits.double(), orders)
    log_r, values = log_reward(graph, task, orders, sigma, enc.mem_ref)
    log_r_t = torch.as_tensor(log_r, dtype=torch.float64, device=dev)
    zero = torch.zeros_like(log_pf)
    if loss_kind == "tb":
        loss = trajectory_balance(net.log_partition(h, c, sigma).double(), log_r_t, zero, log_pf)
    else:
        loss = log_partition_variance(log_r_t, zero, log_pf)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    if task.memory:
        quality = float(enc.mem_ref / values.mean())
    else:
        quality = float(graph.duration.sum() / values.mean()) / task.lanes  # mean efficiency
    return {"loss": float(loss.detach()), "quality": quality}


def _model_config(args, resumed: dict | None) -> ModelConfig:
    if resumed is not None:
        cfg = ModelConfig(**resumed["model"])
        for f in fields(ModelConfig):
            v = getattr(args, f.name)
            if v is not None and v != getattr(cfg, f.name):
                raise CheckpointError(f"--{f.name.replace('_', '-')} {v} differs from the "
                                      f"resumed checkpoint's {getattr(cfg, f.name)}")
        return cfg
    return ModelConfig(**{f.name: getattr(args, f.name) for f in fields(ModelConfig)
                          if getattr(args, f.name) is not None})


def run(args: argparse.Namespace) -> Path:
    """Train as ``args`` says (see :func:`add_arguments`); returns the checkpoint path.

    Prints progress and writes the checkpoint every ``save_every`` iterations and at the end.

    Parameters
    ----------
    args
        The parsed options of :func:`add_arguments`.

    Returns
    -------
    Path
        ``args.out``.

    Raises
    ------
    CheckpointError
        The resumed checkpoint is unreadable or stale, or a model option differs from it.
    ValueError
        An unknown family or a bad node range.
    """
    torch.set_num_threads(max(1, args.threads))
    device = torch.device(args.device)
    resumed = read_checkpoint(args.resume) if args.resume else None
    cfg = _model_config(args, resumed)
    if resumed is not None:
        net, _ = load_checkpoint(args.resume, device)
        net.train()
    else:
        torch.manual_seed(args.seed)
        net = PolicyNet(cfg).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    progress = {"iteration": 0, "seconds": 0.0, "history": []}
    if resumed is not None:
        if "optimizer" in resumed:
            opt.load_state_dict(resumed["optimizer"])
        progress = dict(resumed.get("progress") or progress)
        progress["history"] = list(progress.get("history", []))
    start_it = int(progress["iteration"])
    rng = np.random.default_rng(args.seed + 7919 * start_it)
    handed = read_graphs(list(args.graphs))
    if handed:
        print(f"graphs: {len(handed)} handed ({', '.join(str(g.num_nodes) for g in handed)} "
              "nodes)", flush=True)
    source = GraphSource(args.families, tuple(args.nodes), handed, args.graphs_frac,
                         args.graphs_max_nodes, rng)
    train_doc = {k: (str(v) if isinstance(v, Path) else
                     [str(x) for x in v] if k == "graphs" else v)
                 for k, v in vars(args).items() if k not in ("func",)}
    nparams = sum(p.numel() for p in net.parameters())
    print(f"training {nparams} parameters ({cfg}) from iteration {start_it} to "
          f"{args.iterations}, loss {args.loss}, batch {args.batch}", flush=True)
    t0 = time.perf_counter()
    base_s = float(progress["seconds"])
    window: list[dict] = []
    it = start_it

    def save() -> None:
        progress.update(iteration=it, seconds=base_s + time.perf_counter() - t0)
        save_checkpoint(args.out, net, train=train_doc, progress=progress,
                        optimizer=opt.state_dict())

    while it < args.iterations:
        if args.time_limit_s is not None and time.perf_counter() - t0 >= args.time_limit_s:
            print(f"time limit of {args.time_limit_s:g} s reached", flush=True)
            break
        graph = source.draw()
        if rng.random() < args.memory_frac:
            task = Task(PeakMemory())
        else:
            task = Task(Makespan(lanes=int(args.lanes[int(rng.integers(len(args.lanes)))])))
        sigma = float(math.exp(rng.uniform(math.log(args.sigma_min), math.log(args.sigma_max))))
        out = train_step(net, opt, graph, task, sigma, batch=args.batch, rng=rng,
                         loss_kind=args.loss, epsilon=args.epsilon, device=device)
        out.update(task=task.kind, lanes=task.lanes, sigma=sigma, n=graph.num_nodes)
        window.append(out)
        it += 1
        if it % args.log_every == 0 or it == args.iterations:
            el = time.perf_counter() - t0
            ms = [w["quality"] for w in window if w["task"] == "makespan"]
            mem = [w["quality"] for w in window if w["task"] == "memory"]
            rec = {"iteration": it, "seconds": round(base_s + el, 1),
                   "loss": float(np.mean([w["loss"] for w in window])),
                   "makespan_efficiency": float(np.mean(ms)) if ms else None,
                   "memory_ratio": float(np.mean(mem)) if mem else None}
            progress["history"].append(rec)
            eta = (args.iterations - it) * el / max(it - start_it, 1)
            print(f"[{it}/{args.iterations}] loss {rec['loss']:.3g}  "
                  f"lane efficiency {rec['makespan_efficiency'] or float('nan'):.3f}  "
                  f"memory ref/peak {rec['memory_ratio'] or float('nan'):.3f}  "
                  f"{(it - start_it) / el:.2f} it/s  eta {eta:.0f} s", flush=True)
            window = []
        if it % args.save_every == 0:
            save()
    save()
    print(f"saved {args.out} after {it} iterations, {progress['seconds']:.0f} s of training",
          flush=True)
    return Path(args.out)


def main(argv: list[str] | None = None) -> int:
    """The command line: parse ``argv`` and train.

    Parameters
    ----------
    argv
        Arguments; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status, 0.
    """
    p = argparse.ArgumentParser(prog="python -m tvm_sched.solvers.gflownet.train",
                                description="Train the GFlowNet scheduler (see the module doc).")
    add_arguments(p)
    args = p.parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

