"""Candidate orders for a model: baselines, solvers' proposals, random fill; proxies to rank them.

A candidate gives one order per dataflow block of ``main``. The baselines are always measured:
TVM's own order (``tvm``) and the four orders of TVM's ``TopologicalSort`` pass (depth- or
breadth-first, from inputs or from outputs). Solvers propose on their memory objective
(``planned_memory``, the exact replica of TVM's planner, where they handle it, else the liveness
``peak_memory``); uniformly random topological orders fill the pool up to the requested number.

Every candidate carries three proxies, summed over blocks:

- ``planned``: bytes TVM's static planner allocates (exact replica, :mod:`tvm_sched.cost`);
- ``peak``: liveness peak memory;
- ``cache_miss``: bytes re-read after they fell out of an LRU cache of the device's size
  (:func:`tvm_sched.cost.cache_miss_bytes`): the latency proxy, since on one device the sum of
  kernel times does not depend on the order but data reuse does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
from tvm import relax

from tvm_sched.cost import cache_miss_bytes, peak_memory_batch, planned_memory_batch
from tvm_sched.graph import priority_orders_batch, program_order
from tvm_sched.memory import arena_bytes_batch
from tvm_sched.relax.reorder import node_order
from tvm_sched.solvers import portfolio
from tvm_sched.solvers.portfolio import candidate_name
from tvm_sched.tune.candidate import Candidate
from tvm_sched.tune.model import TuneModel

__all__ = ["Candidate", "propose", "TOPO_SORTS", "default_cache_bytes", "tvm_orders"]

log = logging.getLogger(__name__)

TOPO_SORTS = [(o, d) for o in ("depth-first", "breadth-first")
              for d in ("from-inputs", "from-outputs")]


def default_cache_bytes() -> int:
    """This machine's L1 data cache size per core (from sysfs), 32 KiB when unknown.

    The first-level cache, not the last: the zoo's whole working sets fit in L2, where the
    proxy would see no misses at all.

    Returns
    -------
    int
        Bytes.
    """
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            with open(f"{base}/{entry}/level") as f:
                if f.read().strip() != "1":
                    continue
            with open(f"{base}/{entry}/type") as f:
                if f.read().strip() not in ("Data", "Unified"):
                    continue
            with open(f"{base}/{entry}/size") as f:
                text = f.read().strip().upper()
            mult = {"K": 1024, "M": 1024**2}.get(text[-1], 1)
            return int(text.rstrip("KM")) * mult
    except (OSError, ValueError):
        pass
    return 32 * 1024


def _score(model: TuneModel, cands: list[Candidate], cache_bytes: int, arena: bool) -> None:
    for gi, g in enumerate(model.graphs):
        orders = np.array([c.orders[gi] for c in cands], dtype=np.int64).reshape(len(cands), -1)
        planned = planned_memory_batch(g, orders)
        if arena:  # PlanArena keeps the smaller of its arena and TVM's plan
            planned = np.minimum(planned, arena_bytes_batch(g, orders))
        peak = peak_memory_batch(g, orders)
        for c, p, q, o in zip(cands, planned, peak, orders, strict=True):
            c.proxy["planned"] = c.proxy.get("planned", 0) + int(p)
            c.proxy["peak"] = c.proxy.get("peak", 0) + int(q)
            miss = cache_miss_bytes(g, o, cache_bytes)
            c.proxy["cache_miss"] = c.proxy.get("cache_miss", 0) + miss


def tvm_orders(model: TuneModel) -> tuple[tuple[int, ...], ...]:
    """TVM's own order of every graph of ``model`` (the ``tvm`` solver's order).

    Parameters
    ----------
    model
        The model to tune.

    Returns
    -------
    tuple of tuple of int
        One node order per graph.
    """
    return tuple(tuple(program_order(g).tolist()) for g in model.graphs)


def baselines(model: TuneModel) -> list[Candidate]:
    """TVM's order and the four ``TopologicalSort`` orders.

    A ``TopologicalSort`` that changes more than the order is skipped with a warning.

    Parameters
    ----------
    model
        The model to tune.

    Returns
    -------
    list of Candidate
        ``tvm`` first, all marked ``baseline``; proxies not filled in.
    """
    out = [Candidate("tvm", "baseline", tvm_orders(model), baseline=True)]
    for order, direction in TOPO_SORTS:
        sorted_mod = relax.transform.TopologicalSort(order=order, direction=direction)(model.mod)
        orders = [node_order(model.mod, g, sorted_mod) for g in model.graphs]
        if any(o is None for o in orders):
            log.warning("TopologicalSort %s %s changed more than the order; skipped",
                        order, direction)
            continue
        out.append(Candidate(f"topo-sort {order} {direction}", "baseline",
                             tuple(tuple(o) for o in orders), baseline=True))
    return out


def _solver_orders(model: TuneModel, name: str, budget: float, seed: int,
                   arena: bool = True) -> list[tuple]:
    """``name``'s candidates: its schedules of each block by the shared generator
    (:func:`tvm_sched.solvers.portfolio.propose`), the j-th candidate taking each block's j-th
    schedule (the block's last when it has fewer)."""
    objective = "arena_memory" if arena else "planned_memory"
    per_graph = []
    for g in model.graphs:
        got = portfolio.propose(g, objective, [name], budget=budget, seed=seed)
        per_graph.append([p.schedule.order for p in got])
        if not per_graph[-1]:
            return []  # skipped (the warning names why)
    k = max(len(p) for p in per_graph)
    return [tuple(tuple(p[min(j, len(p) - 1)]) for p in per_graph) for j in range(k)]


def propose(model: TuneModel, *, solvers: Sequence[str], candidates: int, seed: int = 0,
            budget: float = 2.0, cache_bytes: int | None = None,
            progress=None, arena: bool = True) -> list[Candidate]:
    """Baselines, then solvers' proposals, then random orders up to ``candidates`` in all.

    Baselines and solvers' proposals are never dropped, so there can be more than
    ``candidates`` when they alone exceed it. Duplicate orders are kept once (under the first
    name that produced them; the others are its aliases). Every candidate's proxies are filled
    in; with ``arena``, ``planned`` is what the arena pipeline allocates (the smaller of the
    greedy arena and TVM's plan) and solvers propose on ``arena_memory`` where they handle it.

    Parameters
    ----------
    model
        The model to tune.
    solvers
        Registered solver names.
    candidates
        How many candidates to reach with random orders.
    seed
        Seed of the solvers and of the random orders.
    budget
        Seconds per solver and block.
    cache_bytes
        Cache size of the cache-miss proxy; default :func:`default_cache_bytes`.
    progress
        Called with each solver's name once it is done.
    arena
        Score and propose for the arena pipeline.

    Returns
    -------
    list of Candidate
        Baselines, solvers' candidates, random ones; distinct orders, proxies filled in.

    Raises
    ------
    UnknownSolverError
        A name in ``solvers`` is not registered, when its turn comes (a run checks its names
        first: :meth:`~tvm_sched.tune.tuner.TuneConfig.check`). A solver whose package is
        missing is skipped with a warning, as :func:`~tvm_sched.solvers.portfolio.propose`
        does.
    """
    cache_bytes = default_cache_bytes() if cache_bytes is None else cache_bytes
    pool: list[Candidate] = []
    seen: dict[str, Candidate] = {}

    def add(c: Candidate) -> None:
        # whole candidates (an order per block) across baselines, solvers and random fill;
        # portfolio.propose sees one block and one solver at a time here, so this is no repeat
        if c.hash in seen:
            seen[c.hash].aliases.append(c.name)
        else:
            seen[c.hash] = c
            pool.append(c)

    for c in baselines(model):
        add(c)

    for name in solvers:
        for j, orders in enumerate(_solver_orders(model, name, budget, seed, arena)):
            add(Candidate(candidate_name(name, j), name, orders))
        if progress is not None:
            progress(name)
    rng = np.random.default_rng(seed)
    tries = 0
    while len(pool) < candidates and tries < 20:
        need = candidates - len(pool)
        per_graph = [priority_orders_batch(g, rng.random((need, g.num_nodes)))
                     for g in model.graphs]
        for j in range(need):
            add(Candidate(candidate_name("random", len(pool)), "random",
                          tuple(tuple(int(v) for v in p[j]) for p in per_graph)))
        tries += 1
    _score(model, pool, cache_bytes, arena)
    return pool
