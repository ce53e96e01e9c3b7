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

from tvm_sched.cost import Makespan, Objective, StageCost
from tvm_sched.graph import OpGraph, priority_order
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import (
    Candidate,
    Deadline,
    Pacer,
    Proposal,
    Solver,
    default_samples,
    is_order_memory,
    meets_bound,
)
from tvm_sched.solvers.decoding import EventDecoded, list_schedule
from tvm_sched.solvers.gflownet.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from tvm_sched.solvers.gflownet.features import GraphEncoding, condition, encode_graph
from tvm_sched.solvers.gflownet.model import PolicyNet, attention_blocks
from tvm_sched.solvers.gflownet.sampler import race_orders

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
def node_logits(net: PolicyNet, enc: GraphEncoding, *, lanes: int, memory: bool,
                comm: bool = False, sigma: float, device: str | torch.device = "cpu"
                ) -> np.ndarray:
    """The policy's node logits (n,) float64 for one graph, task and temperature.

    Parameters
    ----------
    net
        The policy.
    enc
        The graph's encoding.
    lanes
        Lanes of the task.
    memory
        A memory task (else makespan).
    comm
        Whether the task has a communication cost.
    sigma
        The reward temperature the policy is conditioned on.
    device
        Where the network runs (``net`` must already be there).

    Returns
    -------
    numpy.ndarray
        (n,) float64 on the CPU.
    """
    dev = torch.device(device)
    c = net.embed_condition(condition(float(np.log(sigma)), memory, lanes, comm).to(dev))
    h = net.encode(torch.as_tensor(enc.static, device=dev), attention_blocks(enc, net.cfg, dev), c)
    prior = torch.as_tensor(enc.prior(memory), dtype=torch.float32, device=dev)
    return net.logits(h, prior, c).double().cpu().numpy()


def sample_schedules(net: PolicyNet, graph: OpGraph, *, lanes: int, memory: bool, comm=None,
                     sigma: float = 0.01, samples: int = 1000, batch: int = 250, seed: int = 0,
                     device: str | torch.device = "cpu") -> dict:
    """Draw ``samples`` orders and score them (a helper for scripts; the solver paces itself).

    Parameters
    ----------
    net
        The policy.
    graph
        The graph.
    lanes
        Lanes of the task.
    memory
        A memory task (else makespan).
    comm
        The communication cost of a makespan task, or ``None``.
    sigma
        The reward temperature the policy is conditioned on.
    samples
        Orders to draw.
    batch
        Orders drawn per call of the sampler.
    seed
        Seed of the sampler.
    device
        Where the network runs.

    Returns
    -------
    dict
        ``orders`` (S, n) int64, ``lanes`` (S, n) int64 (of the list decoding; zeros for
        memory), ``makespan`` (S,) (None for memory), ``seconds`` and ``samples_per_s``.
    """
    from tvm_sched.cost.makespan import times_batch

    t0 = time.perf_counter()
    enc = encode_graph(graph, lanes)
    lg = node_logits(net, enc, lanes=lanes, memory=memory, comm=comm is not None, sigma=sigma,
                     device=device)
    rng = np.random.default_rng(seed)
    orders = np.concatenate([race_orders(graph, lg, min(batch, samples - a), rng)
                             for a in range(0, samples, batch)])
    seconds = time.perf_counter() - t0
    if memory:
        lane, ms = np.zeros_like(orders), None
    else:
        start, lane = times_batch(graph, orders, lanes=lanes, comm=comm)
        ms = (start + graph.duration[None, :]).max(axis=1)
    return {"orders": orders, "lanes": lane, "makespan": ms, "seconds": seconds,
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
        samples = default_samples(cfg.samples, deadline)
        if samples < 1 or cfg.batch < 1 or cfg.probe < 1 or not cfg.sigma > 0:
            raise ValueError(f"samples, batch and probe must be >= 1 and sigma > 0, got "
                             f"{cfg.samples}, {cfg.batch}, {cfg.probe}, {cfg.sigma}")
        if graph.num_nodes == 0:
            return Proposal([Candidate(Schedule(order=()))])
        t0 = time.perf_counter()
        dev = torch.device(device)
        net, _ = cached_model(cfg.checkpoint or DEFAULT_CHECKPOINT, dev)
        makespan = isinstance(objective, Makespan)
        memory = not makespan  # memory objectives, and the stage fallback
        lanes = objective.lanes if makespan else 1
        comm = makespan and objective.comm is not None
        enc = encode_graph(graph, lanes)
        logits = node_logits(net, enc, lanes=lanes, memory=memory, comm=comm, sigma=cfg.sigma,
                             device=dev)
        encode_s = time.perf_counter() - t0
        claim = objective.order_based
        lb = objective.lower_bound(graph)
        pool = _TopK(max(1, cfg.top_k))
        seeds: list[Candidate] = []
        if cfg.seeds:
            seed_order = priority_order(graph, enc.prior(memory))[None]
            pool.add(seed_order, objective.evaluate_orders(graph, seed_order), "seed")
            if makespan:  # Graham's event-driven list schedule (its own start times and lanes)
                ls = list_schedule(graph, lanes, comm=objective.comm)
                ls = objective.complete(graph, ls)
                seeds.append(Candidate(Schedule(order=ls.order, start=ls.start, lane=ls.lane,
                                                info={"origin": "seed",
                                                      "decoding": "event-driven"}),
                                       objective.value(graph, ls)))
            deadline.offer(_merge(pool.candidates(claim), seeds))
        pacer = Pacer(deadline, cfg.batch, probe=cfg.probe)
        drawn, total, distinct = 0, 0.0, set()
        seed_best = min((c.claimed for c in seeds), default=float("inf"))
        # each sample also decoded event-driven (tvm_sched.solvers.decoding.EventDecoded)
        events = EventDecoded(cfg.top_k) if EventDecoded.applies(objective) else None

        def best_now() -> list[Candidate]:
            return _merge(pool.candidates(claim), seeds + (events.candidates() if events else []))

        while not meets_bound(min(pool.best, seed_best, events.best if events else seed_best),
                              lb):
            size = pacer.next_size(samples - drawn) or (0 if drawn else 1)
            if size == 0:
                break
            orders = race_orders(graph, logits, size, rng)
            vals = objective.evaluate_orders(graph, orders)
            better = events.add(graph, orders, objective) if events is not None else False
            pacer.done(size)
            drawn += size
            total += float(vals.sum())
            distinct.update(hash(row.tobytes()) for row in orders)  # 8 bytes per order
            if pool.add(orders, vals, "sample") or better:
                deadline.offer(best_now(), samples=drawn)
        seconds = time.perf_counter() - t0
        cands = best_now()
        info = {"samples": drawn, "batches": pacer.batches,
                "samples_per_s": drawn / max(seconds, 1e-9), "encode_s": encode_s,
                "mean_value": total / drawn if drawn else float("nan"),
                "distinct": len(distinct), "sigma": cfg.sigma,
                "best_from": cands[0].schedule.info["origin"],
                "best_decoding": cands[0].schedule.info.get("decoding", "serial"),
                "device": str(dev), "checkpoint": Path(cfg.checkpoint or DEFAULT_CHECKPOINT).name}
        if isinstance(objective, StageCost):
            info["note"] = "stage: orders of the memory policy, chunked by the objective"
        elif not (makespan or is_order_memory(objective)):  # pragma: no cover - guarded by supports
            raise ValueError(f"gflownet has no policy for {objective.name!r}")
        return Proposal(cands, info=info)


def _merge(samples: list[Candidate], seeds: list[Candidate]) -> list[Candidate]:
    """Candidates best first by claimed value (ties: samples first)."""
    if not seeds:
        return samples
    big = float("inf")
    return sorted(samples + seeds, key=lambda c: big if c.claimed is None else c.claimed)


class _TopK:
    """The ``k`` best distinct orders seen so far (ties: the first seen)."""

    def __init__(self, k: int):
        self.k = k
        self.items: dict[bytes, tuple[float, int, np.ndarray, str]] = {}
        self.count = 0

    def add(self, orders: np.ndarray, values: np.ndarray, origin: str) -> bool:
        """Add a batch; True when the best value improved."""
        before = self.best
        for i in np.argsort(values, kind="stable")[: self.k]:
            key = orders[i].tobytes()
            if key not in self.items:
                self.items[key] = (float(values[i]), self.count, orders[i].copy(), origin)
                self.count += 1
        if len(self.items) > self.k:
            keep = sorted(self.items.items(), key=lambda kv: kv[1][:2])[: self.k]
            self.items = dict(keep)
        return self.best < before

    @property
    def best(self) -> float:
        return min((v for v, *_ in self.items.values()), default=float("inf"))

    def candidates(self, claim: bool) -> list[Candidate]:
        ranked = sorted(self.items.values(), key=lambda t: t[:2])
        return [Candidate(Schedule(order=o, info={"origin": origin}), v if claim else None)
                for v, _, o, origin in ranked]
