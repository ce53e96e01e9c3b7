"""Kasahara's Standard Task Graph Set (STG): task graphs and their published optimal makespans.

File format (``<data>/stg/50/rand0000.stg``)::

    n                         # number of real tasks
    id cost npred pred...     # n + 2 lines: task 0 = dummy entry, task n+1 = dummy exit
    # comment lines, e.g. "# CP Length : 55"

Contract of :func:`read_stg`:

- the ``n`` real tasks become nodes ``0..n-1`` (task ``i`` -> node ``i - 1``), whatever the
  order in which the file lists them; edges from the dummy entry and into the dummy exit are
  dropped (they carry no work: both dummies must have cost 0);
- ``duration`` is the task cost, ``out_bytes`` 0, names ``"t<i>"`` (the file's task ids), op kind
  ``"task"``; ``meta`` holds ``source`` (the path), ``format`` (``"stg"``), ``name``
  (``"<folder>/<stem>"``, e.g. ``"50/rand0000"``, the key of :func:`read_stg_optima`) and, when
  the generator comment is present, ``cp_length`` (an int);
- anything malformed raises :class:`~tvm_sched.errors.DatasetFormatError` with the 1-based line
  number of the offending line (for a truncated file: the line after the last one); no
  half-built graph is ever returned.

The optimum tables ``optimal/Case<size>_<lanes>_OPT.csv`` hold one row per (graph, lanes):
``50/rand0000.stg,2,131`` is a proven optimum, ``100/rand0012.stg,2,296,312`` an open instance
(lower bound 296, best known makespan 312).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tvm_sched.datasets.paths import stg_root
from tvm_sched.errors import CycleError, DatasetFormatError, InvalidGraphError
from tvm_sched.graph import OpGraph

__all__ = ["StgOptimum", "read_stg", "read_stg_optima", "stg_graphs"]

_CP_LENGTH = re.compile(r"^#\s*CP\s+Length\s*:\s*(\d+)\s*$", re.IGNORECASE)
_OPT_FILE = re.compile(r"^Case(\d+)_(\d+)_OPT\.csv$")


@dataclass(frozen=True)
class StgOptimum:
    """The published optimum of one STG graph on a number of identical processors.

    Attributes
    ----------
    graph
        Graph name as in :func:`read_stg`'s ``meta["name"]``, e.g. ``"50/rand0000"``.
    lanes
        Number of processors.
    lower
        Best proven lower bound on the makespan (equal to ``best`` when proven).
    best
        Best known makespan (the optimum when ``proven``).
    proven
        Whether ``best`` is proven optimal.
    """

    graph: str
    lanes: int
    lower: int
    best: int
    proven: bool


@dataclass(frozen=True)
class _Task:
    tid: int
    cost: float
    preds: tuple[int, ...]
    line: int


def _read_lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except UnicodeDecodeError as err:
        raise DatasetFormatError(str(path), None, f"not a text file ({err.reason})") from err


def _is_skipped(line: str) -> bool:
    s = line.strip()
    return not s or s.startswith("#")


def _parse_int(token: str, what: str, path: Path, lineno: int) -> int:
    try:
        return int(token)
    except ValueError:
        raise DatasetFormatError(str(path), lineno, f"{what} {token!r} is not an integer") from None


def _parse_cost(token: str, what: str, path: Path, lineno: int) -> float:
    try:
        cost = float(token)
    except ValueError:
        raise DatasetFormatError(str(path), lineno, f"{what} {token!r} is not a number") from None
    if not math.isfinite(cost):
        raise DatasetFormatError(str(path), lineno, f"{what} {token!r} is not finite")
    if cost < 0:
        raise DatasetFormatError(str(path), lineno, f"{what} {token!r} is negative")
    return cost


def _parse_task(tokens: list[str], n: int, path: Path, lineno: int) -> _Task:
    if len(tokens) < 3:
        raise DatasetFormatError(
            str(path), lineno, f"expected 'id cost npred pred...', got {len(tokens)} field(s)"
        )
    tid = _parse_int(tokens[0], "task id", path, lineno)
    if not 0 <= tid <= n + 1:
        raise DatasetFormatError(
            str(path), lineno, f"task id {tid} is out of range 0..{n + 1} (n = {n})"
        )
    cost = _parse_cost(tokens[1], f"cost of task {tid}", path, lineno)
    npred = _parse_int(tokens[2], f"predecessor count of task {tid}", path, lineno)
    preds = [_parse_int(t, f"predecessor of task {tid}", path, lineno) for t in tokens[3:]]
    if npred != len(preds):
        raise DatasetFormatError(
            str(path), lineno,
            f"task {tid} declares {npred} predecessor(s) but lists {len(preds)}",
        )
    seen: set[int] = set()
    for p in preds:
        if not 0 <= p <= n + 1:
            raise DatasetFormatError(
                str(path), lineno,
                f"predecessor {p} of task {tid} is out of range 0..{n + 1} (n = {n})",
            )
        if p == tid:
            raise DatasetFormatError(
                str(path), lineno, f"task {tid} lists itself as a predecessor (a cycle)"
            )
        if p in seen:
            raise DatasetFormatError(
                str(path), lineno, f"predecessor {p} of task {tid} is listed twice"
            )
        if p == n + 1:
            raise DatasetFormatError(
                str(path), lineno,
                f"task {tid} lists the dummy exit task {n + 1} as a predecessor",
            )
        seen.add(p)
    if tid in (0, n + 1) and cost != 0:
        raise DatasetFormatError(
            str(path), lineno, f"dummy task {tid} has cost {tokens[1]}; dummy tasks cost 0"
        )
    if tid == 0 and preds:
        raise DatasetFormatError(
            str(path), lineno, "the dummy entry task 0 must have no predecessors"
        )
    return _Task(tid, cost, tuple(preds), lineno)


def read_stg(path: str | os.PathLike[str]) -> OpGraph:
    """Read one STG task graph.

    Parameters
    ----------
    path
        An ``.stg`` file.

    Returns
    -------
    OpGraph
        The real tasks as nodes ``0..n-1`` (see the module docstring for the attributes and
        metadata).

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    DatasetFormatError
        On a missing or non-integer task count, a non-numeric or negative field, a truncated
        file, a predecessor count that does not match the list, a task or predecessor id out of
        range, a duplicate task id, a dummy task with a cost or a misplaced edge, trailing data,
        or a cycle (reported at the first line of a task on it).

    Examples
    --------
    >>> from tvm_sched.datasets import stg_graphs
    >>> g = read_stg(stg_graphs(50)[0])
    >>> g.num_nodes, g.meta["name"], g.critical_path_length == g.meta["cp_length"]
    (50, '50/rand0000', True)
    """
    path = Path(path)
    lines = _read_lines(path)
    end = len(lines) + 1  # the line a missing entry was expected on
    cp_length: int | None = None
    n: int | None = None
    tasks: dict[int, _Task] = {}
    for lineno, line in enumerate(lines, start=1):
        if _is_skipped(line):
            m = _CP_LENGTH.match(line.strip())
            if m and cp_length is None:
                cp_length = int(m.group(1))
            continue
        tokens = line.split()
        if n is None:
            if len(tokens) != 1:
                raise DatasetFormatError(
                    str(path), lineno, f"expected the task count n alone, got {line.strip()!r}"
                )
            n = _parse_int(tokens[0], "task count", path, lineno)
            if n < 0:
                raise DatasetFormatError(str(path), lineno, f"task count {n} is negative")
            continue
        if len(tasks) == n + 2:
            raise DatasetFormatError(
                str(path), lineno, f"unexpected data after the {n + 2} task lines"
            )
        task = _parse_task(tokens, n, path, lineno)
        if task.tid in tasks:
            raise DatasetFormatError(
                str(path), lineno,
                f"task {task.tid} is listed twice (first on line {tasks[task.tid].line})",
            )
        tasks[task.tid] = task
    if n is None:
        raise DatasetFormatError(str(path), end, "missing the task count n")
    if len(tasks) < n + 2:
        raise DatasetFormatError(
            str(path), end, f"truncated: {len(tasks)} of {n + 2} task lines (n = {n})"
        )

    edges = [
        (p - 1, i - 1) for i in range(1, n + 1) for p in tasks[i].preds if p != 0
    ]
    meta: dict[str, object] = {
        "source": str(path),
        "format": "stg",
        "name": f"{path.parent.name}/{path.stem}",
    }
    if cp_length is not None:
        meta["cp_length"] = cp_length
    try:
        return OpGraph(
            n,
            edges,
            duration=[tasks[i].cost for i in range(1, n + 1)],
            out_bytes=[0] * n,
            names=[f"t{i}" for i in range(1, n + 1)],
            ops=["task"] * n,
            meta=meta,
        )
    except CycleError as err:
        cycle = [v + 1 for v in err.cycle]
        line = None
        if cycle:  # start the ring at the task listed first in the file, and report its line
            k = min(range(len(cycle)), key=lambda j: tasks[cycle[j]].line)
            cycle = cycle[k:] + cycle[:k]
            line = tasks[cycle[0]].line
        ring = " -> ".join(f"t{t}" for t in cycle + cycle[:1])
        raise DatasetFormatError(str(path), line, f"the tasks form a cycle: {ring}") from err
    except InvalidGraphError as err:  # not expected after the checks above; keep the contract
        raise DatasetFormatError(str(path), None, str(err)) from err


def _optimum_row(fields: list[str], lanes_of_file: int | None, path: Path,
                 lineno: int) -> StgOptimum:
    if len(fields) not in (3, 4):
        raise DatasetFormatError(
            str(path), lineno,
            f"expected 'graph,lanes,optimum' or 'graph,lanes,lower,best', got {len(fields)} "
            "field(s)",
        )
    graph = fields[0]
    if not graph:
        raise DatasetFormatError(str(path), lineno, "empty graph name")
    graph = graph.removesuffix(".stg")
    lanes = _parse_int(fields[1], "lane count", path, lineno)
    if lanes < 1:
        raise DatasetFormatError(str(path), lineno, f"lane count {lanes} is not positive")
    if lanes_of_file is not None and lanes != lanes_of_file:
        raise DatasetFormatError(
            str(path), lineno, f"lane count {lanes} differs from the file's {lanes_of_file}"
        )
    values = [_parse_int(f, "makespan", path, lineno) for f in fields[2:]]
    if any(v < 0 for v in values):
        raise DatasetFormatError(str(path), lineno, "negative makespan")
    lower, best = values[0], values[-1]
    if lower > best:
        raise DatasetFormatError(
            str(path), lineno, f"lower bound {lower} exceeds the best makespan {best}"
        )
    return StgOptimum(graph, lanes, lower, best, proven=lower == best)


def read_stg_optima(root: str | os.PathLike[str] | None = None) -> dict[tuple[str, int],
                                                                         StgOptimum]:
    """Read every published optimum table of the STG set.

    Parameters
    ----------
    root
        The STG folder (holding ``optimal/``); default :func:`~tvm_sched.datasets.stg_root`.

    Returns
    -------
    dict
        ``(graph name, lanes) -> StgOptimum``, e.g. key ``("50/rand0000", 2)``. A row with four
        fields whose bound meets the best value counts as proven.

    Raises
    ------
    FileNotFoundError
        When ``<root>/optimal`` holds no ``Case*_OPT.csv`` file.
    DatasetFormatError
        On a malformed row (wrong field count, non-integer or negative value, a lane count that
        differs from the file name's, a lower bound above the best value) or a duplicate
        (graph, lanes) pair; the error names the file and the line.

    Examples
    --------
    >>> opt = read_stg_optima()[("50/rand0000", 2)]
    >>> opt.best, opt.proven
    (131, True)
    """
    folder = Path(root if root is not None else stg_root()) / "optimal"
    files = sorted(folder.glob("Case*_OPT.csv"))
    if not files:
        raise FileNotFoundError(f"no Case*_OPT.csv optimum tables in {folder}")
    table: dict[tuple[str, int], StgOptimum] = {}
    where: dict[tuple[str, int], str] = {}
    for path in files:
        m = _OPT_FILE.match(path.name)
        lanes_of_file = int(m.group(2)) if m else None
        for lineno, line in enumerate(_read_lines(path), start=1):
            if _is_skipped(line):
                continue
            row = _optimum_row([f.strip() for f in line.split(",")], lanes_of_file, path, lineno)
            key = (row.graph, row.lanes)
            if key in table:
                raise DatasetFormatError(
                    str(path), lineno, f"{row.graph} on {row.lanes} lanes already given at "
                    f"{where[key]}"
                )
            table[key] = row
            where[key] = f"{path}:{lineno}"
    return table


def stg_graphs(size: int = 50, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The ``.stg`` files of one graph size, sorted by name.

    Parameters
    ----------
    size
        Number of real tasks: the name of the sub-folder (``50`` or ``100`` in the shared data).
    root
        The STG folder; default :func:`~tvm_sched.datasets.stg_root`.

    Returns
    -------
    list of Path
        ``<root>/<size>/*.stg`` in sorted order.

    Raises
    ------
    FileNotFoundError
        When ``<root>/<size>`` is not a folder.

    Examples
    --------
    >>> [p.name for p in stg_graphs(50)[:2]]
    ['rand0000.stg', 'rand0001.stg']
    """
    base = Path(root if root is not None else stg_root())
    folder = base / str(size)
    if not folder.is_dir():
        sizes = sorted(p.name for p in base.iterdir() if p.is_dir() and p.name.isdigit()) \
            if base.is_dir() else []
        raise FileNotFoundError(
            f"no STG graphs of size {size}: {folder} is not a folder (sizes found: "
            f"{', '.join(sizes) or 'none'})"
        )
    return sorted(folder.glob("*.stg"))
