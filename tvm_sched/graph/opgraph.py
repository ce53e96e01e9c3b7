"""``OpGraph``: an immutable operator DAG with per-node and per-edge attributes.

Nodes are operators numbered ``0..n-1`` in the program's own order. Each node has a name, an op
kind, a ``duration`` (seconds or abstract time units), ``out_bytes`` (the size of the tensor it
produces), ``flops`` and ``is_output`` (its tensor is a function output and is never freed).
Edges ``u -> v`` mean "v reads the tensor u produces" and carry ``bytes`` (by default the
producer's ``out_bytes``).

The graph is validated when it is built -- dangling or duplicate edges, self loops, cycles,
negative or non-finite sizes and durations, sizes above 2**53 bytes (or a total above 2**62,
which the int64 sums of the cost models could not hold) raise an
:class:`~tvm_sched.errors.InvalidGraphError` (or :class:`~tvm_sched.errors.CycleError`) that
names the offending node -- so a half-built graph never exists. All attributes are exposed as
read-only numpy arrays for fast vectorised cost evaluation, plus compressed adjacency (CSR) for
predecessors and successors.

This module holds the data and its validation; the algorithms (topological order, cycle
finding, levels) are :mod:`tvm_sched.graph.algorithms`, the orders built on a graph (depth- and
breadth-first, priority, least peak memory first) :mod:`tvm_sched.graph.orders`, and the
conversions (JSON, networkx, fingerprint) :mod:`tvm_sched.graph.io`, which the class's methods
call. Pure Python + numpy; networkx is imported lazily by :meth:`OpGraph.to_networkx`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from tvm_sched.errors import CycleError, InvalidGraphError
from tvm_sched.graph import algorithms as alg
from tvm_sched.graph import io
from tvm_sched.graph.io import FORMAT_NAME, FORMAT_VERSION

__all__ = ["OpGraph", "FORMAT_NAME", "FORMAT_VERSION"]

#: Largest byte count of one tensor: integers up to 2**53 are exact in float64 (sizes arrive as
#: JSON numbers) and a sum of many of them still fits the int64 the cost models add them in.
MAX_BYTES = 2**53
#: Largest total of all tensors of a graph (so that every partial sum fits in int64).
MAX_TOTAL_BYTES = 2**62


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _node_array(
    values: Sequence[float] | np.ndarray | None,
    n: int,
    what: str,
    names: Sequence[str],
    dtype: Any,
    default: float = 0.0,
) -> np.ndarray:
    if values is None:
        return _frozen(np.full(n, default, dtype=dtype))
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidGraphError(f"{what} must be numbers: {err}") from err
    if arr.shape != (n,):
        raise InvalidGraphError(f"{what} has shape {arr.shape}, expected ({n},) (one per node)")
    bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
    if bad.size:
        i = int(bad[0])
        raise InvalidGraphError(
            f"node {i} ({names[i]!r}) has {what} = {arr[i]!r}; it must be finite and >= 0"
        )
    if np.issubdtype(dtype, np.integer):
        if np.any(arr != np.round(arr)):
            i = int(np.flatnonzero(arr != np.round(arr))[0])
            raise InvalidGraphError(f"node {i} ({names[i]!r}) has non-integer {what} = {arr[i]!r}")
        _check_bytes(arr, what, lambda i: f"node {i} ({names[i]!r})")
    return _frozen(arr.astype(dtype))


def _check_bytes(arr: np.ndarray, what: str, where) -> None:
    """Byte counts must stay exact and their sums must not wrap around in int64."""
    big = np.flatnonzero(arr > MAX_BYTES)
    if big.size:
        i = int(big[0])
        raise InvalidGraphError(f"{where(i)} has {what} = {arr[i]:.6g}; it must be at most "
                                f"2**53 bytes")
    total = float(np.sum(arr))
    if total > MAX_TOTAL_BYTES:
        raise InvalidGraphError(f"the {what} of all nodes add up to {total:.6g}; the total must "
                                f"be at most 2**62 bytes")


def _output_mask(is_output: Sequence[bool] | np.ndarray | None, n: int) -> np.ndarray:
    """The frozen (n,) boolean ``is_output`` array (all False by default)."""
    if is_output is None:
        return _frozen(np.zeros(n, dtype=bool))
    out = np.asarray(is_output, dtype=bool)
    if out.shape != (n,):
        raise InvalidGraphError(f"is_output has shape {out.shape}, expected ({n},)")
    return _frozen(out.copy())


def _edge_arrays(edges: Iterable[tuple[int, int]], n: int,
                 names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Validated int64 ``(src, dst)`` of the edges: pairs of existing nodes, no loops or repeats."""
    edge_list = [tuple(e) for e in edges]
    for k, e in enumerate(edge_list):
        if len(e) != 2:
            raise InvalidGraphError(f"edge {k} is {e!r}; expected a pair (u, v)")
    try:
        src = np.array([int(u) for u, _ in edge_list], dtype=np.int64)
        dst = np.array([int(v) for _, v in edge_list], dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise InvalidGraphError(f"edge endpoints must be integers: {err}") from err
    for k in range(len(edge_list)):
        u, v = int(src[k]), int(dst[k])
        if not (0 <= u < n and 0 <= v < n):
            bad = u if not 0 <= u < n else v
            raise InvalidGraphError(
                f"edge {k} ({u} -> {v}) refers to node {bad}, which does not exist "
                f"(the graph has {n} nodes)"
            )
        if u == v:
            raise CycleError(f"node {u} ({names[u]!r}) has an edge to itself", [u])
    if src.size:
        keys = src * n + dst
        uniq, counts = np.unique(keys, return_counts=True)
        if np.any(counts > 1):
            key = int(uniq[np.flatnonzero(counts > 1)[0]])
            u, v = divmod(key, n)
            raise InvalidGraphError(
                f"duplicate edge {u} -> {v} ({names[u]!r} -> {names[v]!r})"
            )
    return src, dst


def _edge_byte_array(edge_bytes: Sequence[int] | np.ndarray | None, src: np.ndarray,
                     dst: np.ndarray, out_bytes: np.ndarray) -> np.ndarray:
    """Validated int64 bytes per edge (by default the producer's ``out_bytes``)."""
    if edge_bytes is None:
        return out_bytes[src].astype(np.int64) if src.size else np.zeros(0, np.int64)
    eb = np.asarray(edge_bytes, dtype=np.float64)
    if eb.shape != (src.size,):
        raise InvalidGraphError(
            f"edge_bytes has shape {eb.shape}, expected ({src.size},) (one per edge)"
        )
    bad = np.flatnonzero(~np.isfinite(eb) | (eb < 0) | (eb != np.round(eb)))
    if bad.size:
        k = int(bad[0])
        raise InvalidGraphError(
            f"edge {k} ({int(src[k])} -> {int(dst[k])}) has bytes = {eb[k]!r}; "
            "it must be a non-negative integer"
        )
    _check_bytes(eb, "bytes", lambda k: f"edge {k} ({int(src[k])} -> {int(dst[k])})")
    return eb.astype(np.int64)


class OpGraph:
    """An immutable operator DAG.

    Parameters
    ----------
    num_nodes
        Number of operators ``n``; nodes are ``0..n-1`` in program order.
    edges
        Pairs ``(u, v)``: ``v`` consumes the output of ``u``. Duplicates and self loops are errors.
    duration, out_bytes, flops, is_output
        One value per node (defaults: duration 1, out_bytes 0, flops 0, is_output False).
    edge_bytes
        Bytes carried by each edge, in the order of ``edges`` (default: the producer's out_bytes).
    names, ops
        Node names (default ``"n{i}"``) and op kinds (default ``""``).
    meta
        Free-form JSON-serialisable metadata (model, function, block, source file, ...).

    Raises
    ------
    InvalidGraphError
        On a dangling, self or duplicate edge, a negative / non-finite attribute, or a byte
        count above 2**53 (node or edge) or totalling above 2**62.
    CycleError
        When the edges contain a cycle; the message lists nodes on it.

    Examples
    --------
    >>> g = OpGraph(3, [(0, 1), (1, 2)], duration=[1, 2, 3])
    >>> g.num_nodes, g.num_edges, g.critical_path_length
    (3, 2, 6.0)
    >>> g.preds(2), g.succs(0)
    ((1,), (1,))
    """

    def __init__(
        self,
        num_nodes: int,
        edges: Iterable[tuple[int, int]] = (),
        *,
        duration: Sequence[float] | np.ndarray | None = None,
        out_bytes: Sequence[int] | np.ndarray | None = None,
        flops: Sequence[float] | np.ndarray | None = None,
        is_output: Sequence[bool] | np.ndarray | None = None,
        edge_bytes: Sequence[int] | np.ndarray | None = None,
        names: Sequence[str] | None = None,
        ops: Sequence[str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ):
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int | np.integer):
            raise InvalidGraphError(f"num_nodes must be an int, got {num_nodes!r}")
        n = int(num_nodes)
        if n < 0:
            raise InvalidGraphError(f"num_nodes must be >= 0, got {n}")
        self._n = n

        self._names = tuple(str(s) for s in names) if names is not None else tuple(
            f"n{i}" for i in range(n)
        )
        if len(self._names) != n:
            raise InvalidGraphError(f"{len(self._names)} names given for {n} nodes")
        self._ops = tuple(str(s) for s in ops) if ops is not None else ("",) * n
        if len(self._ops) != n:
            raise InvalidGraphError(f"{len(self._ops)} op kinds given for {n} nodes")

        self._duration = _node_array(duration, n, "duration", self._names, np.float64, 1.0)
        self._out_bytes = _node_array(out_bytes, n, "out_bytes", self._names, np.int64)
        self._flops = _node_array(flops, n, "flops", self._names, np.float64)
        self._is_output = _output_mask(is_output, n)

        src, dst = _edge_arrays(edges, n, self._names)
        self._src = _frozen(src)
        self._dst = _frozen(dst)
        self._edge_bytes = _frozen(_edge_byte_array(edge_bytes, src, dst, self._out_bytes))

        # CSR adjacency, neighbours sorted by node id.
        self._pred_ptr, self._pred_idx, self._pred_eid = map(_frozen, alg.csr(dst, src, n))
        self._succ_ptr, self._succ_idx, self._succ_eid = map(_frozen, alg.csr(src, dst, n))
        self._topo = _frozen(self._topological_order())
        self._meta = dict(meta) if meta else {}

    def _topological_order(self) -> np.ndarray:
        """Kahn's order of the nodes; raises CycleError, naming a cycle, when there is one."""
        n = self._n
        topo = alg.kahn(n, self._pred_ptr, self._succ_ptr, self._succ_idx)
        if topo.size != n:
            pp, pi = self._pred_ptr, self._pred_idx
            preds = [pi[pp[v] : pp[v + 1]] for v in range(n)]
            cycle = alg.find_cycle(preds, np.setdiff1d(np.arange(n), topo))
            names = " -> ".join(f"{c} ({self._names[c]!r})" for c in cycle + cycle[:1])
            raise CycleError(f"the graph has a cycle: {names}", cycle)
        return topo

    # ------------------------------------------------------------------ basic accessors
    @property
    def num_nodes(self) -> int:
        return self._n

    @property
    def num_edges(self) -> int:
        return int(self._src.size)

    def __len__(self) -> int:
        return self._n

    @property
    def src(self) -> np.ndarray:
        """Edge sources, shape (E,), int64."""
        return self._src

    @property
    def dst(self) -> np.ndarray:
        """Edge destinations, shape (E,), int64."""
        return self._dst

    @property
    def edges(self) -> list[tuple[int, int]]:
        return list(zip(self._src.tolist(), self._dst.tolist(), strict=True))

    @property
    def edge_bytes(self) -> np.ndarray:
        return self._edge_bytes

    @property
    def duration(self) -> np.ndarray:
        return self._duration

    @property
    def out_bytes(self) -> np.ndarray:
        return self._out_bytes

    @property
    def flops(self) -> np.ndarray:
        return self._flops

    @property
    def is_output(self) -> np.ndarray:
        return self._is_output

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def ops(self) -> tuple[str, ...]:
        return self._ops

    @property
    def meta(self) -> dict[str, Any]:
        """A copy of the metadata (the graph stays immutable)."""
        return dict(self._meta)

    @property
    def pred_ptr(self) -> np.ndarray:
        """CSR offsets: predecessors of v are ``pred_idx[pred_ptr[v]:pred_ptr[v+1]]``."""
        return self._pred_ptr

    @property
    def pred_idx(self) -> np.ndarray:
        return self._pred_idx

    @property
    def pred_eid(self) -> np.ndarray:
        """Edge ids aligned with ``pred_idx``."""
        return self._pred_eid

    @property
    def succ_ptr(self) -> np.ndarray:
        return self._succ_ptr

    @property
    def succ_idx(self) -> np.ndarray:
        return self._succ_idx

    @property
    def succ_eid(self) -> np.ndarray:
        return self._succ_eid

    def preds(self, v: int) -> tuple[int, ...]:
        return tuple(self._pred_idx[self._pred_ptr[v] : self._pred_ptr[v + 1]].tolist())

    def succs(self, v: int) -> tuple[int, ...]:
        return tuple(self._succ_idx[self._succ_ptr[v] : self._succ_ptr[v + 1]].tolist())

    @cached_property
    def pred_lists(self) -> tuple[tuple[int, ...], ...]:
        return tuple(self.preds(v) for v in range(self._n))

    @cached_property
    def succ_lists(self) -> tuple[tuple[int, ...], ...]:
        return tuple(self.succs(v) for v in range(self._n))

    @property
    def in_degree(self) -> np.ndarray:
        return np.diff(self._pred_ptr)

    @property
    def out_degree(self) -> np.ndarray:
        return np.diff(self._succ_ptr)

    # ------------------------------------------------------------------ derived structure
    @property
    def topological_order(self) -> np.ndarray:
        """A topological order (Kahn, smallest ready index first)."""
        return self._topo

    @cached_property
    def program_order_is_topological(self) -> bool:
        """Whether ``0..n-1`` itself is a topological order (true for extracted programs)."""
        return bool(np.all(self._src < self._dst))

    @cached_property
    def top_level(self) -> np.ndarray:
        """Earliest start of each node with unlimited lanes (ASAP), shape (n,), float64."""
        return _frozen(alg.top_level(self._duration, self._topo, self._pred_ptr, self._pred_idx))

    @cached_property
    def bottom_level(self) -> np.ndarray:
        """Longest path from each node to a sink, its own duration included, shape (n,)."""
        return _frozen(alg.bottom_level(self._duration, self._topo, self._succ_ptr,
                                        self._succ_idx))

    @cached_property
    def critical_path_length(self) -> float:
        """Length of the longest duration-weighted path (0 for an empty graph)."""
        return float(np.max(self.bottom_level)) if self._n else 0.0

    @cached_property
    def depth(self) -> np.ndarray:
        """Number of nodes on the longest path ending at each node, minus one (sources: 0)."""
        return _frozen(alg.depth(self._topo, self._pred_ptr, self._pred_idx))

    @property
    def total_duration(self) -> float:
        return float(self._duration.sum())

    # ------------------------------------------------------------------ derived graphs
    def replace(self, **attrs: Any) -> OpGraph:
        """A copy with some attributes replaced (``duration=``, ``out_bytes=``, ``meta=``, ...).

        Examples
        --------
        >>> g = OpGraph(2, [(0, 1)])
        >>> g.replace(duration=[3, 4]).total_duration
        7.0
        """
        kw: dict[str, Any] = dict(
            duration=self._duration,
            out_bytes=self._out_bytes,
            flops=self._flops,
            is_output=self._is_output,
            edge_bytes=self._edge_bytes,
            names=self._names,
            ops=self._ops,
            meta=self._meta,
        )
        unknown = set(attrs) - set(kw)
        if unknown:
            raise TypeError(f"OpGraph.replace() got unknown attributes {sorted(unknown)}")
        kw.update(attrs)
        return OpGraph(self._n, self.edges, **kw)

    def subgraph(self, nodes: Iterable[int], *, meta: Mapping[str, Any] | None = None) -> OpGraph:
        """The induced sub-graph on ``nodes``, renumbered in increasing original index."""
        keep = sorted({int(v) for v in nodes})
        for v in keep:
            if not 0 <= v < self._n:
                raise InvalidGraphError(f"subgraph node {v} does not exist")
        new = {v: i for i, v in enumerate(keep)}
        inside = np.zeros(self._n, dtype=bool)
        inside[keep] = True
        mask = inside[self._src] & inside[self._dst]
        idx = np.array(keep, dtype=np.int64)
        edges = [(new[u], new[v])
                 for u, v in zip(self._src[mask].tolist(), self._dst[mask].tolist(), strict=True)]
        return OpGraph(
            len(keep),
            edges,
            duration=self._duration[idx],
            out_bytes=self._out_bytes[idx],
            flops=self._flops[idx],
            is_output=self._is_output[idx],
            edge_bytes=self._edge_bytes[mask],
            names=[self._names[v] for v in keep],
            ops=[self._ops[v] for v in keep],
            meta=dict(self._meta if meta is None else meta),
        )

    # ------------------------------------------------------------------ conversion
    # (implemented in tvm_sched.graph.io)
    def to_networkx(self):
        """A ``networkx.DiGraph`` with the node and edge attributes (``bytes`` on edges)."""
        return io.to_networkx(self)

    @classmethod
    def from_networkx(cls, g: Any) -> OpGraph:
        """Build from a directed networkx graph (see :func:`tvm_sched.graph.io.from_networkx`)."""
        return io.from_networkx(cls, g)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict with a format name and version."""
        return io.to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OpGraph:
        """Inverse of :meth:`to_dict`; rejects other formats and newer versions."""
        return io.from_dict(cls, d)

    def to_json(self, **kw: Any) -> str:
        return io.to_json(self, **kw)

    @classmethod
    def from_json(cls, text: str) -> OpGraph:
        return io.from_json(cls, text)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON form (structure, attributes; metadata excluded)."""
        return io.fingerprint(self)

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OpGraph):
            return NotImplemented
        return self.fingerprint == other.fingerprint and self._meta == other._meta

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        src = self._meta.get("name") or self._meta.get("source") or ""
        tail = f", {src!r}" if src else ""
        return f"OpGraph(n={self._n}, edges={self.num_edges}{tail})"
