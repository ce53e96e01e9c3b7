"""Random DAG families of "Robust Scheduling with GFlowNets" (Zhang et al., ICLR 2023).

The paper trains and evaluates on five families of random computation graphs: Erdős–Rényi,
layered, stochastic block model (SBM), Watts–Strogatz and Barabási–Albert. Here each family is a
function ``f(n, ..., *, seed, duration="uniform") -> OpGraph``; :func:`generate` picks one by
name.

Contract (every family):

- the result has exactly ``n`` nodes (``n >= 1``) and its node ids are a topological order:
  every edge runs from a lower to a higher id (``graph.program_order_is_topological``);
- except for ``layered``, the undirected graph is drawn with networkx, the nodes get a random
  ranking (a uniformly random permutation), every edge is oriented from the lower to the higher
  rank, and the rank becomes the node id;
- ``layered`` is built directly: the nodes are split into ``layers`` non-empty layers of random
  sizes (one node each plus a uniform multinomial split of the rest; ids run layer by layer);
  each node links to each node of the next layer with probability ``p``, every node past the
  first layer gets at least one predecessor in the layer before it, and a few skip edges
  (``skip`` per node on average) jump two or more layers ahead;
- ``duration``: ``"uniform"`` draws U[0, 1) per node, ``"unit"`` gives 1 to every node (the
  random draws are made either way, so both modes give the same structure and sizes);
- ``out_bytes``: a uniformly random multiple of 4096 bytes (one page) between 4 KiB and 1 MiB;
  every edge carries its producer's ``out_bytes``;
- op kind: the family name; ``meta``: ``family``, ``seed``, ``n``, ``duration``, ``name`` and the
  parameters actually used (defaults resolved);
- the same arguments and seed give an identical graph (same ``fingerprint``): every random draw
  comes from ``numpy.random.default_rng(seed)`` (networkx gets integer seeds drawn from it), and
  no global random state is touched.

The defaults give sparse, mostly connected graphs of average total degree (in + out) about 3–4:
Erdős–Rényi ``p = 3 / (n - 1)`` (degree 3); layered ``layers = round(sqrt(n))``,
``p = 1 / width`` with ``width = n / layers`` and ``skip = 0.25`` (degree about 3); SBM
``blocks = round(sqrt(n) / 2)`` near-equal blocks with expected within-block degree 2.5 and
between-block degree 0.5; Watts–Strogatz ``k = 4`` ring neighbours rewired with probability
``p = 0.1`` (degree 4); Barabási–Albert ``m = 2`` edges per new node (degree about 4). Parameters
that cannot be met on tiny graphs (``k`` or ``m`` of ``n`` or more) are capped at ``n - 1``.

networkx is imported when a graph is generated, not when this module is imported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tvm_sched.graph import OpGraph

__all__ = [
    "FAMILIES",
    "PAGE_BYTES",
    "MAX_OUT_BYTES",
    "generate",
    "erdos_renyi",
    "layered",
    "sbm",
    "watts_strogatz",
    "barabasi_albert",
]

FAMILIES = ("erdos_renyi", "layered", "sbm", "watts_strogatz", "barabasi_albert")
PAGE_BYTES = 4096
MAX_OUT_BYTES = 1 << 20
_DURATIONS = ("uniform", "unit")


# ---------------------------------------------------------------------------------- helpers
def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return int(n)


def _rng(seed: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(int(seed))


def _check_prob(p: float, what: str) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{what} must be a probability in [0, 1], got {p!r}")
    return p


def _nx_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**32))


def _orient(n: int, pairs: Iterable[tuple[int, int]], rng: np.random.Generator) -> list[
        tuple[int, int]]:
    """Rank the nodes at random, orient each pair from lower to higher rank, relabel by rank."""
    rank = rng.permutation(n)
    edges = set()
    for u, v in pairs:
        a, b = int(rank[u]), int(rank[v])
        if a != b:
            edges.add((a, b) if a < b else (b, a))
    return sorted(edges)


def _finish(family: str, n: int, edges: list[tuple[int, int]], rng: np.random.Generator,
            seed: int, duration: str, params: dict[str, Any]) -> OpGraph:
    """Draw node attributes and build the graph (the draws happen in a fixed order)."""
    if duration not in _DURATIONS:
        raise ValueError(f"duration must be one of {_DURATIONS}, got {duration!r}")
    uniform = rng.random(n)
    pages = rng.integers(1, MAX_OUT_BYTES // PAGE_BYTES + 1, size=n)
    meta = {
        "family": family,
        "seed": int(seed),
        "n": n,
        "duration": duration,
        "name": f"{family}-n{n}-s{int(seed)}",
        **params,
    }
    return OpGraph(
        n,
        edges,
        duration=uniform if duration == "uniform" else np.ones(n),
        out_bytes=pages * PAGE_BYTES,
        ops=[family] * n,
        meta=meta,
    )


# ---------------------------------------------------------------------------------- families
def erdos_renyi(n: int, p: float | None = None, *, seed: int,
                duration: str = "uniform") -> OpGraph:
    """An Erdős–Rényi G(n, p) graph oriented into a DAG by a random ranking.

    Parameters
    ----------
    n
        Number of nodes (>= 1).
    p
        Edge probability; default ``min(1, 3 / (n - 1))`` (average degree 3).
    seed
        Seed of the random generator.
    duration
        ``"uniform"`` (U[0, 1)) or ``"unit"``.

    Returns
    -------
    OpGraph
        See the module docstring.

    Raises
    ------
    ValueError
        On ``n < 1``, a negative or non-integer seed, ``p`` outside [0, 1] or an unknown
        duration mode.

    Examples
    --------
    >>> g = erdos_renyi(30, seed=0)
    >>> g.num_nodes, g.program_order_is_topological, g.meta["family"]
    (30, True, 'erdos_renyi')
    """
    import networkx as nx

    n = _check_n(n)
    rng = _rng(seed)
    if p is None:
        p = min(1.0, 3.0 / (n - 1)) if n > 1 else 0.0
    p = _check_prob(p, "p")
    und = nx.fast_gnp_random_graph(n, p, seed=_nx_seed(rng))
    edges = _orient(n, und.edges, rng)
    return _finish("erdos_renyi", n, edges, rng, seed, duration, {"p": p})


def _layer_sizes(n: int, layers: int, rng: np.random.Generator) -> np.ndarray:
    """Random positive layer sizes summing to ``n``: 1 each plus a uniform multinomial split."""
    return 1 + rng.multinomial(n - layers, np.full(layers, 1.0 / layers))


def layered(n: int, *, layers: int | None = None, p: float | None = None, skip: float = 0.25,
            seed: int, duration: str = "uniform") -> OpGraph:
    """A layered DAG: edges to the next layer, plus a few skip edges further ahead.

    Parameters
    ----------
    n
        Number of nodes (>= 1).
    layers
        Number of layers, 1..n; default ``round(sqrt(n))``. Layer sizes are random (each >= 1).
    p
        Probability of each edge from a layer to the next; default ``min(1, 1 / width)`` with
        ``width = n / layers``. Every node past the first layer also gets one predecessor in
        the layer before it when the draw gave it none.
    skip
        Expected number of skip edges (to a layer two or more ahead) per node, >= 0.
    seed
        Seed of the random generator.
    duration
        ``"uniform"`` (U[0, 1)) or ``"unit"``.

    Returns
    -------
    OpGraph
        Ids run layer by layer; ``meta["layer_sizes"]`` lists the layer sizes.

    Raises
    ------
    ValueError
        On ``n < 1``, ``layers`` outside 1..n, ``p`` outside [0, 1], a negative ``skip``, a
        negative or non-integer seed, or an unknown duration mode.

    Examples
    --------
    >>> g = layered(20, layers=4, seed=1)
    >>> sum(g.meta["layer_sizes"]), int(g.depth.max()) <= 3
    (20, True)
    """
    n = _check_n(n)
    rng = _rng(seed)
    num_layers = max(1, round(math.sqrt(n))) if layers is None else int(layers)
    if not 1 <= num_layers <= n:
        raise ValueError(f"layers must be in 1..{n}, got {layers!r}")
    width = n / num_layers
    p = _check_prob(min(1.0, 1.0 / width) if p is None else p, "p")
    if not skip >= 0:
        raise ValueError(f"skip must be >= 0, got {skip!r}")

    sizes = _layer_sizes(n, num_layers, rng)
    start = np.concatenate([[0], np.cumsum(sizes)])
    edges: list[tuple[int, int]] = []
    for k in range(num_layers - 1):
        a0, a1, b0, b1 = int(start[k]), int(start[k + 1]), int(start[k + 1]), int(start[k + 2])
        hit = rng.random((a1 - a0, b1 - b0)) < p
        orphans = np.flatnonzero(~hit.any(axis=0))
        hit[rng.integers(0, a1 - a0, size=orphans.size), orphans] = True
        rows, cols = np.nonzero(hit)
        edges.extend(zip((rows + a0).tolist(), (cols + b0).tolist(), strict=True))

    # Skip edges: node u of layer k may reach any node from the start of layer k + 2 on.
    layer_of = np.repeat(np.arange(num_layers), sizes)
    first_target = np.where(layer_of + 2 < num_layers,
                            start[np.minimum(layer_of + 2, num_layers)], n)
    targets = n - first_target
    total = int(targets.sum())
    q = min(1.0, skip * n / total) if total else 0.0
    counts = rng.binomial(targets, q) if total else np.zeros(n, dtype=np.int64)
    for u in np.flatnonzero(counts):
        chosen = rng.choice(int(targets[u]), size=int(counts[u]), replace=False)
        edges.extend((int(u), int(first_target[u] + c)) for c in np.sort(chosen))

    params = {"layers": num_layers, "p": p, "skip": float(skip),
              "layer_sizes": [int(s) for s in sizes]}
    return _finish("layered", n, sorted(edges), rng, seed, duration, params)


def sbm(n: int, *, blocks: int | None = None, p_in: float | None = None,
        p_out: float | None = None, seed: int, duration: str = "uniform") -> OpGraph:
    """A stochastic block model graph oriented into a DAG by a random ranking.

    Parameters
    ----------
    n
        Number of nodes (>= 1).
    blocks
        Number of blocks, 1..n, of near-equal sizes; default ``max(1, round(sqrt(n) / 2))``.
    p_in
        Edge probability inside a block; default gives expected within-block degree 2.5.
    p_out
        Edge probability between blocks; default gives expected between-block degree 0.5.
    seed
        Seed of the random generator.
    duration
        ``"uniform"`` (U[0, 1)) or ``"unit"``.

    Returns
    -------
    OpGraph
        ``meta["block_sizes"]`` lists the block sizes (blocks are mixed by the ranking).

    Raises
    ------
    ValueError
        On ``n < 1``, ``blocks`` outside 1..n, a probability outside [0, 1], a negative or
        non-integer seed, or an unknown duration mode.

    Examples
    --------
    >>> g = sbm(40, seed=2)
    >>> g.num_nodes, g.meta["block_sizes"]
    (40, [14, 13, 13])
    """
    import networkx as nx

    n = _check_n(n)
    rng = _rng(seed)
    num_blocks = max(1, round(math.sqrt(n) / 2)) if blocks is None else int(blocks)
    if not 1 <= num_blocks <= n:
        raise ValueError(f"blocks must be in 1..{n}, got {blocks!r}")
    sizes = [len(part) for part in np.array_split(np.arange(n), num_blocks)]
    size = n / num_blocks
    if p_in is None:
        p_in = min(1.0, 2.5 / (size - 1)) if size > 1 else 0.0
    if p_out is None:
        p_out = min(1.0, 0.5 / (n - size)) if n > size else 0.0
    p_in = _check_prob(p_in, "p_in")
    p_out = _check_prob(p_out, "p_out")
    probs = [[p_in if i == j else p_out for j in range(num_blocks)] for i in range(num_blocks)]
    und = nx.stochastic_block_model(sizes, probs, seed=_nx_seed(rng), sparse=True)
    edges = _orient(n, und.edges, rng)
    params = {"blocks": num_blocks, "p_in": p_in, "p_out": p_out, "block_sizes": sizes}
    return _finish("sbm", n, edges, rng, seed, duration, params)


def watts_strogatz(n: int, *, k: int = 4, p: float = 0.1, seed: int,
                   duration: str = "uniform") -> OpGraph:
    """A Watts–Strogatz small-world graph oriented into a DAG by a random ranking.

    Parameters
    ----------
    n
        Number of nodes (>= 1).
    k
        Each node starts linked to its ``k`` nearest ring neighbours (``k // 2`` on each side);
        capped at ``n - 1``.
    p
        Probability of rewiring each ring edge.
    seed
        Seed of the random generator.
    duration
        ``"uniform"`` (U[0, 1)) or ``"unit"``.

    Returns
    -------
    OpGraph
        See the module docstring; ``meta["k"]`` is the value used after capping.

    Raises
    ------
    ValueError
        On ``n < 1``, a negative ``k``, ``p`` outside [0, 1], a negative or non-integer seed,
        or an unknown duration mode.

    Examples
    --------
    >>> g = watts_strogatz(30, seed=3)
    >>> g.num_edges
    60
    """
    import networkx as nx

    n = _check_n(n)
    rng = _rng(seed)
    if int(k) < 0:
        raise ValueError(f"k must be >= 0, got {k!r}")
    k_used = min(int(k), n - 1)
    p = _check_prob(p, "p")
    und = nx.watts_strogatz_graph(n, k_used, p, seed=_nx_seed(rng))
    edges = _orient(n, und.edges, rng)
    return _finish("watts_strogatz", n, edges, rng, seed, duration, {"k": k_used, "p": p})


def barabasi_albert(n: int, *, m: int = 2, seed: int, duration: str = "uniform") -> OpGraph:
    """A Barabási–Albert preferential-attachment graph oriented into a DAG by a random ranking.

    Parameters
    ----------
    n
        Number of nodes (>= 1).
    m
        Edges from each new node to existing nodes (>= 1); capped at ``n - 1``.
    seed
        Seed of the random generator.
    duration
        ``"uniform"`` (U[0, 1)) or ``"unit"``.

    Returns
    -------
    OpGraph
        See the module docstring; ``meta["m"]`` is the value used after capping.

    Raises
    ------
    ValueError
        On ``n < 1``, ``m < 1``, a negative or non-integer seed, or an unknown duration mode.

    Examples
    --------
    >>> g = barabasi_albert(30, seed=4)
    >>> g.num_edges
    56
    """
    import networkx as nx

    n = _check_n(n)
    rng = _rng(seed)
    if int(m) < 1:
        raise ValueError(f"m must be >= 1, got {m!r}")
    m_used = min(int(m), n - 1)
    nx_seed = _nx_seed(rng)
    und = nx.barabasi_albert_graph(n, m_used, seed=nx_seed) if m_used >= 1 else nx.empty_graph(n)
    edges = _orient(n, und.edges, rng)
    return _finish("barabasi_albert", n, edges, rng, seed, duration, {"m": m_used})


_BUILDERS: dict[str, Callable[..., OpGraph]] = {
    "erdos_renyi": erdos_renyi,
    "layered": layered,
    "sbm": sbm,
    "watts_strogatz": watts_strogatz,
    "barabasi_albert": barabasi_albert,
}


def generate(family: str, n: int, *, seed: int, **params: Any) -> OpGraph:
    """Generate a random DAG of one of the :data:`FAMILIES` by name.

    Parameters
    ----------
    family
        One of ``FAMILIES``.
    n
        Number of nodes (>= 1).
    seed
        Seed of the random generator.
    **params
        Keyword parameters of the family's function (``p``, ``layers``, ``k``, ``duration``...).

    Returns
    -------
    OpGraph
        The family function's result.

    Raises
    ------
    ValueError
        On an unknown family (the message lists the known ones) or an invalid parameter.
    TypeError
        On a parameter the family does not take.

    Examples
    --------
    >>> generate("layered", 12, seed=0) == layered(12, seed=0)
    True
    """
    try:
        builder = _BUILDERS[family]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown DAG family {family!r}; choose one of {', '.join(FAMILIES)}"
        ) from None
    return builder(n, seed=seed, **params)
