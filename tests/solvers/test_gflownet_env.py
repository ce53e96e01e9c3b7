"""The GFlowNet environment: masks, exact n steps, backward inverts forward, terminal validity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tvm_sched.cost import Comm, Makespan
from tvm_sched.cost.makespan import makespan_batch
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.gflownet.env import ScheduleEnv
from tvm_sched.testing.dags import diamond, random_dag


def _random_forward(env, state, gen):
    mask = env.forward_mask(state)
    return torch.multinomial(mask.float(), 1, generator=gen).squeeze(1)


def _fields(state):
    return {k: v.clone() for k, v in vars(state).items() if isinstance(v, torch.Tensor)}


def test_initial_masks_open_only_lane_zero_with_sources():
    g = diamond()
    env = ScheduleEnv(g, 3)
    s = env.reset(2)
    mask = env.forward_mask(s).reshape(2, 4, 3)
    assert mask[:, 0, 0].all() and mask.sum() == 2  # node 0 on lane 0 only
    assert not env.backward_mask(s).any()


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_exactly_n_steps_and_terminal_states_validate(lanes):
    g = random_dag(14, 0.25, seed=3)
    env = ScheduleEnv(g, lanes)
    gen = torch.Generator().manual_seed(0)
    s = env.reset(16)
    for _ in range(g.num_nodes):
        assert env.forward_mask(s).any(dim=1).all()
        env.step(s, _random_forward(env, s, gen), check=True)
    assert env.is_terminal(s) and not env.forward_mask(s).any()
    orders, lane = env.orders(s), env.lanes(s)
    ms = makespan_batch(g, orders, lane=lane)
    assert np.allclose(ms, env.makespan(s).numpy())
    for b in range(16):
        sched = Schedule(order=orders[b], lane=lane[b])
        sched.validate(g, lanes=lanes)
        full = Makespan(lanes=lanes).complete(g, sched)
        assert np.allclose(full.start, s.start[b, :-1].numpy())
        # lanes are opened in order: the used lanes are 0..k-1
        used = sorted(set(lane[b].tolist()))
        assert used == list(range(len(used)))


def test_communication_delays_match_the_exact_evaluator():
    g = random_dag(12, 0.3, seed=8)
    comm = Comm(a=1e-3, b=0.7)
    env = ScheduleEnv(g, 3, comm)
    gen = torch.Generator().manual_seed(1)
    s = env.reset(8)
    for _ in range(g.num_nodes):
        env.step(s, _random_forward(env, s, gen))
    ms = makespan_batch(g, env.orders(s), lane=env.lanes(s), comm=comm)
    assert np.allclose(ms, env.makespan(s).numpy())
    assert ms.max() > makespan_batch(g, env.orders(s), lane=env.lanes(s)).max() - 1e-12


def test_backward_step_inverts_forward_step():
    g = random_dag(12, 0.3, seed=4)
    env = ScheduleEnv(g, 3)
    gen = torch.Generator().manual_seed(2)
    s = env.reset(8)
    for _ in range(g.num_nodes):
        before = _fields(s)
        t = s.t
        a = _random_forward(env, s, gen)
        env.step(s, a)
        v = a // env.m
        assert env.backward_mask(s).gather(1, v[:, None]).all()  # the last added is removable
        back = env.backward_step(s.clone(), v, check=True)
        assert back.t == t
        for k, x in _fields(back).items():
            assert torch.equal(x, before[k]), k


def test_random_backward_then_forward_returns_to_the_same_state():
    g = random_dag(12, 0.3, seed=5)
    env = ScheduleEnv(g, 3)
    gen = torch.Generator().manual_seed(3)
    s = env.reset(8)
    for _ in range(g.num_nodes):
        env.step(s, _random_forward(env, s, gen))
    for _ in range(g.num_nodes):
        mask = env.backward_mask(s)
        assert mask.any(dim=1).all()
        v = torch.multinomial(mask.float(), 1, generator=gen).squeeze(1)
        lane = s.lane[torch.arange(8), v]
        keys = [s.key(b) for b in range(8)]
        back = env.backward_step(s.clone(), v, check=True)
        assert env.forward_mask(back).gather(1, (v * env.m + lane)[:, None]).all()
        again = env.step(back.clone(), v * env.m + lane)
        assert [again.key(b) for b in range(8)] == keys
        s = back
    assert s.t == 0 and not s.scheduled.any()


def _enumerate(env):
    """All reachable states (by key) with their parents through forward actions."""
    start = env.reset(1)
    states = {start.key(0): start}
    parents: dict = {start.key(0): set()}
    frontier = [start]
    while frontier:
        nxt = []
        for s in frontier:
            for a in torch.nonzero(env.forward_mask(s)[0]).flatten().tolist():
                c = env.step(s.clone(), torch.tensor([a]))
                k = c.key(0)
                if k not in states:
                    states[k] = c
                    parents[k] = set()
                    nxt.append(c)
                parents[k].add(s.key(0))
        frontier = nxt
    return states, parents


def test_backward_mask_reaches_exactly_the_parents():
    env = ScheduleEnv(diamond().replace(), 3)
    states, parents = _enumerate(env)
    assert len(states) > 20
    for k, s in states.items():
        back = {env.backward_step(s.clone(), torch.tensor([v])).key(0)
                for v in torch.nonzero(env.backward_mask(s)[0]).flatten().tolist()}
        assert back == parents[k]


def test_masked_actions_are_rejected_with_check():
    env = ScheduleEnv(diamond(), 2)
    s = env.reset(1)
    with pytest.raises(ValueError, match="not allowed"):
        env.step(s, torch.tensor([3 * 2 + 0]), check=True)  # node 3 is not ready
    env.step(s, torch.tensor([0]))
    with pytest.raises(ValueError, match="not allowed"):
        env.backward_step(s, torch.tensor([1]), check=True)


def test_memory_features_track_the_liveness_peak():
    from tvm_sched.cost.memory import peak_memory_batch
    from tvm_sched.solvers.gflownet.features import GraphContext
    from tvm_sched.solvers.gflownet.sampler import rollout

    g = random_dag(14, 0.25, seed=6)
    env = ScheduleEnv(g, 1)
    ctx = GraphContext.build(env, memory=True)
    seen = []

    def uniform(state, peak):
        seen.append(peak.clone())
        if not env.is_terminal(state):  # live bytes after a step = before + out - frees
            live = ctx.live_bytes(state)
            frees = ctx.frees(state)
            for a in torch.nonzero(env.forward_mask(state)[0]).flatten().tolist():
                nxt = env.step(state.clone(), torch.tensor([a] * state.batch))
                expect = live + ctx.out_bytes[a] - frees[:, a]
                assert torch.allclose(ctx.live_bytes(nxt)[0], expect[0])
        lf = env.forward_mask(state).float().log()
        return lf, env.backward_mask(state).float().log()

    r = rollout(env, uniform, 6, torch.Generator().manual_seed(0), ctx=ctx)
    peaks = peak_memory_batch(g, env.orders(r.state))
    assert np.allclose(seen[-1].numpy(), peaks)
    assert ctx.mem_ref >= 1
