"""Graph files: OpGraph JSON documents and one entry point for every supported format.

- :func:`save_json` writes ``graph.to_json()`` atomically (a temporary file in the same folder,
  then ``os.replace``), so a reader never sees a half-written file;
- :func:`load_json` reads it back; ``load_json(p) == graph`` after ``save_json(graph, p)``
  (structure, attributes and metadata);
- :func:`read_graph` dispatches on the file suffix: ``.stg`` (:func:`~tvm_sched.datasets.read_stg`),
  ``.gml`` (:func:`~tvm_sched.datasets.read_gml`), ``.json`` (:func:`load_json`).

Malformed files raise :class:`~tvm_sched.errors.DatasetFormatError` naming the file (and the line
for JSON syntax errors) with the cause chained; a missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from tvm_sched.datasets.gml import read_gml
from tvm_sched.datasets.stg import read_stg
from tvm_sched.errors import DatasetFormatError, InvalidGraphError
from tvm_sched.graph import OpGraph

__all__ = ["save_json", "load_json", "read_graph", "READERS"]


def save_json(graph: OpGraph, path: str | os.PathLike[str], *, indent: int | None = 1) -> Path:
    """Write a graph as an OpGraph JSON document, atomically.

    Parameters
    ----------
    graph
        The graph to write.
    path
        Destination file; its folder must exist. An existing file is replaced.
    indent
        JSON indentation (``None`` for the most compact form).

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> g = OpGraph(2, [(0, 1)], out_bytes=[8, 8])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = save_json(g, pathlib.Path(d) / "g.json")
    ...     load_json(p) == g
    True
    """
    path = Path(path)
    text = graph.to_json(indent=indent)
    try:  # mkstemp creates the file private (0600); keep a replaced file's mode, else 0644
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def load_json(path: str | os.PathLike[str]) -> OpGraph:
    """Read an OpGraph JSON document written by :func:`save_json` or ``OpGraph.to_json``.

    Parameters
    ----------
    path
        The JSON file.

    Returns
    -------
    OpGraph
        The graph, metadata included (nothing is added to it).

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    DatasetFormatError
        When the file is not valid JSON (the error carries the line), not an OpGraph document,
        or describes an invalid graph (a cycle, a dangling edge, ...).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetFormatError(str(path), None, f"not a text file ({err.reason})") from err
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetFormatError(
            str(path), err.lineno, f"not valid JSON: {err.msg} (column {err.colno})"
        ) from err
    try:
        return OpGraph.from_dict(doc)
    except (InvalidGraphError, ValueError, TypeError, KeyError, IndexError,
            AttributeError) as err:
        raise DatasetFormatError(str(path), None, f"not a valid OpGraph document: {err}") from err


READERS: dict[str, Callable[[Path], OpGraph]] = {
    ".gml": read_gml,
    ".json": load_json,
    ".stg": read_stg,
}
"""File suffix -> reader used by :func:`read_graph`."""


def read_graph(path: str | os.PathLike[str]) -> OpGraph:
    """Read a graph file of any supported format, chosen by its suffix.

    Parameters
    ----------
    path
        A ``.stg``, ``.gml`` or ``.json`` file (the suffix is matched case-insensitively).

    Returns
    -------
    OpGraph
        The graph, as the format's reader returns it.

    Raises
    ------
    FileNotFoundError
        When the file does not exist (checked before the suffix).
    DatasetFormatError
        When the suffix is not supported (the message lists the supported ones) or the file is
        malformed.

    Examples
    --------
    >>> from tvm_sched.datasets import stg_graphs
    >>> read_graph(stg_graphs(50)[0]).num_nodes
    50
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such graph file", str(path))
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        supported = ", ".join(sorted(READERS))
        raise DatasetFormatError(
            str(path), None,
            f"unsupported graph file suffix {path.suffix or '(none)'!r}; supported: {supported}",
        )
    return reader(path)
