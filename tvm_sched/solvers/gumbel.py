"""``GumbelSolver``: Gumbel-softmax stage scheduling (registry name ``"gumbel"``).

The comparison baseline of the GauS paper, in the manner of Liu et al., "Differentiable
Combinatorial Scheduling at Scale" (ICML 2024): each node has logits ``theta`` (n, D) over the
``D`` stages; a batch of ``samples`` soft assignments ``softmax((theta + Gumbel) / tau)`` is drawn
per step, and the loss is the expected stage cost of the batch -- ``ratio * LSE(stage loads) +
expected crossings`` -- plus the dependency constraint written on the cumulative assignment
(``P(s_v <= d) <= P(s_u <= d)`` for every edge ``u -> v`` and stage ``d``; this is the
"constrained" part: a consumer can never be more likely than its producer to sit at or before a
stage) with a penalty weight that grows each round. ``tau`` anneals geometrically from
``tau_start`` to ``tau_end``.

Every round the hard samples (argmax of the perturbed logits) are legalised by the same forward
repair as GauS (:func:`tvm_sched.solvers.gaus.legalize.repair_stages`), evaluated exactly, and
the best is kept. Unlike GauS there is no local-search polish unless ``Config.polish`` is set, so
the comparison measures the relaxations.

For the order objectives (``makespan``, ``peak_memory``) the solver is a cheap non-differentiable
extension: Gumbel-perturbed critical-path priorities (``bottom level / scale + tau * Gumbel``)
drawn by the one sampling loop (:mod:`tvm_sched.solvers.sampling`; the serial decoding only),
``samples`` orders per batch decoded by the objective's own semantics, the unperturbed order
scored first, the ``top_k`` best kept, until the budget or ``rounds`` batches are spent.

Budgets follow :mod:`tvm_sched.solvers.base`: with ``budget=None`` exactly ``rounds`` rounds (a
fixed amount of work: the same seed gives the same schedule on any machine); with a budget, rounds
until it is spent, each Adam step and each legalisation timed so that the loop stops when the
next one would not fit; always stopping when the best meets the lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tvm_sched.cost import Objective, StageCost
from tvm_sched.cost.stage import node_weights, stage_cost_batch, stages_from_order
from tvm_sched.graph import OpGraph, priority_order, priority_orders_batch
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import Candidate, Deadline, Proposal, Solver
from tvm_sched.solvers.gaus.legalize import (
    depth_levels,
    improve_stages,
    repair_stages,
    stage_order,
)
from tvm_sched.solvers.gaus.solver import RowAdam
from tvm_sched.solvers.sampling import sample_orders

__all__ = ["GumbelSolver"]


class GumbelSolver(Solver):
    """Gumbel-softmax relaxation of the stage partition (see the module docstring).

    Examples
    --------
    >>> from tvm_sched.testing.dags import diamond
    >>> res = GumbelSolver().solve(diamond(), StageCost(stages=2), budget=0.5)
    >>> res.best.is_valid(diamond(), latency=0.0)
    True
    """

    name = "gumbel"
    objectives = ("stage", "makespan", "peak_memory", "planned_memory")

    @dataclass(frozen=True)
    class Config:
        #: Gumbel samples per step (the batch).
        samples: int = 16
        #: Adam steps per round.
        steps: int = 60
        #: Rounds when ``budget`` is None (with a budget: until it is spent).
        rounds: int = 3
        lr: float = 0.1
        tau_start: float = 1.0
        tau_end: float = 0.1
        #: Rounds over which tau anneals (later rounds keep ``tau_end``).
        anneal_rounds: int = 20
        penalty: float = 1.0
        penalty_growth: float = 1.5
        #: Apply GauS's local-search polish to the best sample each round.
        polish: bool = False
        top_k: int = 1

    def _propose(self, graph: OpGraph, objective: Objective, deadline: Deadline,
                 rng: np.random.Generator, device) -> Proposal:
        cfg = self.config
        if graph.num_nodes == 0:
            return Proposal([Candidate(Schedule(order=()))])
        if not isinstance(objective, StageCost):
            return self._sample_orders(graph, objective, deadline, rng)
        n, D = graph.num_nodes, objective.stages
        start = deadline
        max_rounds = None if deadline.limited else cfg.rounds
        dev = torch.device(device)
        dtype = torch.float32
        levels = depth_levels(graph)
        w_np = node_weights(graph, objective.weight)
        # initialise the logits at the critical-path chunking (a legal schedule)
        s0 = stages_from_order(graph, priority_order(graph, graph.bottom_level), num_stages=D,
                               weight=objective.weight)
        best_s, best_v = s0, self._value(graph, objective, s0[None])[0]
        info = {"init_value": float(best_v), "rounds": 0, "history": [(0.0, float(best_v))]}
        lb = float(objective.lower_bound(graph))
        deadline.offer(self._proposal(graph, best_s, best_v, {}).candidates)
        if start.expired or best_v <= lb + 1e-9 * max(1.0, lb):
            return self._proposal(graph, best_s, best_v, info)
        theta0 = np.zeros((n, D))
        theta0[np.arange(n), s0] = 2.0
        theta = torch.tensor(theta0, dtype=dtype, device=dev, requires_grad=True)
        relaxed = _RelaxedStageCost.build(graph, objective, w_np, max(1.0, lb), dev, dtype)
        gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**31)))
        opt = RowAdam([theta], lr=cfg.lr)
        pen = cfg.penalty
        rounds = 0
        step_s = legal_s = 0.0  # measured cost of one Adam step and of one legalisation
        while not start.expired and (max_rounds is None or rounds < max_rounds):
            frac = min(1.0, rounds / max(1, cfg.anneal_rounds - 1))
            tau = cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** frac
            for _step in range(cfg.steps):
                if start.limited and start.remaining < 1.5 * (step_s + legal_s):
                    break
                t_step = start.clock()
                gumbel = _gumbel(gen, (cfg.samples, n, D), dtype, dev)
                loss = relaxed(theta, gumbel, tau, pen)
                grads = torch.autograd.grad(loss, [theta])
                with torch.no_grad():
                    opt.step(grads)
                step_s = start.clock() - t_step
            t_legal = start.clock()
            pen *= cfg.penalty_growth
            rounds += 1
            cand, cv = self._best_hard_sample(graph, objective, theta, gen, levels, dtype, dev)
            if cv < best_v:
                best_s, best_v = cand, cv
                deadline.offer(self._proposal(graph, best_s, best_v, {}).candidates)
            legal_s = start.clock() - t_legal
            info["history"].append((start.elapsed, float(best_v)))
            if best_v <= lb + 1e-9 * max(1.0, lb):
                break
        info["rounds"] = rounds
        return self._proposal(graph, best_s, best_v, info)

    def _best_hard_sample(self, graph: OpGraph, objective: StageCost, theta: torch.Tensor,
                          gen: torch.Generator, levels, dtype: torch.dtype,
                          dev: torch.device) -> tuple[np.ndarray, float]:
        """The best legalised hard sample (and the argmax of ``theta``), polished if configured."""
        cfg = self.config
        with torch.no_grad():
            hard = (theta + _gumbel(gen, (cfg.samples, *theta.shape), dtype, dev)).argmax(-1)
            hard = torch.cat([hard, theta.argmax(-1)[None]]).cpu().numpy()
        s = repair_stages(graph, hard.astype(np.float64), objective.stages, levels)
        vals = self._value(graph, objective, s)
        k = int(vals.argmin())
        cand, cv = s[k], vals[k]
        if cfg.polish:
            cand = improve_stages(graph, cand, objective)
            cv = self._value(graph, objective, cand[None])[0]
        return cand, cv

    def _sample_orders(self, graph: OpGraph, objective: Objective, deadline: Deadline,
                       rng: np.random.Generator) -> Proposal:
        cfg = self.config
        bl = graph.bottom_level / max(1e-12, float(graph.bottom_level.max()))
        seed = priority_order(graph, bl)
        value = float(objective.evaluate_orders(graph, seed[None])[0])

        def draw(rng: np.random.Generator, size: int) -> np.ndarray:
            return priority_orders_batch(graph, bl[None, :] + cfg.tau_end
                                         * rng.gumbel(size=(size, graph.num_nodes)))

        # ``rounds`` batches of ``samples`` without a budget, as many as fit with one
        out = sample_orders(graph, objective, deadline, rng, draw,
                            samples=cfg.rounds * cfg.samples if not deadline.limited else 2**62,
                            top_k=cfg.top_k, batch=cfg.samples, probe=min(cfg.samples, 4),
                            seeds=[Candidate(Schedule(order=seed, info={"origin": "seed"}),
                                             value)],
                            event_driven=False)
        return Proposal(out.candidates, info={"batches": out.batches,
                                              "best_value": out.candidates[0].claimed})

    @staticmethod
    def _value(graph: OpGraph, objective: StageCost, s: np.ndarray) -> np.ndarray:
        return stage_cost_batch(graph, s, num_stages=objective.stages, ratio=objective.ratio,
                                weight=objective.weight)

    @staticmethod
    def _proposal(graph: OpGraph, s: np.ndarray, value: float, info: dict) -> Proposal:
        order = stage_order(graph, s)
        sched = Schedule(order=order, start=np.asarray(s, dtype=np.float64))
        return Proposal([Candidate(sched, float(value))], info=dict(info, best_value=float(value)))


def _gumbel(gen: torch.Generator, shape: tuple[int, ...], dtype: torch.dtype,
            dev: torch.device) -> torch.Tensor:
    """Standard Gumbel noise of ``shape``, drawn on the CPU from ``gen`` and moved to ``dev``."""
    u = torch.rand(shape, generator=gen, dtype=dtype).to(dev)
    return -torch.log(-torch.log(u.clamp(1e-9, 1 - 1e-9)))


@dataclass(frozen=True)
class _RelaxedStageCost:
    """The loss of a batch of soft stage assignments: smooth stage cost plus the penalty."""

    w: torch.Tensor  # (n,) node weights
    d_idx: torch.Tensor  # (D,) stage indices
    src: torch.Tensor  # (E,) edge sources
    dst: torch.Tensor  # (E,) edge destinations
    dsrc: torch.Tensor  # sources of the edges that carry data
    ddst: torch.Tensor  # destinations of the edges that carry data
    tau_lse: float  # temperature of the smooth maximum of the stage loads
    scale: float  # divides the cost (the lower bound, at least 1)
    ratio: float  # the objective's weight of the peak stage load

    @classmethod
    def build(cls, graph: OpGraph, objective: StageCost, w_np: np.ndarray, scale: float,
              dev: torch.device, dtype: torch.dtype) -> _RelaxedStageCost:
        """The loss of ``objective`` on ``graph``, its tensors on ``dev``."""
        D = objective.stages
        w = torch.as_tensor(w_np, dtype=dtype, device=dev)
        data = graph.edge_bytes > 0
        dsrc = torch.as_tensor(np.array(graph.src[data]), device=dev)
        ddst = torch.as_tensor(np.array(graph.dst[data]), device=dev)
        src = torch.as_tensor(np.array(graph.src), device=dev)
        dst = torch.as_tensor(np.array(graph.dst), device=dev)
        d_idx = torch.arange(D, dtype=dtype, device=dev)
        tau_lse = max(1e-6, 0.02 * float(w_np.sum()) / D)
        return cls(w, d_idx, src, dst, dsrc, ddst, tau_lse, scale, objective.ratio)

    def __call__(self, theta: torch.Tensor, gumbel: torch.Tensor, tau: float,
                 pen: float) -> torch.Tensor:
        """Mean loss of the samples ``softmax((theta + gumbel) / tau)``, ``gumbel`` (S, n, D)."""
        y = torch.softmax((theta + gumbel) / tau, dim=-1)  # (S, n, D)
        load = torch.einsum("n,snd->sd", self.w, y)
        peak = self.tau_lse * torch.logsumexp(load / self.tau_lse, dim=1)
        es = (y * self.d_idx).sum(-1)
        cross = (es[:, self.ddst] - es[:, self.dsrc]).sum(1)
        cdf = torch.cumsum(y, dim=-1)
        viol = torch.relu(cdf[:, self.dst] - cdf[:, self.src]).sum((1, 2))
        return ((self.ratio * peak + cross) / self.scale + pen * viol).mean()
