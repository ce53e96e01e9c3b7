"""The random DAGs of the ICML'24 differentiable-scheduling benchmark (networkx GML files).

Contract of :func:`read_gml` (files ``<data>/icml24_random_dags/rand_graph_*.gml``, read with
``networkx.read_gml(path, label="id")``):

- the graph must be directed (``directed 1``), simple (no ``multigraph 1``) and acyclic;
- nodes are renumbered ``0..n-1`` in increasing GML ``id`` order (the ids of the shared files
  are ``0..n-1`` already, but edges do not always run from a lower to a higher id);
- node attribute ``parameter`` (the resource / memory weight of the stage objective) becomes
  ``out_bytes``; ``duration`` is 1 for every node; names are the node ``label`` (or the id),
  op kind ``"task"``;
- edge attribute ``parameter`` becomes ``edge_bytes`` (0 is allowed; a non-zero value marks an
  edge that carries data); edges are listed sorted by (source, target) in the new numbering;
- ``meta`` holds ``source`` (the path), ``format`` (``"gml"``) and ``name`` (the file stem);
- a file that cannot be parsed or does not satisfy the above raises
  :class:`~tvm_sched.errors.DatasetFormatError` naming the file, with the line when networkx's
  parser reports one, and the original exception chained.

networkx is imported when a file is read, not when this module is imported.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from tvm_sched.datasets.paths import icml24_root
from tvm_sched.errors import CycleError, DatasetFormatError, InvalidGraphError
from tvm_sched.graph import OpGraph

__all__ = ["read_gml", "icml24_graphs"]

# networkx's GML parser ends its syntax errors with "at (line, column)".
_NX_POSITION = re.compile(r"at \((\d+), (\d+)\)\s*$")


def _weight(value: Any, what: str, path: Path) -> int:
    """A non-negative integer attribute value (ints or integral floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetFormatError(str(path), None, f"{what} = {value!r} is not a number")
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise DatasetFormatError(
            str(path), None, f"{what} = {value!r} is not a non-negative integer"
        )
    return int(value)


def read_gml(path: str | os.PathLike[str]) -> OpGraph:
    """Read one ICML'24 random DAG.

    Parameters
    ----------
    path
        A networkx GML file with ``parameter`` attributes on nodes and edges.

    Returns
    -------
    OpGraph
        Nodes in increasing GML id order; see the module docstring for the attributes.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    DatasetFormatError
        When the file cannot be parsed (with the line when the parser reports it), the graph is
        undirected or a multigraph, a node or edge lacks a numeric non-negative integer
        ``parameter``, or the edges form a cycle.

    Examples
    --------
    >>> g = read_gml(icml24_root() / "rand_graph_sparse_1000_1.gml")
    >>> g.num_nodes, g.meta["name"], float(g.duration.max())
    (810, 'rand_graph_sparse_1000_1', 1.0)
    """
    import networkx as nx

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such GML file", str(path))
    try:
        g = nx.read_gml(path, label="id")
    except OSError:  # unreadable (permissions, a folder): not a format problem
        raise
    except Exception as err:  # networkx raises NetworkXError, ValueError, UnicodeError, ...
        msg = str(err) or type(err).__name__
        m = _NX_POSITION.search(msg)
        line = int(m.group(1)) if m else None
        raise DatasetFormatError(str(path), line, f"malformed GML: {msg}") from err

    if not g.is_directed():
        raise DatasetFormatError(str(path), None, "the graph is undirected; expected 'directed 1'")
    if g.is_multigraph():
        raise DatasetFormatError(str(path), None, "multigraphs are not supported")

    try:
        nodes = sorted(g.nodes)
    except TypeError as err:
        raise DatasetFormatError(str(path), None, f"node ids are not comparable: {err}") from err
    index = {v: i for i, v in enumerate(nodes)}
    out_bytes = []
    names = []
    for v in nodes:
        data = g.nodes[v]
        if "parameter" not in data:
            raise DatasetFormatError(str(path), None, f"node {v!r} has no 'parameter' attribute")
        out_bytes.append(_weight(data["parameter"], f"node {v!r} parameter", path))
        names.append(str(data.get("label", v)))
    edges = []
    edge_bytes = []
    for u, v, data in g.edges(data=True):
        if "parameter" not in data:
            raise DatasetFormatError(
                str(path), None, f"edge {u!r} -> {v!r} has no 'parameter' attribute"
            )
        edges.append((index[u], index[v]))
        edge_bytes.append(_weight(data["parameter"], f"edge {u!r} -> {v!r} parameter", path))

    order = sorted(range(len(edges)), key=edges.__getitem__)  # edges sorted by (src, dst)
    edges = [edges[k] for k in order]
    edge_bytes = [edge_bytes[k] for k in order]
    n = len(nodes)
    try:
        return OpGraph(
            n,
            edges,
            duration=[1.0] * n,
            out_bytes=out_bytes,
            edge_bytes=edge_bytes,
            names=names,
            ops=["task"] * n,
            meta={"source": str(path), "format": "gml", "name": path.stem},
        )
    except CycleError as err:
        ring = " -> ".join(repr(nodes[c]) for c in err.cycle + err.cycle[:1])
        raise DatasetFormatError(
            str(path), None, f"the edges form a cycle through nodes {ring}"
        ) from err
    except InvalidGraphError as err:
        raise DatasetFormatError(str(path), None, str(err)) from err


def icml24_graphs(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The ICML'24 random DAG files, sorted by name.

    Parameters
    ----------
    root
        The folder of the GML files; default :func:`~tvm_sched.datasets.icml24_root`.

    Returns
    -------
    list of Path
        ``<root>/*.gml`` in sorted order.

    Raises
    ------
    FileNotFoundError
        When ``root`` is not a folder.

    Examples
    --------
    >>> icml24_graphs()[0].name
    'rand_graph_10000_1.gml'
    """
    folder = Path(root if root is not None else icml24_root())
    if not folder.is_dir():
        raise FileNotFoundError(f"the ICML'24 random DAG folder {folder} does not exist")
    return sorted(folder.glob("*.gml"))
