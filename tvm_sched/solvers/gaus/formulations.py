"""The four relaxed GauS formulations on an :class:`~tvm_sched.graph.OpGraph`.

Each formulation maps the means and standard deviations ``mu, sigma`` (B, n) of the start steps
of ``B`` restarts to

- a smooth objective (B,), normalised by a reference value so that one learning rate and one
  penalty schedule fit every graph;
- expected constraint violations (B, K), each >= 0, that the augmented Lagrangian drives to 0.

=============  =================  =====================================  ======================
formulation    horizon ``D``      constraints                            objective
=============  =================  =====================================  ======================
makespan       list-schedule UB   deps (lat = dur), usage <= m per step  smooth max of finish
peak_memory    n (one per step)   deps (lat = 1), usage <= 1 per step    LSE of live bytes
stage          D stages           deps (lat = 0)                         ratio LSE(load) + cross
pipeline       modulo-list UB     deps, recurrences, modulo usage <= m   smooth max of finish
=============  =================  =====================================  ======================

Usage on step ``t`` is ``P(s <= t < s + dur) = Phi((t+1/2-mu)/sigma) - Phi((t-dur+1/2-mu)/sigma)``
summed over nodes (an expectation; violations are ``sum_t relu(E[usage_t] - m)``). A tensor of
node ``u`` is live on step ``t`` with probability ``P(s_u <= t) (1 - prod_v P(s_v < t))`` over its
consumers ``v`` (independent nodes); function outputs are never freed.

Durations become integer steps: unchanged when they are small integers, otherwise scaled so that
the horizon stays under ``max_steps`` (the relaxation only has to rank nodes: the legaliser works
with the exact durations).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tvm_sched.cost import Makespan, Objective, PeakMemory, StageCost
from tvm_sched.cost.pipeline import Pipeline, int_durations, modulo_list_schedule
from tvm_sched.cost.stage import node_weights
from tvm_sched.errors import InfeasibleError
from tvm_sched.graph import OpGraph, lpmf_order, priority_order
from tvm_sched.solvers.base import is_order_memory
from tvm_sched.solvers.decoding import list_schedule
from tvm_sched.solvers.gaus.distributions import (
    expected_shortfall,
    std_normal_cdf,
    step_cdfs,
    step_mass,
)

__all__ = ["Formulation", "make_formulation"]


def _smooth_max(x: torch.Tensor, tau: float, dim: int = -1) -> torch.Tensor:
    return tau * torch.logsumexp(x / tau, dim=dim)


class Formulation:
    """Common parts: the dependency term, ASAP/ALAP bounds on the step grid, the horizon.

    Parameters
    ----------
    graph
        The graph.
    dur_steps
        Duration of each node in steps (may be fractional).
    lat
        Latency of each edge in steps (``s_v - s_u >= lat``).
    horizon
        Number of steps ``D`` (at least 1 is used).
    device, dtype
        Where and in which float type the tensors live.
    extra_edges
        ``(k, 3)`` rows ``(u, v, latency)`` of further dependencies (pipeline recurrences).
    """

    def __init__(self, graph: OpGraph, dur_steps: np.ndarray, lat: np.ndarray, horizon: int,
                 device, dtype, extra_edges: np.ndarray | None = None):
        self.graph = graph
        self.n = graph.num_nodes
        self.horizon = int(max(1, horizon))
        self.device, self.dtype = device, dtype
        self.dur_steps = np.asarray(dur_steps, dtype=np.float64)
        src, dst, lat = graph.src, graph.dst, np.asarray(lat, dtype=np.float64)
        if extra_edges is not None and len(extra_edges):
            src = np.concatenate([src, extra_edges[:, 0]])
            dst = np.concatenate([dst, extra_edges[:, 1]])
            lat = np.concatenate([lat, extra_edges[:, 2]])
        self.lat_np = lat
        t = lambda a, dt=dtype: torch.as_tensor(np.array(a), dtype=dt, device=device)  # noqa: E731
        self.src = t(src, torch.long)
        self.dst = t(dst, torch.long)
        self.lat = t(lat)
        self.dur = t(self.dur_steps)
        self.num_edges = int(len(src))

    # -------------------------------------------------------------- initialisation
    def asap_alap(self) -> tuple[np.ndarray, np.ndarray]:
        """Earliest and latest start steps under the DAG latencies within the horizon.

        Returns
        -------
        tuple of numpy.ndarray
            ``(asap, alap)`` floats per node, ``alap >= asap``.
        """
        g, n = self.graph, self.n
        lat = self.lat_np[: g.num_edges]
        asap = np.zeros(n)
        for v in g.topological_order:
            a, b = g.pred_ptr[v], g.pred_ptr[v + 1]
            if b > a:
                e = g.pred_eid[a:b]
                asap[v] = np.max(asap[g.src[e]] + lat[e])
        last = np.maximum(self.horizon - np.maximum(self.dur_steps, 1), 0).astype(np.float64)
        alap = np.maximum(last, asap)
        for u in g.topological_order[::-1]:
            a, b = g.succ_ptr[u], g.succ_ptr[u + 1]
            if b > a:
                e = g.succ_eid[a:b]
                alap[u] = min(alap[u], np.min(alap[g.dst[e]] - lat[e]))
        return asap, np.maximum(alap, asap)

    def init_points(self) -> list[np.ndarray]:
        """Start-step vectors to initialise from: the ASAP/ALAP midpoint and a heuristic.

        Returns
        -------
        list of numpy.ndarray
            The midpoint first, then :meth:`heuristic_points`.
        """
        asap, alap = self.asap_alap()
        return [0.5 * (asap + alap)] + self.heuristic_points()

    def heuristic_points(self) -> list[np.ndarray]:
        """Start steps of a heuristic schedule to initialise from (none in the base class).

        Returns
        -------
        list of numpy.ndarray
            Float start steps per node, one vector per heuristic.
        """
        return []

    def mobility(self) -> np.ndarray:
        """How far each node can move: ALAP minus ASAP step.

        Returns
        -------
        numpy.ndarray
            Non-negative floats per node.
        """
        asap, alap = self.asap_alap()
        return alap - asap

    # -------------------------------------------------------------- terms
    def dependency(self, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Expected shortfall summed over edges (closed form), (B,).

        Parameters
        ----------
        mu, sigma
            (B, n) means and standard deviations of the start steps.

        Returns
        -------
        torch.Tensor
            (B,) non-negative, zeros when the graph has no edges.
        """
        if self.num_edges == 0:
            return mu.new_zeros(mu.shape[0])
        m = mu[:, self.dst] - mu[:, self.src]
        s = torch.sqrt(sigma[:, self.dst] ** 2 + sigma[:, self.src] ** 2)
        return expected_shortfall(m, s, self.lat - 0.5).sum(dim=1)

    def running(self, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``P(s <= t < s + dur)`` for every node and step, (B, n, D).

        Parameters
        ----------
        mu, sigma
            (B, n) means and standard deviations of the start steps.

        Returns
        -------
        torch.Tensor
            (B, n, D) probabilities.
        """
        t = torch.arange(self.horizon, dtype=mu.dtype, device=mu.device)
        z_hi = (t + 0.5 - mu.unsqueeze(-1)) / sigma.unsqueeze(-1)
        z_lo = (t - self.dur.unsqueeze(-1) + 0.5 - mu.unsqueeze(-1)) / sigma.unsqueeze(-1)
        return std_normal_cdf(z_hi) - std_normal_cdf(z_lo)

    def terms(self, mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The relaxed objective and constraint violations (each subclass defines them).

        Parameters
        ----------
        mu, sigma
            (B, n) means and standard deviations of the start steps, on the formulation's
            device and dtype.

        Returns
        -------
        tuple of torch.Tensor
            The normalised objective (B,) and the expected violations (B, K), each >= 0.
        """
        raise NotImplementedError


class MakespanForm(Formulation):
    """Makespan on ``lanes`` lanes: smooth max of the finish steps, lane usage per step.

    Parameters
    ----------
    graph
        The graph.
    objective
        The makespan objective (its ``lanes``).
    device, dtype
        Where and in which float type the tensors live.
    max_steps
        Durations are scaled so that the list schedule's makespan fits in this many steps
        (small integer durations are kept).
    horizon
        Number of steps; ``None``: the list schedule's makespan plus 2.

    Raises
    ------
    InfeasibleError
        ``horizon`` is below the critical path.
    """

    def __init__(self, graph: OpGraph, objective: Makespan, device, dtype, max_steps: int,
                 horizon: int | None):
        d = graph.duration
        lanes = objective.lanes
        ub = list_schedule(graph, lanes)
        ub_val = float(np.max(np.asarray(ub.start) + d)) if graph.num_nodes else 0.0
        integral = bool(np.all(d == np.round(d)))
        self.q = 1.0 if integral and ub_val <= max_steps else max(ub_val, 1e-12) / max_steps
        # Integral data keep integral steps; otherwise durations are exact fractions of a step
        # (no rounding up of microsecond kernels to a whole step beside 100-ms ones: with a
        # wide dynamic range that would distort the relaxation and overflow the horizon).
        dur = d.astype(np.float64) if self.q == 1.0 else d / self.q
        cp_steps = _critical_path_steps(graph, dur)
        if horizon is not None and horizon < cp_steps:
            raise InfeasibleError(f"horizon D={horizon} is below the critical path "
                                  f"({cp_steps} steps)")
        h = horizon if horizon is not None else int(math.ceil(ub_val / self.q)) + 2
        super().__init__(graph, dur, dur[graph.src], max(h, cp_steps), device, dtype)
        self.lanes = lanes
        self.ub_start = np.asarray(ub.start) / self.q
        self.scale = max(1.0, float(cp_steps))

    def heuristic_points(self):
        return [self.ub_start]

    def terms(self, mu, sigma):
        """Smooth max of the finish steps; violations: dependencies, lane overuse.

        Parameters
        ----------
        mu, sigma
            (B, n) means and standard deviations of the start steps, on the formulation's
            device and dtype.

        Returns
        -------
        tuple of torch.Tensor
            The normalised objective (B,) and the expected violations (B, K), each >= 0.
        """
        use = self.running(mu, sigma).sum(dim=1)  # (B, D)
        over = torch.relu(use - self.lanes).sum(dim=1) / max(1, self.n)
        fin = _smooth_max(mu + self.dur, tau=1.0)
        return fin / self.scale, torch.stack([self.dependency(mu, sigma), over], dim=1)


class MemoryForm(Formulation):
    """Peak memory (liveness): one node per step, log-sum-exp of the expected live bytes.

    Parameters
    ----------
    graph
        The graph.
    device, dtype
        Where and in which float type the tensors live.
    """

    def __init__(self, graph: OpGraph, device, dtype):
        n = graph.num_nodes
        super().__init__(graph, np.ones(n, np.int64), np.ones(graph.num_edges), n, device, dtype)
        w = graph.out_bytes.astype(np.float64)
        self.w = torch.as_tensor(w / max(1.0, w.max()), dtype=dtype, device=device)
        self.is_out = torch.as_tensor(np.array(graph.is_output), device=device)
        self.has_cons = torch.as_tensor(np.array(graph.out_degree > 0), device=device)
        from tvm_sched.cost.memory import memory_lower_bound

        self.scale = max(1e-9, float(memory_lower_bound(graph)) / max(1.0, w.max()))

    def heuristic_points(self):
        pos = np.empty(self.n)
        pos[lpmf_order(self.graph)] = np.arange(self.n)
        return [pos]

    def terms(self, mu, sigma):
        """Smooth peak of the live bytes; violations: dependencies, more than one node a step.

        Parameters
        ----------
        mu, sigma
            (B, n) means and standard deviations of the start steps, on the formulation's
            device and dtype.

        Returns
        -------
        tuple of torch.Tensor
            The normalised objective (B,) and the expected violations (B, K), each >= 0.
        """
        started, before = step_cdfs(mu, sigma, self.horizon)  # P(s <= t), P(s < t) from Phi
        mass = started - before
        B, n, D = mass.shape
        log_before = torch.log(before.clamp_min(1e-12))[:, self.dst, :]  # (B, E, D)
        all_done = torch.zeros(B, n, D, dtype=mu.dtype, device=mu.device)
        all_done = all_done.index_add(1, self.src, log_before).exp()  # prod_v P(s_v < t)
        alive = torch.where(self.has_cons[None, :, None], started * (1.0 - all_done), mass)
        alive = torch.where(self.is_out[None, :, None], started, alive)
        live = torch.einsum("n,bnd->bd", self.w, alive)
        peak = _smooth_max(live, tau=0.05 * self.scale)
        over = torch.relu(mass.sum(dim=1) - 1.0).sum(dim=1) / max(1, n)
        return peak / self.scale, torch.stack([self.dependency(mu, sigma), over], dim=1)


class StageForm(Formulation):
    """Stage partition: ``ratio`` times the smooth peak stage load plus the crossing edges.

    Parameters
    ----------
    graph
        The graph.
    objective
        The stage objective (stages, weight, ratio).
    device, dtype
        Where and in which float type the tensors live.
    """

    def __init__(self, graph: OpGraph, objective: StageCost, device, dtype):
        super().__init__(graph, np.zeros(graph.num_nodes, np.int64), np.zeros(graph.num_edges),
                         objective.stages, device, dtype)
        w = node_weights(graph, objective.weight)
        self.w = torch.as_tensor(w, dtype=dtype, device=device)
        self.ratio = float(objective.ratio)
        data = graph.edge_bytes > 0
        self.dsrc = torch.as_tensor(np.array(graph.src[data]), device=device)
        self.ddst = torch.as_tensor(np.array(graph.dst[data]), device=device)
        from tvm_sched.cost.stage import stage_lower_bound

        self.scale = max(1.0, stage_lower_bound(graph, num_stages=objective.stages,
                                                ratio=objective.ratio, weight=objective.weight))
        self.tau = max(1e-6, 0.02 * float(w.sum()) / objective.stages)
        self.objective = objective

    def heuristic_points(self):
        from tvm_sched.cost.stage import stages_from_order

        order = priority_order(self.graph, self.graph.bottom_level)
        return [stages_from_order(self.graph, order, num_stages=self.horizon,
                                  weight=self.objective.weight).astype(np.float64)]

    def terms(self, mu, sigma):
        """Weighted peak load plus expected crossings; violations: dependencies only (K = 1).

        Parameters
        ----------
        mu, sigma
            (B, n) means and standard deviations of the start steps, on the formulation's
            device and dtype.

        Returns
        -------
        tuple of torch.Tensor
            The normalised objective (B,) and the expected violations (B, K), each >= 0.
        """
        mass = step_mass(mu, sigma, self.horizon)
        load = torch.einsum("n,bnd->bd", self.w, mass)
        peak = _smooth_max(load, tau=self.tau)
        d = torch.arange(self.horizon, dtype=mu.dtype, device=mu.device)
        es = (mass * d).sum(dim=-1)  # E[stage] (B, n)
        cross = (es[:, self.ddst] - es[:, self.dsrc]).sum(dim=1)
        obj = (self.ratio * peak + cross) / self.scale
        return obj, self.dependency(mu, sigma)[:, None]


class PipelineForm(Formulation):
    """Modulo schedule at ``ii``: smooth max of the finish steps, usage folded modulo ``ii``.

    Parameters
    ----------
    graph
        The graph.
    objective
        The pipeline objective (``ii``, lanes, recurrences).
    device, dtype
        Where and in which float type the tensors live.
    horizon
        Number of steps; ``None``: the modulo list schedule's length plus ``ii``.

    Raises
    ------
    InfeasibleError
        ``ii`` is below the resource or recurrence bound, or ``horizon`` is below the critical
        path.
    """

    def __init__(self, graph: OpGraph, objective: Pipeline, device, dtype,
                 horizon: int | None):
        objective.check_feasible(graph)
        dur = int_durations(graph)
        ii = int(objective.ii)
        rec = np.asarray(objective.recurrences, dtype=np.int64).reshape(-1, 3)
        extra = np.stack([rec[:, 0], rec[:, 1], dur[rec[:, 0]] - rec[:, 2] * ii], axis=1) if len(
            rec) else None
        cp_steps = _critical_path_steps(graph, dur)
        if horizon is not None and horizon < cp_steps:
            raise InfeasibleError(f"horizon D={horizon} is below the critical path "
                                  f"({cp_steps} steps)")
        order = priority_order(graph, graph.bottom_level)
        s = modulo_list_schedule(graph, order, ii=ii, lanes=objective.lanes,
                                 recurrences=objective.recurrences)
        ub = int(np.max(s + dur)) if s is not None and graph.num_nodes else cp_steps + ii
        self.ub_start = s
        h = horizon if horizon is not None else max(ub, cp_steps) + ii
        super().__init__(graph, dur, dur[graph.src], h, device, dtype, extra_edges=extra)
        self.ii, self.lanes = ii, int(objective.lanes)
        self.scale = max(1.0, float(cp_steps))

    def heuristic_points(self):
        return [] if self.ub_start is None else [self.ub_start.astype(np.float64)]

    def terms(self, mu, sigma):
        """Smooth max of the finish steps; violations: dependencies, modulo lane overuse.

        Parameters
        ----------
        mu, sigma
            (B, n) means and standard deviations of the start steps, on the formulation's
            device and dtype.

        Returns
        -------
        tuple of torch.Tensor
            The normalised objective (B,) and the expected violations (B, K), each >= 0.
        """
        run = self.running(mu, sigma).sum(dim=1)  # (B, D)
        B, D = run.shape
        pad = (-D) % self.ii
        run = torch.cat([run, run.new_zeros(B, pad)], dim=1).reshape(B, -1, self.ii).sum(1)
        over = torch.relu(run - self.lanes).sum(dim=1) / max(1, self.n)
        fin = _smooth_max(mu + self.dur, tau=1.0)
        return fin / self.scale, torch.stack([self.dependency(mu, sigma), over], dim=1)


def _critical_path_steps(graph: OpGraph, dur: np.ndarray) -> int:
    if graph.num_nodes == 0:
        return 0
    return int(math.ceil(graph.replace(duration=dur.astype(np.float64)).critical_path_length
                         - 1e-9))


def make_formulation(graph: OpGraph, objective: Objective, *, device, dtype, max_steps: int,
                     horizon: int | None) -> Formulation:
    """The formulation of ``objective`` (raises ValueError for an unknown one).

    Parameters
    ----------
    graph
        The graph.
    objective
        Makespan, any order-based memory objective (relaxed as liveness), stage or pipeline.
    device, dtype
        Where and in which float type the tensors live.
    max_steps
        Step budget of the makespan horizon (see :class:`MakespanForm`).
    horizon
        Number of steps of a makespan or pipeline formulation; ``None``: from a heuristic.

    Returns
    -------
    Formulation
        A :class:`MakespanForm`, :class:`MemoryForm`, :class:`StageForm` or
        :class:`PipelineForm`.

    Raises
    ------
    ValueError
        GauS has no formulation of the objective.
    InfeasibleError
        As the makespan and pipeline formulations raise it.
    """
    if isinstance(objective, Makespan):
        return MakespanForm(graph, objective, device, dtype, max_steps, horizon)
    if isinstance(objective, PeakMemory) or is_order_memory(objective):
        return MemoryForm(graph, device, dtype)  # liveness: the surrogate of every memory model
    if isinstance(objective, StageCost):
        return StageForm(graph, objective, device, dtype)
    if isinstance(objective, Pipeline):
        return PipelineForm(graph, objective, device, dtype, horizon)
    raise ValueError(f"GauS has no formulation of {objective.name!r}")
