"""What TVM's static planner sees in a graph, read once into typed data (:class:`PlannerMeta`).

The Relax extraction (:func:`tvm_sched.relax.extract.extract`) records it in
``graph.meta["planner"]`` as plain JSON data: per node its ``kind`` (``"alloc"``, ``"view"``,
``"inplace"``, ``"opaque"``), its output tensors ``[bytes, dtype index, planned]`` and the
tensors it reads, ``[node, field]`` in argument order (seen through views and tuples), plus the
``dtypes`` the indices refer to, and the ``merged`` tensors of zero-copy concatenation.
:meth:`PlannerMeta.from_graph` is the one reader of that dict: it checks it and returns frozen,
typed data, so the planner replica
(:mod:`tvm_sched.cost.planned_memory`) and the arena planner (:mod:`tvm_sched.memory.arena`)
read the same tensors the same way.

A graph without that metadata (generated, STG, hand-built) reads as one tensor of ``out_bytes``
per node, all of one dtype, read by its successors, planned unless it is a function output or
empty.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from tvm_sched.errors import InvalidGraphError
from tvm_sched.graph import OpGraph

__all__ = ["OutputTensor", "PlannerMeta"]


@dataclass(frozen=True)
class OutputTensor:
    """One output tensor of a node: its bytes, its dtype (an index into ``dtypes``) and whether
    the planner serves it (False: it reaches the function's return value, another block or an
    opaque call)."""

    nbytes: int
    dtype: int
    planned: bool


@dataclass(frozen=True)
class PlannerMeta:
    """The planner's view of a graph (see the module docstring); build it with
    :meth:`from_graph`.

    Examples
    --------
    >>> g = OpGraph(3, [(0, 1), (1, 2)], out_bytes=[100, 8, 4], is_output=[0, 0, 1])
    >>> meta = PlannerMeta.from_graph(g)
    >>> meta.out[2], meta.reads[1]
    ((OutputTensor(nbytes=4, dtype=0, planned=False),), ((0, 0),))
    >>> [(v, k, t.nbytes) for v, k, t in meta.planned()]
    [(0, 0, 100), (1, 0, 8)]
    """

    #: Dtype names (the indices of :attr:`OutputTensor.dtype`); may be empty.
    dtypes: tuple[str, ...]
    #: Per node: ``"alloc"``, ``"view"``, ``"inplace"`` or ``"opaque"``.
    kind: tuple[str, ...]
    #: Per node: its output tensors in field order.
    out: tuple[tuple[OutputTensor, ...], ...]
    #: Per node: the tensors it reads, ``(node, field)`` in argument order.
    reads: tuple[tuple[tuple[int, int], ...], ...]
    #: Merged tensors (zero-copy concatenation): ``(node, ((producer, field, byte offset),
    #: ...))``, output 0 of ``node`` holding the listed outputs as slices (checked by the arena).
    merged: tuple[tuple[int, tuple[tuple[int, int, int], ...]], ...] = ()

    @property
    def num_dtypes(self) -> int:
        """Pools the planner keeps (at least one)."""
        used = max((t.dtype for ts in self.out for t in ts), default=-1) + 1
        return max(1, len(self.dtypes), used)

    def planned(self) -> list[tuple[int, int, OutputTensor]]:
        """The planned tensors as ``(node, field, tensor)``, in node and field order."""
        return [(v, k, t) for v, ts in enumerate(self.out) for k, t in enumerate(ts)
                if t.planned]

    @classmethod
    def from_graph(cls, graph: OpGraph) -> PlannerMeta:
        """Read ``graph.meta["planner"]`` (or the default of the module docstring); kept as
        long as the graph lives.

        Raises
        ------
        InvalidGraphError
            The metadata is malformed: a node count other than the graph's, an entry of the
            wrong shape or type, a negative size, or a read of a node outside the graph.
        """
        try:
            return _READ[graph]
        except KeyError:
            pass
        info = graph.meta.get("planner")
        meta = _default(graph) if info is None else _parse(info, graph.num_nodes)
        _READ[graph] = meta
        return meta


_READ: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _default(graph: OpGraph) -> PlannerMeta:
    n = graph.num_nodes
    out = tuple((OutputTensor(int(graph.out_bytes[v]), 0,
                              bool(graph.out_bytes[v] > 0 and not graph.is_output[v])),)
                for v in range(n))
    reads = tuple(tuple((int(u), 0) for u in graph.preds(v)) for v in range(n))
    return PlannerMeta(("default",), ("alloc",) * n, out, reads)


def _parse(info: dict, n: int) -> PlannerMeta:
    try:
        out, reads = info["out"], info["reads"]
        if len(out) != n or len(reads) != n:
            raise InvalidGraphError(
                f"meta['planner'] describes {len(out)} nodes, the graph has {n}")
        tensors = []
        for v in range(n):
            row = []
            for k, (nbytes, dtype, planned) in enumerate(out[v]):
                if int(nbytes) < 0:
                    raise InvalidGraphError(f"node {v} output {k} has {int(nbytes)} bytes")
                row.append(OutputTensor(int(nbytes), int(dtype), bool(planned)))
            tensors.append(tuple(row))
        read = []
        for v in range(n):
            row = tuple((int(u), int(k)) for u, k in reads[v])
            if any(not 0 <= u < n for u, _ in row):
                raise InvalidGraphError(f"node {v} reads a node outside 0..{n - 1}")
            read.append(row)
        kind = tuple(str(x) for x in info.get("kind", ("alloc",) * n))
        if len(kind) != n:
            raise InvalidGraphError(f"meta['planner'] has {len(kind)} kinds for {n} nodes")
        dtypes = tuple(str(x) for x in info.get("dtypes", ()))
        merged = tuple((int(c), tuple((int(u), int(k), int(off)) for u, k, off in inputs))
                       for c, inputs in info.get("merged") or ())
    except InvalidGraphError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise InvalidGraphError(f"malformed meta['planner']: {err!r}") from err
    return PlannerMeta(dtypes, kind, tuple(tensors), tuple(read), merged)
