"""Losses: zero for the exact policy of a known reward; training concentrates on the optimum."""

from __future__ import annotations

import math

import numpy as np
import torch

from tvm_sched.graph import OpGraph
from tvm_sched.solvers.gflownet.env import ScheduleEnv
from tvm_sched.solvers.gflownet.features import GraphContext
from tvm_sched.solvers.gflownet.loss import log_partition_variance, trajectory_balance
from tvm_sched.solvers.gflownet.model import ModelConfig, PolicyNet
from tvm_sched.solvers.gflownet.reward import Task, log_reward
from tvm_sched.solvers.gflownet.sampler import ModelPolicy, rollout
from tvm_sched.solvers.gflownet.train import train_step

SIGMA = 0.5


def _tiny():
    # 0 -> {1, 2, 3} -> 4; packing 1..3 well on 2 lanes matters
    return OpGraph(5, [(0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4)],
                   duration=[1.0, 2.0, 1.0, 1.0, 1.0])


class TablePolicy:
    """The exact GFlowNet policy for reward R with uniform P_B, from enumerated state flows."""

    def __init__(self, env, ctx, task, sigma):
        self.env = env
        self.log_pf: dict = {}
        self.log_flow: dict = {}
        self.terminal_log_r: dict = {}
        self._flow(env.reset(1), ctx, task, sigma)

    def _flow(self, s, ctx, task, sigma) -> float:
        env, k = self.env, s.key(0)
        if k in self.log_flow:
            return self.log_flow[k]
        if env.is_terminal(s):
            lr = float(log_reward(ctx, task, s, sigma)[0][0])
            self.terminal_log_r[k] = lr
            self.log_flow[k] = lr
            return lr
        terms = {}
        for a in torch.nonzero(env.forward_mask(s)[0]).flatten().tolist():
            c = env.step(s.clone(), torch.tensor([a]))
            pb = -math.log(int(env.backward_mask(c)[0].sum()))
            terms[a] = self._flow(c, ctx, task, sigma) + pb
        total = float(torch.logsumexp(torch.tensor(list(terms.values()), dtype=torch.float64), 0))
        self.log_flow[k] = total
        self.log_pf[k] = {a: v - total for a, v in terms.items()}
        return total

    def __call__(self, state, peak=None):
        B, env = state.batch, self.env
        lf = torch.full((B, env.n * env.m), float("-inf"))
        if not env.is_terminal(state):
            for b in range(B):
                for a, lp in self.log_pf[state.key(b)].items():
                    lf[b, a] = lp
        lb = torch.zeros((B, env.n)).masked_fill(~env.backward_mask(state), float("-inf"))
        return lf, lb


def test_losses_vanish_for_the_exact_policy():
    g = _tiny()
    env = ScheduleEnv(g, 2)
    ctx = GraphContext.build(env)
    task = Task("makespan", 2)
    pol = TablePolicy(env, ctx, task, SIGMA)
    log_z = pol.log_flow[env.reset(1).key(0)]
    # log Z is the log of the summed reward of the terminal states
    assert math.isclose(log_z, float(torch.logsumexp(torch.tensor(
        list(pol.terminal_log_r.values()), dtype=torch.float64), 0)), rel_tol=1e-9)
    r = rollout(env, pol, 64, torch.Generator().manual_seed(0))
    log_r, _ = log_reward(ctx, task, r.state, SIGMA)
    assert float(log_partition_variance(log_r, r.log_pb, r.log_pf)) < 1e-8
    assert float(trajectory_balance(torch.tensor(log_z), log_r, r.log_pb, r.log_pf)) < 1e-8
    # and a wrong log Z or a uniform policy is penalised
    assert float(trajectory_balance(torch.tensor(log_z + 1), log_r, r.log_pb, r.log_pf)) > 0.9
    uni = rollout(env, lambda s, p=None: (pol(s)[0].isfinite().float().log(), pol(s)[1]), 64,
                  torch.Generator().manual_seed(0))
    log_u, _ = log_reward(ctx, task, uni.state, SIGMA)
    assert float(log_partition_variance(log_u, uni.log_pb, uni.log_pf)) > 1e-2


def _optimal_share(net, g, task, sigma, best, n=256):
    env = ScheduleEnv(g, task.lanes)
    ctx = GraphContext.build(env)
    with torch.no_grad():
        pol = ModelPolicy(net, ctx, math.log(sigma), False)
        r = rollout(env, pol, n, torch.Generator().manual_seed(1))
    return float((env.makespan(r.state).numpy() <= best + 1e-9).mean())


def test_training_concentrates_samples_on_the_best_schedules(one_thread):
    torch.manual_seed(0)
    g = _tiny()
    task = Task("makespan", 2)
    sigma = 0.05
    net = PolicyNet(ModelConfig(dim=16, static_layers=1, dynamic_layers=1, cond_dim=8))
    best = 4.0  # 0, then {1} || {2, 3}, then 4
    before = _optimal_share(net, g, task, sigma, best)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        train_step(net, opt, g, task, sigma, batch=16, generator=gen)
    after = _optimal_share(net, g, task, sigma, best)
    assert after > max(0.6, 2 * before), (before, after)
    assert np.isfinite(after)
