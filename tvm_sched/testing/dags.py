"""Canonical small DAGs for tests, tutorials and the solver conformance suite.

Every builder is deterministic: the same arguments give the same :class:`OpGraph` (equal
fingerprints). Durations and sizes are non-trivial (not all equal), so that an order or a lane
assignment actually changes the makespan, the peak memory and the stage cost; sinks are marked as
function outputs in some graphs and not in others, so both liveness rules get exercised.

Examples
--------
>>> g = diamond()
>>> g.num_nodes, g.edges
(4, [(0, 1), (0, 2), (1, 3), (2, 3)])
>>> sorted(canonical_dags())[:3]
['chain', 'diamond', 'fork']
"""

from __future__ import annotations

import numpy as np

from tvm_sched.graph import OpGraph

__all__ = [
    "chain",
    "diamond",
    "fork",
    "join",
    "wide",
    "fork_join",
    "random_dag",
    "canonical_dags",
]

_OPS = ("conv2d", "matmul", "add", "relu", "softmax", "concat")


def _check_count(what: str, k: int, least: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < least:
        raise ValueError(f"{what} must be an integer >= {least}, got {k!r}")
    return int(k)


def _durations(n: int) -> list[float]:
    # 1.0, 3.5, 2.5, 1.5, 0.5, 3.0, 2.0, ...: a fixed, varied pattern of exact binary fractions
    return [0.5 * (1 + (5 * i + 1) % 7) for i in range(n)]


def _out_bytes(n: int) -> list[int]:
    return [256 * (1 + (3 * i + 2) % 5) for i in range(n)]


def _build(n: int, edges: list[tuple[int, int]], outputs: list[int], name: str) -> OpGraph:
    is_output = np.zeros(n, dtype=bool)
    is_output[outputs] = True
    return OpGraph(
        n,
        edges,
        duration=_durations(n),
        out_bytes=_out_bytes(n),
        flops=[1e6 * d for d in _durations(n)],
        is_output=is_output,
        names=[f"{name}_{i}" for i in range(n)],
        ops=[_OPS[i % len(_OPS)] for i in range(n)],
        meta={"name": name},
    )


def chain(n: int) -> OpGraph:
    """``0 -> 1 -> ... -> n-1``; the last node is an output."""
    n = _check_count("chain length", n, 1)
    return _build(n, [(i, i + 1) for i in range(n - 1)], [n - 1], f"chain{n}")


def diamond() -> OpGraph:
    """``0 -> {1, 2} -> 3``; node 3 is an output."""
    return _build(4, [(0, 1), (0, 2), (1, 3), (2, 3)], [3], "diamond")


def fork(k: int) -> OpGraph:
    """One root (node 0) feeding ``k`` leaves ``1..k``; every other leaf is an output."""
    k = _check_count("fork width", k, 1)
    return _build(k + 1, [(0, i) for i in range(1, k + 1)], list(range(1, k + 1, 2)), f"fork{k}")


def join(k: int) -> OpGraph:
    """``k`` sources ``0..k-1`` feeding one sink (node ``k``), which is an output."""
    k = _check_count("join width", k, 1)
    return _build(k + 1, [(i, k) for i in range(k)], [k], f"join{k}")


def wide(k: int) -> OpGraph:
    """``k`` independent nodes (no edges); the even ones are outputs."""
    k = _check_count("wide width", k, 1)
    return _build(k, [], list(range(0, k, 2)), f"wide{k}")


def fork_join(k: int) -> OpGraph:
    """``0 -> {1..k} -> k+1``: a fork of width ``k`` closed by a join; no node is an output."""
    k = _check_count("fork_join width", k, 1)
    edges = [(0, i) for i in range(1, k + 1)] + [(i, k + 1) for i in range(1, k + 1)]
    return _build(k + 2, edges, [], f"fork_join{k}")


def random_dag(n: int, p: float, *, seed: int, int_durations: bool = False) -> OpGraph:
    """An Erdős–Rényi DAG: each pair ``u < v`` is an edge with probability ``p``.

    Durations are integers in ``1..9`` with ``int_durations``, else reals in ``[0.5, 5)``;
    ``out_bytes`` are multiples of 64 up to 4 KiB; each sink is an output with probability 1/2.
    Program order ``0..n-1`` is topological.

    Examples
    --------
    >>> random_dag(12, 0.3, seed=1) == random_dag(12, 0.3, seed=1)
    True
    """
    n = _check_count("random_dag size", n, 0)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"edge probability must lie in [0, 1], got {p!r}")
    rng = np.random.default_rng(seed)
    mask = np.triu(rng.random((n, n)) < p, k=1)
    src, dst = np.nonzero(mask)
    edges = list(zip(src.tolist(), dst.tolist(), strict=True))
    if int_durations:
        duration = rng.integers(1, 10, size=n).astype(np.float64)
    else:
        duration = np.round(rng.uniform(0.5, 5.0, size=n), 3)
    out_bytes = 64 * rng.integers(1, 65, size=n)
    sinks = ~mask.any(axis=1)
    is_output = sinks & (rng.random(n) < 0.5)
    return OpGraph(
        n,
        edges,
        duration=duration,
        out_bytes=out_bytes,
        flops=np.round(duration * 1e6),
        is_output=is_output,
        names=[f"op{i}" for i in range(n)],
        ops=[_OPS[int(i)] for i in rng.integers(0, len(_OPS), size=n)],
        meta={"name": f"random_dag(n={n}, p={p:g}, seed={seed})"},
    )


def canonical_dags() -> dict[str, OpGraph]:
    """The canonical test set: chain, diamond, fork, join, wide, fork_join and two random DAGs."""
    return {
        "chain": chain(6),
        "diamond": diamond(),
        "fork": fork(4),
        "join": join(4),
        "wide": wide(5),
        "fork_join": fork_join(4),
        "random12": random_dag(12, 0.25, seed=1),
        "random30": random_dag(30, 0.12, seed=2),
    }
