"""``GFlowNetSolver``: sample schedules from a trained GFlowNet (registry name ``"gflownet"``).

Zhang, Rainone, Peschl, Bondesan, "Robust Scheduling with GFlowNets", ICLR 2023: a policy
trained so that schedules are drawn with probability proportional to ``exp(reward / sigma)``, at
a temperature ``sigma`` chosen at inference, conditioned on the graph. For the scale of real
models (hundreds to thousands of operators) the action space is **one-shot priority sampling**
(Jeon et al., "Neural DAG Scheduling via One-Shot Priority Sampling", ICLR 2023): the network
scores every node once per (graph, sigma, task) (:mod:`.model`) and orders are drawn by an exact
vectorised exponential race (:mod:`.sampler`), each decoded by the objective (list scheduling on
``m`` lanes for makespan). Sampling cost is then ``O(B (n + edges))`` per batch of ``B`` orders
plus the objective's evaluation -- no network call per step. The reward the policy was trained
on is the serial decoding's; on makespan without communication each sample is *also* decoded by
Graham's event-driven rule (its positions as priorities,
:class:`~tvm_sched.solvers.decoding.EventDecoded`) and the better schedule is kept -- a
post-processing of the samples (``info["best_decoding"]`` says which won), which costs a Python
list schedule per sample (about 5 ms at 277 nodes) and was worth 4% of makespan at 2 lanes on
real models' operator graphs.

Objectives:

- ``makespan`` on ``m`` lanes (communication cost included): the makespan policy, orders decoded
  by list scheduling;
- every order-based memory objective (``peak_memory``, ``planned_memory``, an arena planner):
  the memory policy (trained on the liveness peak), samples ranked by the objective's own exact
  ``evaluate_orders``;
- ``stage``: a fallback -- orders of the memory policy, each split into stages by the objective.

The solver supplies only its draw: the policy's task is read off the objective
(:meth:`.reward.Task.of`), and drawing, decoding, exact values, the top k and the pacing are the
one sampling loop of :mod:`tvm_sched.solvers.sampling`.

Budgets (:mod:`tvm_sched.solvers.base`): ``budget=None`` draws exactly ``samples`` orders
(1,000 by default); with a budget, batches are sized from the measured rate (a probe of
``probe`` orders first) until the budget, ``samples`` (unlimited by default) or the objective's
lower bound is reached. Ctrl-C returns the best so far.

With ``seeds=True`` the policy's prior order (critical-path priorities for makespan, also as
Graham's event-driven list schedule; the best memory heuristic's order for memory) is scored too,
so the result is never worse than those heuristics;
``info["best_from"]`` says whether the best came from a sample or from the seed.

``info`` reports ``samples``, ``batches``, ``samples_per_s`` (encoding included),
``encode_s``, ``mean_value`` (of the samples, serial decoding), ``distinct``, ``sigma``,
``best_from``, ``best_decoding``, ``device`` and the checkpoint's file name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tvm_sched.cost import Objective, StageCost
from tvm_sched.graph import OpGraph, priority_order
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import Candidate, Deadline, Proposal, Solver, default_samples
from tvm_sched.solvers.decoding import list_schedule
from tvm_sched.solvers.gflownet.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from tvm_sched.solvers.gflownet.features import GraphEncoding, encode_graph
from tvm_sched.solvers.gflownet.model import PolicyNet, attention_blocks
from tvm_sched.solvers.gflownet.reward import Task
from tvm_sched.solvers.gflownet.sampler import race_orders
from tvm_sched.solvers.sampling import sample_orders

__all__ = ["GFlowNetSolver", "cached_model", "node_logits", "sample_schedules"]

_CACHE: dict[tuple[str, float, str], tuple[PolicyNet, dict]] = {}


def cached_model(path: str | Path, device: torch.device) -> tuple[PolicyNet, dict]:
    """Load a checkpoint once per process (keyed by path, modification time and device).

    Parameters
    ----------
    path
        The checkpoint file.
    device
        Where the network lives.

    Returns
    -------
    tuple
        ``(net, doc)`` as :func:`~tvm_sched.solvers.gflownet.checkpoint.load_checkpoint`
        returns them (shared between callers: do not modify).

    Raises
    ------
    CheckpointError
        The checkpoint is missing, stale or does not fit its config.
    """
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime if p.exists() else 0.0, str(device))
    if key not in _CACHE:
        _CACHE[key] = load_checkpoint(p, device)
    return _CACHE[key]


@torch.no_grad()
def node_logits(net: PolicyNet, enc: GraphEncoding, task: Task, *, sigma: float,
                device: str | torch.device = "cpu") -> np.ndarray:
    """The policy's node logits (n,) float64 for one graph, task and temperature.

    Parameters
    ----------
    net
        The trained policy.
    enc
        The graph's encoding (:func:`~tvm_sched.solvers.gflownet.features.encode_graph`).
    task
        The task the policy is conditioned on.
    sigma
        The reward temperature.
    device
        Where the policy runs.

    Returns
    -------
    np.ndarray
        (n,) float64 on the CPU, one logit per node.
    """
    dev = torch.device(device)
    c = net.embed_condition(task.condition(float(np.log(sigma))).to(dev))
    h = net.encode(torch.as_tensor(enc.static, device=dev), attention_blocks(enc, net.cfg, dev), c)
    prior = torch.as_tensor(enc.prior(task.memory), dtype=torch.float32, device=dev)
    return net.logits(h, prior, c).double().cpu().numpy()


def sample_schedules(net: PolicyNet, graph: OpGraph, objective: Objective, *,
                     sigma: float = 0.01, samples: int = 1000, batch: int = 250, seed: int = 0,
                     device: str | torch.device = "cpu") -> dict:
    """Draw ``samples`` orders for ``objective`` and score them (a helper for scripts; the
    solver paces itself).

    Parameters
    ----------
    net
        The trained policy.
    graph
        The graph.
    objective
        The objective the orders are drawn for and valued by.
    sigma
        The reward temperature.
    samples
        How many orders to draw.
    batch
        The largest batch of orders drawn at once.
    seed
        Seed of the random generator.
    device
        Where the policy runs.

    Returns
    -------
    dict
        ``orders`` (S, n) int64, ``lanes`` (S, n) int64 (of the list decoding; zeros for a
        memory task), ``makespan`` (S,) (None for a memory task), ``values`` (S,) (the
        objective's exact values), ``seconds`` and ``samples_per_s``.

    Raises
    ------
    ValueError
        The policy has no task for ``objective`` (see ``Task.of``), e.g. ``pipeline``.
    """
    from tvm_sched.cost.makespan import times_batch

    t0 = time.perf_counter()
    task = Task.of(objective)
    enc = encode_graph(graph, task.lanes)
    lg = node_logits(net, enc, task, sigma=sigma, device=device)
    rng = np.random.default_rng(seed)
    orders = np.concatenate([race_orders(graph, lg, min(batch, samples - a), rng)
                             for a in range(0, samples, batch)])
    seconds = time.perf_counter() - t0
    if task.memory:
        lane, ms = np.zeros_like(orders), None
    else:
        start, lane = times_batch(graph, orders, lanes=task.lanes, comm=task.comm)
        ms = (start + graph.duration[None, :]).max(axis=1)
    return {"orders": orders, "lanes": lane, "makespan": ms,
            "values": objective.evaluate_orders(graph, orders), "seconds": seconds,
            "samples_per_s": samples / max(seconds, 1e-9)}


class GFlowNetSolver(Solver):
    """Samples from a trained GFlowNet and keeps the best by the objective (see the module doc).

    Examples
    --------
    >>> from tvm_sched.datasets.generators import generate
    >>> g = generate("layered", 30, seed=0)
    >>> res = GFlowNetSolver(samples=16, seeds=False).solve(g, "planned_memory")
    >>> res.best.is_valid(g), res.info["samples"]
    (True, 16)
    """

    name = "gflownet"
    objectives = ("makespan", "peak_memory", "planned_memory", "stage")

    @dataclass(frozen=True)
    class Config:
        #: Orders drawn (fewer when the budget runs out or the lower bound is met); None:
        #: 1,000 without a budget, as many as the budget allows with one.
        samples: int | None = None
        #: Temperature of the reward the orders are drawn for (lower: closer to the best). 0.001
        #: had the lowest best-of-1,000 gap on validation graphs (generated, 50 nodes, seeds
        #: 40,000+; never STG) among 0.0005, 0.001 and 0.002.
        sigma: float = 0.001
        #: Largest batch of orders drawn at once.
        batch: int = 250
        #: Size of the first, timed batch under a budget.
        probe: int = 16
        #: Checkpoint file; None: the one shipped with the package.
        checkpoint: str | None = None
        #: Distinct schedules returned, best first.
        top_k: int = 1
        #: Also score the policy's prior order (see the module docstring).
        seeds: bool = True

    def _propose(self, graph: OpGraph, objective: Objective, deadline: Deadline,
                 rng: np.random.Generator, device) -> Proposal:
        cfg = self.config
        if not cfg.sigma > 0:
            raise ValueError(f"sigma > 0 is required, got {cfg.sigma}")
        task = Task.of(objective)
        if graph.num_nodes == 0:
            return Proposal([Candidate(Schedule(order=()))])
        t0 = time.perf_counter()
        dev = torch.device(device)
        net, _ = cached_model(cfg.checkpoint or DEFAULT_CHECKPOINT, dev)
        enc = encode_graph(graph, task.lanes)
        logits = node_logits(net, enc, task, sigma=cfg.sigma, device=dev)
        encode_s = time.perf_counter() - t0
        seeds: list[Candidate] = []
        if cfg.seeds:
            seed_order = priority_order(graph, enc.prior(task.memory))
            seeds.append(Candidate(Schedule(order=seed_order, info={"origin": "seed"}),
                                   float(objective.evaluate_orders(graph, seed_order[None])[0])))
            if not task.memory:  # Graham's event-driven list schedule (own start times, lanes)
                ls = objective.complete(graph, list_schedule(graph, task.lanes, comm=task.comm))
                seeds.append(Candidate(Schedule(order=ls.order, start=ls.start, lane=ls.lane,
                                                info={"origin": "seed",
                                                      "decoding": "event-driven"}),
                                       objective.value(graph, ls)))

        def draw(rng: np.random.Generator, size: int) -> np.ndarray:
            return race_orders(graph, logits, size, rng)

        out = sample_orders(graph, objective, deadline, rng, draw,
                            samples=default_samples(cfg.samples, deadline), top_k=cfg.top_k,
                            batch=cfg.batch, probe=cfg.probe, seeds=seeds,
                            claim=objective.order_based)
        seconds = time.perf_counter() - t0
        info = {"samples": out.samples, "batches": out.batches,
                "samples_per_s": out.samples / max(seconds, 1e-9), "encode_s": encode_s,
                "mean_value": out.mean_value, "distinct": out.distinct, "sigma": cfg.sigma,
                "best_from": out.best_origin, "best_decoding": out.best_decoding,
                "device": str(dev), "checkpoint": Path(cfg.checkpoint or DEFAULT_CHECKPOINT).name}
        if isinstance(objective, StageCost):
            info["note"] = "stage: orders of the memory policy, chunked by the objective"
        return Proposal(out.candidates, info=info)
