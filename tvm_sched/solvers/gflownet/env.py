"""The scheduling environment of the GFlowNet sampler, batched in torch.

Zhang, Rainone, Peschl, Bondesan, "Robust Scheduling with GFlowNets", ICLR 2023 (arXiv
2302.05446). A state is a partial schedule: ``m`` lane chains holding the scheduled nodes. A
forward action ``(v, l)`` appends a *ready* node ``v`` (unscheduled, all its parents scheduled) to
the end of lane ``l``; its start time is ``max(finish of each parent + delay, finish of the node
before it on lane l)`` -- the chain semantics of :mod:`tvm_sched.cost.makespan`, so the start
times the environment tracks are exactly what the exact evaluator computes. Every trajectory has
exactly ``n`` steps, and all ``B`` trajectories of a batch step in lockstep.

Design decisions (where the paper is silent):

- **Lane symmetry** is broken by allowing a node to open only the lowest-numbered empty lane, so
  the non-empty lanes are always ``0..k-1`` and lanes are numbered in the order they were opened.
  The backward policy must only reach states the forward policy can reach, so a backward action
  removes a node that is last on its lane and has no scheduled children, and -- when it is alone
  on its lane -- only if that lane is the highest open one (``k - 1``). With this rule the parents
  of a state are exactly the states the backward mask reaches (the tests check it by
  enumeration), so trajectory balance holds on the true DAG of states.
- Actions are flat indices ``a = v * m + l``; the backward action is the node ``v`` alone (its lane
  is implied).
- The order handed to :class:`~tvm_sched.schedule.Schedule` is the order of addition: it is
  topological and agrees with every lane chain, so chain semantics reproduce the tracked times.
- ``m = 1`` gives a plain order, used for the memory objective. The memory state features (live
  bytes, bytes a node frees) are functions of the state; the running peak is not part of the state
  and the terminal peak comes from :func:`~tvm_sched.cost.memory.peak_memory_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from tvm_sched.cost import Comm
from tvm_sched.graph import OpGraph

__all__ = ["ScheduleEnv", "EnvState", "padded", "reachability"]


def padded(ptr: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """CSR lists as a padded (n, K) matrix; the pad is ``n`` (an extra dummy column)."""
    deg = np.diff(ptr)
    k = max(1, int(deg.max()) if n else 1)
    out = np.full((n, k), n, dtype=np.int64)
    for v in range(n):
        out[v, : deg[v]] = idx[ptr[v]: ptr[v + 1]]
    return out


def reachability(graph: OpGraph) -> np.ndarray:
    """``R[u, v]`` is True when there is a path ``u -> ... -> v`` (u != v), shape (n, n) bool."""
    n = graph.num_nodes
    reach = np.zeros((n, n), dtype=bool)
    for v in graph.topological_order[::-1]:
        for s in graph.succ_lists[int(v)]:
            reach[v, s] = True
            reach[v] |= reach[s]
    return reach


@dataclass
class EnvState:
    """A batch of ``B`` partial schedules of one graph (all tensors on the env's device).

    ``lane``, ``step_of``, ``prev``: (B, n) int64, -1 when unscheduled / none; ``start``,
    ``finish``: (B, n + 1) float (column ``n`` is the padding node: finish 0); ``lane_ext``: (B, n +
    1) int64 lanes with the pad at -1; ``tail``: (B, m) last node of each lane (-1: empty);
    ``lane_len``: (B, m); ``lane_free``: (B, m) finish time of each lane's tail; ``n_open``: (B,)
    open lanes; ``missing_parents``: (B, n + 1) unscheduled parents; ``sched_children``: (B, n + 1)
    scheduled children; ``t``: steps taken (the same in every row).
    """

    lane: torch.Tensor
    step_of: torch.Tensor
    prev: torch.Tensor
    start: torch.Tensor
    finish: torch.Tensor
    lane_ext: torch.Tensor
    tail: torch.Tensor
    lane_len: torch.Tensor
    lane_free: torch.Tensor
    n_open: torch.Tensor
    missing_parents: torch.Tensor
    sched_children: torch.Tensor
    t: int = 0

    @property
    def batch(self) -> int:
        return self.lane.shape[0]

    @property
    def scheduled(self) -> torch.Tensor:
        return self.lane >= 0

    def clone(self) -> EnvState:
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        return EnvState(**{k: v.clone() if isinstance(v, torch.Tensor) else v
                           for k, v in kw.items()})

    def key(self, row: int) -> tuple:
        """A hashable identity of row ``row``: its lane chains."""
        chains = []
        m = self.tail.shape[1]
        prev = self.prev[row].tolist()
        for ln in range(m):
            v, chain = int(self.tail[row, ln]), []
            while v >= 0:
                chain.append(v)
                v = prev[v]
            chains.append(tuple(reversed(chain)))
        return tuple(chains)


class ScheduleEnv:
    """Batched forward/backward dynamics for one graph on ``lanes`` lanes.

    Parameters
    ----------
    graph
        The DAG.
    lanes
        Number of lanes ``m`` (1: a plain order).
    comm
        Optional communication cost on cross-lane edges (changes the start times).
    device
        Where the state tensors live.
    """

    def __init__(self, graph: OpGraph, lanes: int, comm: Comm | None = None,
                 device: torch.device | str = "cpu"):
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        self.graph = graph
        self.n = n = graph.num_nodes
        self.m = int(lanes)
        self.comm = None if comm is None or comm.is_zero else comm
        self.device = dev = torch.device(device)
        f64 = torch.float64
        self.dur = torch.tensor(np.append(graph.duration, 0.0), dtype=f64, device=dev)
        P = padded(graph.pred_ptr, graph.pred_idx, n)
        S = padded(graph.succ_ptr, graph.succ_idx, n)
        delay = np.zeros(P.shape)
        if self.comm is not None:
            d = self.comm.delay(graph.edge_bytes)
            for v in range(n):
                a, b = graph.pred_ptr[v], graph.pred_ptr[v + 1]
                delay[v, : b - a] = d[graph.pred_eid[a:b]]
        self.P = torch.tensor(P, device=dev)
        self.S = torch.tensor(S, device=dev)
        self.delay = torch.tensor(delay, dtype=f64, device=dev)
        self.in_degree = torch.tensor(np.append(graph.in_degree, 0), device=dev)
        self.out_degree = torch.tensor(graph.out_degree, device=dev)

    # ------------------------------------------------------------------ states
    def reset(self, batch: int) -> EnvState:
        n, m, dev = self.n, self.m, self.device
        B = int(batch)
        long = dict(dtype=torch.int64, device=dev)
        f64 = dict(dtype=torch.float64, device=dev)
        return EnvState(
            lane=torch.full((B, n), -1, **long),
            step_of=torch.full((B, n), -1, **long),
            prev=torch.full((B, n), -1, **long),
            start=torch.full((B, n + 1), -1.0, **f64),
            finish=torch.zeros((B, n + 1), **f64),
            lane_ext=torch.full((B, n + 1), -1, **long),
            tail=torch.full((B, m), -1, **long),
            lane_len=torch.zeros((B, m), **long),
            lane_free=torch.zeros((B, m), **f64),
            n_open=torch.zeros(B, **long),
            missing_parents=self.in_degree.expand(B, n + 1).clone(),
            sched_children=torch.zeros((B, n + 1), **long),
        )

    def is_terminal(self, state: EnvState) -> bool:
        return state.t == self.n

    # ------------------------------------------------------------------ masks
    def ready(self, state: EnvState) -> torch.Tensor:
        """(B, n) bool: unscheduled nodes whose parents are all scheduled."""
        return (~state.scheduled) & (state.missing_parents[:, : self.n] == 0)

    def lane_ok(self, state: EnvState) -> torch.Tensor:
        """(B, m) bool: open lanes plus the lowest empty one."""
        lanes = torch.arange(self.m, device=self.device)
        return (state.lane_len > 0) | (lanes[None, :] == state.n_open[:, None])

    def forward_mask(self, state: EnvState) -> torch.Tensor:
        """(B, n * m) bool over flat actions ``v * m + l``."""
        mask = self.ready(state)[:, :, None] & self.lane_ok(state)[:, None, :]
        return mask.reshape(state.batch, self.n * self.m)

    def backward_mask(self, state: EnvState) -> torch.Tensor:
        """(B, n) bool: nodes whose removal leads to a parent state (see the module docstring)."""
        sched = state.scheduled
        ln = state.lane.clamp(min=0)
        is_tail = sched & (state.tail.gather(1, ln) == torch.arange(self.n, device=self.device))
        alone = state.lane_len.gather(1, ln) == 1
        top = ln == (state.n_open[:, None] - 1)
        return is_tail & (state.sched_children[:, : self.n] == 0) & (~alone | top)

    # ------------------------------------------------------------------ times
    def arrival(self, state: EnvState) -> torch.Tensor:
        """(B, n, m) earliest start of each node on each lane (meaningful for ready nodes)."""
        B = state.batch
        P = self.P
        fin = state.finish.gather(1, P.reshape(1, -1).expand(B, -1)).reshape(B, self.n, -1)
        if self.comm is None:
            ready = fin.max(dim=2).values[:, :, None].expand(B, self.n, self.m)
        else:
            pl = state.lane_ext.gather(1, P.reshape(1, -1).expand(B, -1)).reshape(B, self.n, -1)
            lanes = torch.arange(self.m, device=self.device)
            cross = (pl[:, :, :, None] != lanes) & (pl[:, :, :, None] >= 0)
            ready = (fin[:, :, :, None] + self.delay[None, :, :, None] * cross).max(dim=2).values
        return torch.maximum(ready, state.lane_free[:, None, :])

    # ------------------------------------------------------------------ transitions
    def step(self, state: EnvState, action: torch.Tensor, check: bool = False) -> EnvState:
        """Apply flat forward actions (B,) in place and return the state.

        Raises
        ------
        ValueError
            With ``check=True``, when an action is masked out.
        """
        if check and not bool(self.forward_mask(state).gather(1, action[:, None]).all()):
            raise ValueError("a forward action is not allowed in its state")
        rows = torch.arange(state.batch, device=self.device)
        v = torch.div(action, self.m, rounding_mode="floor")
        ln = action - v * self.m
        s = self.arrival(state)[rows, v, ln]
        f = s + self.dur[v]
        state.lane[rows, v] = ln
        state.lane_ext[rows, v] = ln
        state.step_of[rows, v] = state.t
        state.prev[rows, v] = state.tail[rows, ln]
        state.tail[rows, ln] = v
        state.lane_len[rows, ln] += 1
        state.lane_free[rows, ln] = f
        state.start[rows, v] = s
        state.finish[rows, v] = f
        state.n_open = torch.maximum(state.n_open, ln + 1)
        ones = torch.ones_like(self.S[v])
        state.missing_parents.scatter_add_(1, self.S[v], -ones)
        state.sched_children.scatter_add_(1, self.P[v], torch.ones_like(self.P[v]))
        state.missing_parents[:, self.n] = 0
        state.sched_children[:, self.n] = 0
        state.t += 1
        return state

    def backward_step(self, state: EnvState, node: torch.Tensor, check: bool = False) -> EnvState:
        """Remove nodes (B,) in place (the inverse of :meth:`step`) and return the state.

        Raises
        ------
        ValueError
            With ``check=True``, when a removal is masked out.
        """
        if check and not bool(self.backward_mask(state).gather(1, node[:, None]).all()):
            raise ValueError("a backward action is not allowed in its state")
        rows = torch.arange(state.batch, device=self.device)
        v = node
        ln = state.lane[rows, v]
        p = state.prev[rows, v]
        state.tail[rows, ln] = p
        state.lane_len[rows, ln] -= 1
        pf = state.finish[rows, p.clamp(min=0)]
        state.lane_free[rows, ln] = torch.where(p >= 0, pf, torch.zeros_like(pf))
        state.n_open = torch.where(state.lane_len[rows, ln] == 0, state.n_open - 1, state.n_open)
        state.lane[rows, v] = -1
        state.lane_ext[rows, v] = -1
        state.step_of[rows, v] = -1
        state.prev[rows, v] = -1
        state.start[rows, v] = -1.0
        state.finish[rows, v] = 0.0
        state.missing_parents.scatter_add_(1, self.S[v], torch.ones_like(self.S[v]))
        state.sched_children.scatter_add_(1, self.P[v], -torch.ones_like(self.P[v]))
        state.missing_parents[:, self.n] = 0
        state.sched_children[:, self.n] = 0
        state.t -= 1
        return state

    # ------------------------------------------------------------------ terminal states
    def orders(self, state: EnvState) -> np.ndarray:
        """(B, n) int64 orders of addition (topological, consistent with every lane chain)."""
        return torch.argsort(state.step_of, dim=1).cpu().numpy()

    def lanes(self, state: EnvState) -> np.ndarray:
        return state.lane.cpu().numpy()

    def makespan(self, state: EnvState) -> torch.Tensor:
        """(B,) makespans of terminal states (the largest finish)."""
        return state.finish[:, : self.n].max(dim=1).values
