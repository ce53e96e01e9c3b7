"""``GauSSolver``: differentiable scheduling by Gaussian reparameterisation (registry ``"gaus"``).

Cai, Bakhtazad, Yu, Zhang, "GauS: Differentiable Scheduling Optimization via Gaussian
Reparameterization", arXiv 2602.20427. The start step of node ``i`` is ``N(mu_i, sigma_i)`` with
``sigma_i = softplus(rho_i) + floor``; :mod:`.formulations` turns ``(mu, sigma)`` into a smooth
objective and expected constraint violations, and the solver minimises the augmented Lagrangian

    L = f + sum_k lambda_k g_k + (rho / 2) sum_k g_k^2

with Adam, ``B`` restarts at once as one (B, n) tensor program (so a GPU is filled even on a small
graph). The anytime loop, until the budget is spent:

1. *round*: ``steps`` Adam steps on L, ``mu`` projected onto ``[0, D-1]`` after each;
2. *multipliers*: ``lambda <- max(0, lambda + rho g)``, ``rho <- min(rho * growth, rho_max)``
   (per restart);
3. *legalise* every restart (:mod:`.legalize`), evaluate exactly, keep the best schedules;
4. *warm restart*: restarts whose legal value is worse than the best by more than
   ``restart_gap`` are re-seeded at the best legal schedule's steps plus noise, with sigma reset
   from mobility and their multipliers and Adam moments cleared.

Choices the paper leaves open (documented here): the dependency term is the closed-form expected
shortfall of the difference of two Gaussians (see :mod:`.distributions`); the latency is
``dur_u`` steps (makespan, pipeline), 1 (one-lane orders), 0 (stages), and the same latency is used
by the penalty, the legaliser and the exact evaluator. Restart 0 starts at the ASAP/ALAP
midpoint, restart 1 at a list schedule, the others at one of them plus Gaussian noise scaled by
the mobility; sigma starts at ``max(floor, mobility / 4)``.

A budget of zero returns the legalised initialisation. With ``budget=None`` the solver does
``Config.rounds`` rounds (a fixed amount of work: no wall clock), with a budget as many as fit:
each Adam step and each legalisation is timed and the loop stops when the next one would not fit
(:mod:`tvm_sched.solvers.base`). Either way it stops as soon as a schedule meets the objective's
lower bound.

Memory objectives: ``peak_memory`` is optimised as formulated; every other order-based memory
objective (``planned_memory``, an arena planner, ...) is searched with the liveness formulation
as a surrogate, and the legal orders are ranked by the objective's own exact evaluator.

Durations: integral makespan data stay integral steps; other data are measured in steps of
``q = list-schedule makespan / max_steps`` with *fractional* step durations, so kernels from
microseconds to 100 ms keep their relative sizes (the exact values come from the legaliser and
the evaluator, in the graph's own units).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tvm_sched.cost import Objective, StageCost
from tvm_sched.cost.pipeline import Pipeline
from tvm_sched.cost.stage import stage_cost_batch
from tvm_sched.graph import OpGraph
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import (
    Candidate,
    Deadline,
    Proposal,
    Solver,
    meets_bound,
)
from tvm_sched.solvers.gaus.distributions import inverse_sigma, sigma_of
from tvm_sched.solvers.gaus.formulations import make_formulation
from tvm_sched.solvers.gaus.legalize import depth_levels, improve_stages, legalize, stage_order
from tvm_sched.solvers.topk import TopK

__all__ = ["GauSSolver", "RowAdam"]


class GauSSolver(Solver):
    """GauS on makespan, peak memory, stage and pipeline objectives (see the module docstring).

    Examples
    --------
    >>> from tvm_sched.testing.dags import diamond
    >>> res = GauSSolver(restarts=4).solve(diamond(), "stage", budget=1.0)
    >>> res.best.is_valid(diamond(), latency=0.0)
    True
    """

    name = "gaus"
    objectives = ("makespan", "peak_memory", "planned_memory", "stage", "pipeline")

    @dataclass(frozen=True)
    class Config:
        #: Restarts optimised together (the batch dimension).
        restarts: int = 8
        #: Adam steps per round (between multiplier updates and legalisations).
        steps: int = 60
        #: Rounds when ``budget`` is None (with a budget: as many as fit).
        rounds: int = 3
        #: Adam learning rate in steps (scaled up by the horizon / 20 on long horizons).
        lr: float = 0.1
        #: Lower bound of sigma, in steps.
        sigma_floor: float = 0.1
        #: Initial penalty, its growth per round and its cap.
        rho: float = 1.0
        rho_growth: float = 1.5
        rho_max: float = 1e3
        #: Relative gap above the best legal value beyond which a restart is re-seeded.
        restart_gap: float = 0.02
        #: Noise of the non-deterministic restarts, as a fraction of the mobility.
        noise: float = 0.3
        #: Fixed horizon in steps (makespan, pipeline); None: from a list schedule.
        horizon: int | None = None
        #: Largest horizon in steps when durations are scaled (makespan).
        max_steps: int = 400
        #: Distinct schedules returned, best first.
        top_k: int = 1

    def _propose(self, graph: OpGraph, objective: Objective, deadline: Deadline,
                 rng: np.random.Generator, device) -> Proposal:
        cfg = self.config
        if cfg.restarts < 1 or cfg.steps < 1:
            raise ValueError(f"restarts and steps must be >= 1, got {cfg.restarts}, {cfg.steps}")
        if isinstance(objective, Pipeline):
            objective.check_feasible(graph)
        if graph.num_nodes == 0:
            return Proposal([Candidate(Schedule(order=()))])
        max_rounds = None if deadline.limited else cfg.rounds
        dev = torch.device(device)
        dtype = torch.float32 if dev.type == "cuda" else torch.float64
        form = make_formulation(graph, objective, device=dev, dtype=dtype,
                                max_steps=cfg.max_steps, horizon=cfg.horizon)
        q = getattr(form, "q", 1.0)
        levels = depth_levels(graph)
        B, D = cfg.restarts, form.horizon
        mu0, sig0 = self._start_points(form, graph.num_nodes, rng)

        pool = TopK(cfg.top_k)
        t_legal = deadline.clock()
        _keep(pool, legalize(graph, objective, mu0, q=q, levels=levels))
        legal_s = deadline.clock() - t_legal  # seconds of one legalisation (+ polish)
        if isinstance(objective, StageCost):
            _keep(pool, _polished(graph, objective, pool.best_payload, deadline))
        lb = objective.lower_bound(graph)
        info = {"restarts": B, "horizon": D, "rounds": 0, "steps": 0, "device": str(dev),
                "init_value": pool.best, "history": [(deadline.elapsed, pool.best)]}
        deadline.offer(pool.candidates())
        if deadline.expired or meets_bound(pool.best, lb):
            return _proposal(pool, info)

        state, step_s = self._relaxation(form, mu0, sig0, deadline, rng, dev, dtype)
        rounds = 0
        while not deadline.expired and (max_rounds is None or rounds < max_rounds):
            steps_before = info["steps"]
            step_s = self._adam_steps(form, state, deadline, step_s, legal_s, info)
            if info["steps"] == steps_before:
                break  # no step fits in the time left: legalising again would find nothing new
            t_legal = deadline.clock()
            with torch.no_grad():
                _, g = form.terms(state.mu, sigma_of(state.raw, cfg.sigma_floor))
                state.lam = torch.clamp(state.lam + state.rho * g, min=0)
                state.rho = torch.clamp(state.rho * cfg.rho_growth, max=cfg.rho_max)
            rounds += 1
            mu_np = state.mu.detach().cpu().numpy()
            results = legalize(graph, objective, mu_np, q=q, levels=levels)
            _keep(pool, results)
            if isinstance(objective, StageCost) and results:
                # polish this round's best legal schedule (the global best is polished already)
                k = min(range(len(results)), key=lambda i: results[i][1])
                _keep(pool, _polished(graph, objective, results[k][2], deadline))
            legal_s = deadline.clock() - t_legal
            deadline.offer(pool.candidates())
            info["history"].append((deadline.elapsed, pool.best))
            if meets_bound(pool.best, lb):
                break
            self._warm_restart(state, pool, _per_restart(results, B), D)
        info["rounds"] = rounds
        return _proposal(pool, info)

    def _start_points(self, form, n: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The (B, n) initial means (start points, noisy copies beyond them) and sigmas (n,)."""
        cfg = self.config
        B, D = cfg.restarts, form.horizon
        mob = form.mobility()
        sig0 = np.maximum(cfg.sigma_floor * 2, mob / 4.0)
        inits = form.init_points()
        mu0 = np.stack([inits[b % len(inits)] for b in range(B)]).astype(np.float64)
        if B > len(inits):
            noise = rng.standard_normal((B - len(inits), n)) * (cfg.noise * (mob + 1.0))
            mu0[len(inits):] += noise
        mu0 = np.clip(mu0, 0, D - 1)
        return mu0, sig0

    def _relaxation(self, form, mu0: np.ndarray, sig0: np.ndarray, deadline: Deadline,
                    rng: np.random.Generator, dev: torch.device,
                    dtype: torch.dtype) -> tuple[_Relaxation, float]:
        """The restarts' tensors at ``mu0`` and the estimated seconds of one Adam step."""
        cfg = self.config
        B, n = mu0.shape
        gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**31)))
        mu = torch.tensor(mu0, dtype=dtype, device=dev, requires_grad=True)
        raw = inverse_sigma(torch.tensor(sig0, dtype=dtype, device=dev).expand(B, n).clone(),
                            cfg.sigma_floor).requires_grad_(True)
        lr = cfg.lr * max(1.0, form.horizon / 20.0)
        opt = RowAdam([mu, raw], lr=lr)
        t_fwd = deadline.clock()
        with torch.no_grad():
            K = form.terms(mu, sigma_of(raw, cfg.sigma_floor))[1].shape[1]
        # a step (forward + backward) costs about 3 forwards: the estimate before the first one
        step_s = 3.0 * (deadline.clock() - t_fwd)
        lam = torch.zeros(B, K, dtype=dtype, device=dev)
        rho = torch.full((B, 1), cfg.rho, dtype=dtype, device=dev)
        return _Relaxation(mu, raw, lam, rho, opt, sig0, gen, dev, dtype), step_s

    def _adam_steps(self, form, state: _Relaxation, deadline: Deadline, step_s: float,
                    legal_s: float, info: dict) -> float:
        """One round of Adam steps on L while the next one fits; the seconds of the last one."""
        cfg = self.config
        mu, raw, lam, rho = state.mu, state.raw, state.lam, state.rho
        for _step in range(cfg.steps):
            if deadline.limited and deadline.remaining < 2.0 * (step_s + legal_s):
                break
            t_step = deadline.clock()
            f, g = form.terms(mu, sigma_of(raw, cfg.sigma_floor))
            loss = f + (lam * g).sum(1) + 0.5 * (rho * g * g).sum(1)
            grads = torch.autograd.grad(loss.sum(), [mu, raw])
            with torch.no_grad():
                state.opt.step(grads)
                mu.clamp_(0, form.horizon - 1)
            info["steps"] += 1
            step_s = deadline.clock() - t_step
        return step_s

    def _warm_restart(self, state: _Relaxation, pool: TopK, per_row: list[float],
                      D: int) -> None:
        """Re-seed the restarts far from the best at the best legal steps plus noise."""
        cfg = self.config
        worse = [b for b in range(cfg.restarts)
                 if per_row[b] > pool.best * (1 + cfg.restart_gap) + 1e-12]
        if not worse or pool.best_payload is None:
            return
        dev, dtype, n = state.device, state.dtype, state.mu.shape[1]
        idx = torch.tensor(worse, device=dev)
        jitter = torch.randn((len(worse), n), generator=state.gen, dtype=dtype)
        fresh = torch.as_tensor(pool.best_payload, dtype=dtype) + jitter * cfg.noise
        with torch.no_grad():
            state.mu[idx] = fresh.clamp(0, D - 1).to(dev)
            state.raw[idx] = inverse_sigma(
                torch.as_tensor(state.sig0, dtype=dtype, device=dev).expand(len(worse), n),
                cfg.sigma_floor)
            state.lam[idx] = 0
            state.rho[idx] = cfg.rho
        state.opt.reset_rows(idx)


@dataclass
class _Relaxation:
    """The B restarts being optimised together, and what a warm restart resets them to."""

    mu: torch.Tensor  # (B, n) means, in steps
    raw: torch.Tensor  # (B, n) sigmas before the softplus
    lam: torch.Tensor  # (B, K) Lagrange multipliers
    rho: torch.Tensor  # (B, 1) penalty weights
    opt: RowAdam
    sig0: np.ndarray  # (n,) initial sigmas
    gen: torch.Generator  # noise of the warm restarts
    device: torch.device
    dtype: torch.dtype


def _polished(graph: OpGraph, objective: StageCost, steps: np.ndarray, deadline) -> list:
    s = improve_stages(graph, steps, objective, sweeps=8, expired=lambda: deadline.expired)
    val = float(stage_cost_batch(graph, s[None], num_stages=objective.stages,
                                 ratio=objective.ratio, weight=objective.weight)[0])
    order = stage_order(graph, s)
    return [(Schedule(order=order, start=s.astype(np.float64)), val, s.astype(np.float64))]


class RowAdam:
    """Adam on (B, n) parameters with per-row step counts, so one restart can be reset alone.

    (A dozen lines instead of ``torch.optim.Adam``, whose first construction costs seconds of
    lazy imports -- more than the default budget of small solves.)

    Parameters
    ----------
    params
        (B, n) tensors updated in place, all on one device and of one dtype.
    lr
        Learning rate.
    betas
        Decay rates of the first and second moment estimates.
    eps
        Added to the root of the second moment.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, betas[0], betas[1], eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = torch.zeros(params[0].shape[0], 1, dtype=params[0].dtype,
                             device=params[0].device)

    def step(self, grads) -> None:
        """One Adam update of every parameter.

        Parameters
        ----------
        grads
            One gradient per parameter, same shapes.
        """
        self.t += 1
        c1 = 1 - self.b1 ** self.t
        c2 = 1 - self.b2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            p.sub_(self.lr * (m / c1) / ((v / c2).sqrt() + self.eps))

    def reset_rows(self, idx: torch.Tensor) -> None:
        """Forget the moments and step counts of some rows (restarted runs).

        Parameters
        ----------
        idx
            Row indices or a (B,) boolean mask.
        """
        for m, v in zip(self.m, self.v, strict=True):
            m[idx] = 0
            v[idx] = 0
        self.t[idx] = 0


def _per_restart(results: list, B: int) -> list[float]:
    """Best legal value of each restart (the legalisers emit blocks of B results)."""
    best = [float("inf")] * B
    for k, (_, val, _) in enumerate(results):
        best[k % B] = min(best[k % B], val)
    return best


def _keep(pool: TopK, results) -> None:
    """Keep legal ``(schedule, value, steps)`` results; the steps ride along as the payload."""
    for sched, val, steps in results:
        pool.add(sched, val, payload=steps)


def _proposal(pool: TopK, info: dict) -> Proposal:
    return Proposal(pool.candidates(), info=dict(info, best_value=pool.best))
