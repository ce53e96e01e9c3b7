"""Node, pair and conditioning features of the GFlowNet policy.

The paper's node features are the duration, the start time (or -1), the lane one-hot, can-add,
can-remove and scheduled. This module adds what the network cannot cheaply infer itself:

- **static** (once per graph and lane count): duration, top and bottom level (longest path to and
  from the node) and their sum (criticality), in/out degree, output size, ancestors and
  descendants counts, depth. Times are divided by the makespan lower bound
  ``LB = max(critical path, total duration / m)`` so graphs of any time unit (seconds from the
  zoo, integers from STG) look alike;
- **dynamic** node features: the paper's, the finish time, the earliest start over lanes
  relative to the frontier, and for the memory task the live bytes while the node would run and
  after it ran (relative to a reference peak), whether the node's tensor is live;
- **pair** features of (ready node, lane): earliest start on that lane (relative), the idle gap it
  would leave, the share of the node's parents on the lane, whether the lane is empty or is the
  one that may be opened. These make communication and lane packing visible to the policy.

Everything is float32 on the environment's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tvm_sched.cost.memory import peak_memory_batch
from tvm_sched.graph import OpGraph
from tvm_sched.solvers.gflownet.env import EnvState, ScheduleEnv, reachability

__all__ = ["GraphContext", "STATIC_FEATURES", "DYNAMIC_FEATURES", "PAIR_FEATURES", "MAX_LANES",
           "COND_FEATURES", "memory_reference", "condition"]

MAX_LANES = 8
STATIC_FEATURES = 14
DYNAMIC_FEATURES = 10 + MAX_LANES
PAIR_FEATURES = 7
COND_FEATURES = 4
NUM_RELATIONS = 4


def memory_reference(graph: OpGraph) -> float:
    """Best liveness peak of the heuristics (least peak memory first, DFS, BFS); >= 1."""
    from tvm_sched.solvers.heuristics import bfs_order, dfs_order, lpmf_order

    if graph.num_nodes == 0:
        return 1.0
    orders = np.stack([lpmf_order(graph), dfs_order(graph), bfs_order(graph)])
    return float(max(1, int(peak_memory_batch(graph, orders).min())))


def condition(log_sigma: float, memory: bool, lanes: int, comm: bool) -> torch.Tensor:
    """The raw conditioning vector (COND_FEATURES,): log sigma, task, lanes, communication."""
    return torch.tensor([log_sigma, float(memory), lanes / MAX_LANES, float(comm)],
                        dtype=torch.float32)


@dataclass
class GraphContext:
    """Everything per (graph, lanes) the policy needs besides the state.

    ``static``: (n, STATIC_FEATURES); ``masks``: (NUM_RELATIONS, n, n) bool attention masks
    (direct neighbours, ancestors, descendants, incomparable; each with the node itself);
    ``scale``: the makespan lower bound; ``mem_ref``: reference peak bytes.
    """

    env: ScheduleEnv
    static: torch.Tensor
    masks: torch.Tensor
    scale: float
    mem_ref: float | None
    out_bytes: torch.Tensor
    is_output: torch.Tensor
    parent_count: torch.Tensor

    @classmethod
    def build(cls, env: ScheduleEnv, memory: bool = False,
              mem_ref: float | None = None) -> GraphContext:
        """The context of ``env``; memory features and ``mem_ref`` only when ``memory``."""
        g, n, m, dev = env.graph, env.n, env.m, env.device
        dur = g.duration
        total = float(dur.sum())
        scale = max(g.critical_path_length, total / m, 1e-12)
        reach = reachability(g)
        anc, desc = reach.T, reach
        eye = np.eye(n, dtype=bool)
        adj = np.zeros((n, n), dtype=bool)
        adj[g.src, g.dst] = True
        adj |= adj.T
        incomparable = ~(anc | desc)
        masks = np.stack([adj | eye, anc | eye, desc | eye, incomparable | eye])
        tl, bl = g.top_level, g.bottom_level
        depth = g.depth
        ob = g.out_bytes.astype(np.float64)
        mean_dur = max(total / max(n, 1), 1e-12)
        static = np.stack([
            dur / scale,
            np.clip(dur / mean_dur, 0, 10) / 4,
            tl / scale,
            bl / scale,
            (tl + bl) / max(g.critical_path_length, 1e-12),
            np.minimum(g.in_degree, 16) / 4,
            np.minimum(g.out_degree, 16) / 4,
            ob / max(ob.max(), 1.0),
            g.is_output.astype(np.float64),
            anc.sum(1) / max(n, 1),
            desc.sum(1) / max(n, 1),
            depth / max(int(depth.max()), 1),
            (g.in_degree == 0).astype(np.float64),
            np.full(n, np.log(max(n, 1)) / 5),
        ], axis=1) if n else np.zeros((0, STATIC_FEATURES))
        ref = (memory_reference(g) if mem_ref is None else mem_ref) if memory else None
        f32 = dict(dtype=torch.float32, device=dev)
        return cls(
            env=env,
            static=torch.tensor(static, **f32),
            masks=torch.tensor(masks, dtype=torch.bool, device=dev),
            scale=scale,
            mem_ref=ref,
            out_bytes=torch.tensor(np.append(ob, 0.0), dtype=torch.float64, device=dev),
            is_output=torch.tensor(g.is_output, device=dev),
            parent_count=torch.tensor(np.maximum(g.in_degree, 1), **f32),
        )

    # ------------------------------------------------------------------ dynamic features
    def live_bytes(self, state: EnvState) -> torch.Tensor:
        """(B,) bytes live after the last step (scheduled tensors still needed or outputs)."""
        env = self.env
        remaining = env.out_degree[None, :] - state.sched_children[:, : env.n]
        keep = state.scheduled & ((remaining > 0) | self.is_output[None, :])
        return (keep * self.out_bytes[None, : env.n]).sum(1)

    def frees(self, state: EnvState) -> torch.Tensor:
        """(B, n) bytes a ready node frees when it runs now (inputs it is the last reader of)."""
        env = self.env
        B = state.batch
        remaining = torch.cat([
            env.out_degree[None, :] - state.sched_children[:, : env.n],
            torch.zeros((B, 1), dtype=torch.int64, device=env.device)], dim=1)
        P = env.P.reshape(1, -1).expand(B, -1)
        last = (remaining.gather(1, P) == 1).reshape(B, env.n, -1)
        out_ext = torch.cat([~self.is_output, torch.zeros(1, dtype=torch.bool,
                                                          device=env.device)])
        last = last & out_ext[env.P][None] & (env.P < env.n)[None]
        freed = (last * self.out_bytes[env.P][None]).sum(2)
        own = (env.out_degree == 0) & ~self.is_output
        return freed + own[None, :] * self.out_bytes[None, : env.n]

    def features(self, state: EnvState, can_remove: torch.Tensor | None = None,
                 peak: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Dynamic node features (B, n, DYNAMIC_FEATURES) and pair features (B, n, m, PAIR)."""
        env = self.env
        B, n, m = state.batch, env.n, env.m
        sc = self.scale
        sched = state.scheduled
        ready = env.ready(state)
        if can_remove is None:
            can_remove = env.backward_mask(state)
        arr = env.arrival(state)  # (B, n, m)
        lane_ok = env.lane_ok(state)
        big = torch.finfo(arr.dtype).max
        arr_ok = torch.where(ready[:, :, None] & lane_ok[:, None, :], arr, big)
        est = arr_ok.min(dim=2).values  # (B, n)
        frontier = est.min(dim=1, keepdim=True).values
        frontier = torch.where(frontier >= big, torch.zeros_like(frontier), frontier)
        est_rel = torch.where(ready, (est - frontier) / sc, torch.zeros_like(est))
        start = state.start[:, :n]
        finish = torch.where(sched, state.finish[:, :n], torch.full_like(start, -1.0))
        lane_1h = torch.zeros((B, n, MAX_LANES), dtype=torch.float32, device=env.device)
        ln = state.lane.clamp(min=0, max=MAX_LANES - 1)
        lane_1h.scatter_(2, ln[:, :, None], sched[:, :, None].float())
        zeros = torch.zeros((B, n), dtype=torch.float64, device=env.device)
        if self.mem_ref is not None:  # memory features; zeros for the makespan task
            live = self.live_bytes(state)
            ref = self.mem_ref
            ob = self.out_bytes[None, :n]
            during = (live[:, None] + ob) / ref
            after = (live[:, None] + ob - self.frees(state)) / ref
            remaining = env.out_degree[None, :] - state.sched_children[:, :n]
            is_live = sched & ((remaining > 0) | self.is_output[None, :])
            pk = (peak / ref) if peak is not None else zeros[:, 0]
        else:
            during = after = zeros
            is_live = torch.zeros_like(sched)
            pk = zeros[:, 0]
        node = torch.cat([
            torch.stack([
                sched.float(), ready.float(), can_remove.float(),
                torch.where(sched, start / sc, torch.full_like(start, -1.0)).float(),
                torch.where(sched, finish / sc, finish).float(),
                est_rel.float(),
                torch.where(ready, during, torch.zeros_like(during)).clamp(max=4).float(),
                torch.where(ready, after, torch.zeros_like(after)).clamp(max=4).float(),
                is_live.float(),
                (pk[:, None].expand(B, n)).clamp(max=4).float(),
            ], dim=2),
            lane_1h,
        ], dim=2)
        # pair features
        arr_min = torch.where(ready[:, :, None] & lane_ok[:, None, :], arr,
                              torch.full_like(arr, big)).amin(dim=(1, 2))
        arr_min = torch.where(arr_min >= big, torch.zeros_like(arr_min), arr_min)
        free = state.lane_free
        free_min = free.min(dim=1, keepdim=True).values
        P = env.P.reshape(1, -1).expand(B, -1)
        pl = state.lane_ext.gather(1, P).reshape(B, n, -1)
        lanes = torch.arange(m, device=env.device)
        share = (pl[:, :, :, None] == lanes).sum(2).float() / self.parent_count[None, :, None]
        empty = (state.lane_len == 0)
        opener = lanes[None, :] == state.n_open[:, None]
        pair = torch.stack([
            ((arr - arr_min[:, None, None]) / sc).clamp(max=4).float(),
            ((arr - free[:, None, :]) / sc).clamp(max=4).float(),
            share,
            empty[:, None, :].expand(B, n, m).float(),
            ((free - free_min) / sc).clamp(max=4)[:, None, :].expand(B, n, m).float(),
            lane_ok[:, None, :].expand(B, n, m).float(),
            opener[:, None, :].expand(B, n, m).float(),
        ], dim=3)
        return node, pair
