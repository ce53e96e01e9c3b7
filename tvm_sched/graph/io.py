"""Conversions of :class:`~tvm_sched.graph.OpGraph`: the JSON document (format
``tvm_sched.OpGraph``, versioned), networkx graphs, and the content fingerprint.

Functions of a graph's public attributes; constructors take the class to build (``cls``), so this
module never imports the class and the class delegates its ``to_*``/``from_*`` methods here.

Examples
--------
>>> from tvm_sched.graph import OpGraph
>>> g = OpGraph(2, [(0, 1)], out_bytes=[4, 0])
>>> to_dict(g)["edges"]
[[0, 1, 4]]
>>> from_json(OpGraph, to_json(g)) == g
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from tvm_sched.errors import InvalidGraphError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "to_dict", "from_dict", "to_json", "from_json",
           "to_networkx", "from_networkx", "fingerprint"]

FORMAT_NAME = "tvm_sched.OpGraph"
FORMAT_VERSION = 1


def to_dict(g: Any) -> dict[str, Any]:
    """A JSON-serialisable dict with a format name and version."""
    src, dst, eb = g.src, g.dst, g.edge_bytes
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "meta": g.meta,  # a copy: the graph stays immutable
        "nodes": [
            {
                "name": g.names[v],
                "op": g.ops[v],
                "duration": float(g.duration[v]),
                "out_bytes": int(g.out_bytes[v]),
                "flops": float(g.flops[v]),
                "is_output": bool(g.is_output[v]),
            }
            for v in range(g.num_nodes)
        ],
        "edges": [[int(src[k]), int(dst[k]), int(eb[k])] for k in range(g.num_edges)],
    }


def from_dict(cls: type, d: Mapping[str, Any]) -> Any:
    """Inverse of :func:`to_dict`; rejects other formats and newer versions.

    Raises
    ------
    InvalidGraphError
        Not an OpGraph document, an unsupported version, a malformed document, or a graph that
        does not validate.
    """
    if not isinstance(d, Mapping) or d.get("format") != FORMAT_NAME:
        raise InvalidGraphError(f"not an OpGraph document (expected format {FORMAT_NAME!r})")
    version = d.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise InvalidGraphError(
            f"OpGraph format version {version!r} is not supported (this build reads "
            f"versions 1..{FORMAT_VERSION})"
        )
    try:
        nodes = list(d["nodes"])
        edges = [(int(e[0]), int(e[1])) for e in d["edges"]]
        eb = [e[2] for e in d["edges"]]
        return cls(
            len(nodes),
            edges,
            duration=[nd.get("duration", 1.0) for nd in nodes],
            out_bytes=[nd.get("out_bytes", 0) for nd in nodes],
            flops=[nd.get("flops", 0.0) for nd in nodes],
            is_output=[bool(nd.get("is_output", False)) for nd in nodes],
            edge_bytes=eb,
            names=[nd.get("name", f"n{i}") for i, nd in enumerate(nodes)],
            ops=[nd.get("op", "") for nd in nodes],
            meta=d.get("meta") or {},
        )
    except InvalidGraphError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        raise InvalidGraphError(f"malformed OpGraph document: {err!r}") from err


def to_json(g: Any, **kw: Any) -> str:
    return json.dumps(to_dict(g), **kw)


def from_json(cls: type, text: str) -> Any:
    """Inverse of :func:`to_json` (:class:`InvalidGraphError` on invalid JSON)."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidGraphError(f"not valid JSON: {err}") from err
    return from_dict(cls, d)


def to_networkx(g: Any):
    """A ``networkx.DiGraph`` with the node and edge attributes (``bytes`` on edges)."""
    import networkx as nx

    out = nx.DiGraph(**g.meta)
    for v in range(g.num_nodes):
        out.add_node(
            v,
            name=g.names[v],
            op=g.ops[v],
            duration=float(g.duration[v]),
            out_bytes=int(g.out_bytes[v]),
            flops=float(g.flops[v]),
            is_output=bool(g.is_output[v]),
        )
    for k in range(g.num_edges):
        out.add_edge(int(g.src[k]), int(g.dst[k]), bytes=int(g.edge_bytes[k]))
    return out


def from_networkx(cls: type, g: Any) -> Any:
    """Build from a directed networkx graph; nodes are numbered in ``g.nodes`` order.

    Missing attributes take the defaults of the class. Node attribute names are those written
    by :func:`to_networkx`; an edge's ``bytes`` attribute is its size.
    """
    if not g.is_directed():
        raise InvalidGraphError("from_networkx needs a directed graph (nx.DiGraph)")
    nodes = list(g.nodes)
    index = {v: i for i, v in enumerate(nodes)}
    data = [g.nodes[v] for v in nodes]

    def col(key: str, default: Any) -> list[Any]:
        return [d.get(key, default) for d in data]

    edges, eb = [], []
    for u, v, d in g.edges(data=True):
        edges.append((index[u], index[v]))
        eb.append(d.get("bytes"))
    out_bytes = col("out_bytes", 0)
    if any(b is None for b in eb):
        eb_arr = None if all(b is None for b in eb) else [
            out_bytes[u] if b is None else b for (u, _), b in zip(edges, eb, strict=True)
        ]
    else:
        eb_arr = eb
    return cls(
        len(nodes),
        edges,
        duration=col("duration", 1.0),
        out_bytes=out_bytes,
        flops=col("flops", 0.0),
        is_output=col("is_output", False),
        edge_bytes=eb_arr,
        names=[str(d.get("name", v)) for v, d in zip(nodes, data, strict=True)],
        ops=col("op", ""),
        meta=dict(g.graph),
    )


def fingerprint(g: Any) -> str:
    """SHA-256 of the canonical JSON form (structure, attributes; metadata excluded).

    Canonical: the edges are sorted, so the order in which they were listed does not matter.
    """
    d = to_dict(g)
    d.pop("meta")
    d["edges"] = sorted(d["edges"])
    blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
