"""Rewards: makespan (the paper's speedup reward) and peak memory, both tempered by sigma.

- **makespan**: ``U = sum of durations / makespan`` (the speedup over one lane) and
  ``log R = (U - m) / sigma`` (Zhang et al., ICLR 2023). The makespan is the environment's chain
  makespan, communication delays included when the task has a :class:`~tvm_sched.cost.Comm`.
- **memory** (one lane): ``log R = (ref / peak - 1) / sigma`` where ``peak`` is the liveness peak
  of the order and ``ref`` the best peak of three heuristics (least peak memory first, DFS, BFS;
  :func:`.features.memory_reference`). The ratio is 1 at the heuristics' best and above 1 when
  the sample beats them, so sigma has the same meaning as for makespan (a speedup of 1 lane).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tvm_sched.cost import Comm
from tvm_sched.cost.memory import peak_memory_batch
from tvm_sched.solvers.gflownet.env import EnvState
from tvm_sched.solvers.gflownet.features import GraphContext

__all__ = ["Task", "log_reward"]


@dataclass(frozen=True)
class Task:
    """What a trajectory is rewarded for: ``"makespan"`` on ``lanes`` lanes or ``"memory"``."""

    kind: str = "makespan"
    lanes: int = 4
    comm: Comm | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("makespan", "memory"):
            raise ValueError(f"unknown task {self.kind!r}")
        if self.kind == "memory" and self.lanes != 1:
            raise ValueError("the memory task is defined on one lane")

    @property
    def memory(self) -> bool:
        return self.kind == "memory"


def log_reward(ctx: GraphContext, task: Task, state: EnvState,
               sigma: float) -> tuple[torch.Tensor, np.ndarray]:
    """Log-rewards (B,) float32 and the objective values (B,) float64 of terminal states."""
    env = ctx.env
    if task.memory:
        peak = peak_memory_batch(env.graph, env.orders(state)).astype(np.float64)
        ref = ctx.mem_ref if ctx.mem_ref is not None else float(peak.min())
        log_r = (ref / np.maximum(peak, 1.0) - 1.0) / sigma
        return torch.tensor(log_r, dtype=torch.float32, device=env.device), peak
    ms = env.makespan(state)
    total = float(env.graph.duration.sum())
    if total <= 0:
        return torch.zeros(state.batch, device=env.device), ms.cpu().numpy()
    u = total / ms.clamp(min=1e-300)
    log_r = ((u - env.m) / sigma).float()
    return log_r, ms.cpu().numpy()
