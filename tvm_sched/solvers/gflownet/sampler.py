"""Rollouts: run a policy through the environment for ``B`` trajectories at once.

A *policy* is any callable ``policy(state, peak) -> (forward_logits, backward_logits)`` returning
masked logits of shape (B, n * m) and (B, n) (``-inf`` on disallowed actions), so the tests can
plug in an exact tabular policy. :class:`ModelPolicy` wraps the network: the static encoding is
computed once when it is built. ``peak`` is the running liveness peak (B,) (memory feature).

Exploration during training mixes the policy with the uniform distribution over allowed actions
(``epsilon``); the log-probabilities are always those of the policy itself, which the
log-partition-variance loss allows (it is an off-policy objective).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tvm_sched.solvers.gflownet.env import EnvState, ScheduleEnv
from tvm_sched.solvers.gflownet.features import GraphContext, condition
from tvm_sched.solvers.gflownet.model import PolicyNet

__all__ = ["Rollout", "ModelPolicy", "rollout"]


@dataclass
class Rollout:
    """``state``: the terminal states; ``log_pf``/``log_pb``: (B,) summed log-probabilities."""

    state: EnvState
    log_pf: torch.Tensor
    log_pb: torch.Tensor
    actions: torch.Tensor


class ModelPolicy:
    """:class:`PolicyNet` on one graph context at one condition.

    Parameters
    ----------
    net
        The network.
    ctx
        The graph context (environment, static features, masks).
    log_sigma
        Log temperature.
    memory
        Memory task (else makespan).
    uniform_pb
        Use the uniform backward policy instead of the learned head.
    """

    def __init__(self, net: PolicyNet, ctx: GraphContext, log_sigma: float, memory: bool,
                 uniform_pb: bool = False):
        env = ctx.env
        self.net, self.ctx, self.env, self.uniform_pb = net, ctx, env, uniform_pb
        dev = env.device
        raw = condition(log_sigma, memory, env.m, env.comm is not None).to(dev)
        self.c = net.embed_condition(raw)
        self.masks = net.attention_masks(ctx.masks)
        self.h_static = net.encode_static(ctx.static, self.masks, self.c)

    def log_partition(self, sigma: float) -> torch.Tensor:
        return self.net.log_partition(self.h_static, self.c, sigma)

    def __call__(self, state: EnvState, peak: torch.Tensor | None = None):
        env = self.env
        B = state.batch
        mask_f = env.forward_mask(state)
        mask_b = env.backward_mask(state)
        ready = env.ready(state)
        R = max(1, int(ready.sum(1).max()))
        idx = torch.argsort(ready.to(torch.int8), dim=1, descending=True, stable=True)[:, :R]
        node, pair = self.ctx.features(state, mask_b, peak)
        pair = pair.gather(1, idx[:, :, None, None].expand(-1, -1, env.m, pair.shape[3]))
        lr, lb = self.net(self.h_static, self.masks, self.c, node, pair, idx)
        lf = torch.full((B, env.n, env.m), float("-inf"), device=env.device)
        lf = lf.scatter(1, idx[:, :, None].expand(-1, -1, env.m), lr.float())
        lf = lf.reshape(B, env.n * env.m).masked_fill(~mask_f, float("-inf"))
        if self.uniform_pb:
            lb = torch.zeros_like(lb)
        return lf, lb.masked_fill(~mask_b, float("-inf"))


def rollout(env: ScheduleEnv, policy, batch: int, generator: torch.Generator | None = None,
            *, epsilon: float = 0.0, ctx: GraphContext | None = None) -> Rollout:
    """Sample ``batch`` complete trajectories (exactly ``n`` steps each).

    Gradients flow into ``log_pf``/``log_pb`` unless called under ``torch.no_grad()``.
    """
    state = env.reset(batch)
    rows = torch.arange(batch, device=env.device)
    zero = torch.zeros(batch, device=env.device)
    log_pf, log_pb = zero, zero
    actions = torch.empty((batch, env.n), dtype=torch.int64, device=env.device)
    peak = torch.zeros(batch, dtype=torch.float64, device=env.device)
    track = ctx is not None and env.m == 1
    for t in range(env.n):
        lf, lb = policy(state, peak if track else None)
        if t > 0:
            log_pb = log_pb + torch.log_softmax(lb, dim=1)[rows, actions[:, t - 1] // env.m]
        logp = torch.log_softmax(lf, dim=1)
        with torch.no_grad():
            probs = logp.exp()
            if epsilon > 0:
                allowed = torch.isfinite(lf).float()
                probs = (1 - epsilon) * probs + epsilon * allowed / allowed.sum(1, keepdim=True)
            a = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        log_pf = log_pf + logp[rows, a]
        if track:
            v = a // env.m
            peak = torch.maximum(peak, ctx.live_bytes(state) + ctx.out_bytes[v])
        env.step(state, a)
        actions[:, t] = a
    if env.n:
        _, lb = policy(state, peak if track else None)
        log_pb = log_pb + torch.log_softmax(lb, dim=1)[rows, actions[:, -1] // env.m]
    return Rollout(state=state, log_pf=log_pf, log_pb=log_pb, actions=actions)
