"""Solver comparisons on benchmark graphs with known optima (the STG makespan study).

Shared by ``benchmarks/stg.py`` (every graph), ``benchmarks/gaus.py`` (its STG part) and
``tvm-sched demo`` (a few graphs): run each solver on each (graph, lane count), measure the gap to
the published optimum -- or to the lower bound for rows still open -- and summarise per
(solver, lanes). It lives beside the solvers it compares (it was ``tvm_sched.compare``); the
console it prints to is :func:`tvm_sched.console.console`.

A solver that raises is recorded with its error and the run goes on; nothing is lost.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tvm_sched.cost import Makespan
from tvm_sched.graph import OpGraph
from tvm_sched.solvers import get_solver

__all__ = ["StgRow", "run_stg", "summarize", "markdown_summary", "print_summary"]


@dataclass
class StgRow:
    """One solver on one (graph, lanes) instance."""

    graph: str
    nodes: int
    lanes: int
    solver: str
    value: float | None
    optimum: int | None  # best known (proven when ``optimum_proven``)
    optimum_proven: bool
    lower: int | None
    gap: float | None  # value / optimum - 1
    seconds: float
    status: str
    bound: float | None
    claims_optimal: bool
    error: str | None = None
    #: The solver's scalar ``SolveResult.info`` entries (e.g. GauS's ``init_value``).
    info: dict[str, Any] = field(default_factory=dict)


def run_stg(
    graphs: Sequence[Path],
    lanes: Iterable[int],
    solvers: Sequence[str],
    *,
    budget_s: float,
    optima: dict[tuple[str, int], Any],
    seed: int = 0,
    read: Callable[[Path], OpGraph] | None = None,
    progress: Callable[[StgRow], None] | None = None,
) -> list[StgRow]:
    """Run every solver on every (graph, lanes); return one row each.

    Parameters
    ----------
    graphs
        STG files.
    lanes
        Lane counts (the published optima exist for 2, 4, 8 and 16).
    solvers
        Registered solver names.
    budget_s
        Wall-clock budget per solve (solvers that stop by themselves may finish earlier).
    optima
        ``read_stg_optima()``: (graph name, lanes) -> StgOptimum.
    seed
        Seed of every solve.
    read
        Graph reader (default :func:`tvm_sched.datasets.read_stg`).
    progress
        Called with each finished row.

    Returns
    -------
    list of StgRow
        Graph by graph, then lane count, then solver; a solver that raised has ``status``
        ``"ERROR"`` and the exception in ``error``.

    Raises
    ------
    UnknownSolverError
        A name in ``solvers`` is not registered (checked before any solve).
    """
    if read is None:
        from tvm_sched.datasets import read_stg as read
    lanes = list(lanes)
    instances = {name: get_solver(name) for name in solvers}
    rows: list[StgRow] = []
    for path in graphs:
        g = read(Path(path))
        gname = g.meta.get("name", Path(path).stem)
        for m in lanes:
            opt = optima.get((gname, m))
            best = int(opt.best) if opt is not None else None
            for name, solver in instances.items():
                common = dict(graph=gname, nodes=g.num_nodes, lanes=m, solver=name,
                              optimum=best, optimum_proven=bool(opt and opt.proven),
                              lower=int(opt.lower) if opt is not None else None)
                t0 = time.perf_counter()
                try:
                    res = solver.solve(g, Makespan(lanes=m), budget=budget_s, seed=seed)
                    value = res.value if len(res) else None
                    row = StgRow(**common, value=value,
                                 gap=(value / best - 1.0) if (value is not None and best) else None,
                                 seconds=res.seconds, status=str(res.status), bound=res.bound,
                                 claims_optimal=res.proven,
                                 info={k: v for k, v in res.info.items()
                                       if isinstance(v, int | float | str | bool)})
                except Exception as err:  # recorded, the comparison goes on
                    row = StgRow(**common, value=None, gap=None,
                                 seconds=time.perf_counter() - t0, status="ERROR", bound=None,
                                 claims_optimal=False, error=f"{type(err).__name__}: {err}")
                rows.append(row)
                if progress is not None:
                    progress(row)
    return rows


def summarize(rows: Sequence[StgRow]) -> list[dict[str, Any]]:
    """Per (solver, graph size, lanes): instances, mean/max gap, optimum hits, time, contradictions.

    ``below_proven`` counts rows whose value is below a proven optimum, and ``false_claims``
    rows that claim optimality at a value above the best known: both must be 0.

    Parameters
    ----------
    rows
        Rows of :func:`run_stg`.

    Returns
    -------
    list of dict
        One entry per (solver, nodes, lanes), sorted by that key; gaps and times are ``None``
        where no row has one.
    """
    keys = sorted({(r.solver, r.nodes, r.lanes) for r in rows})
    out = []
    for solver, nodes, m in keys:
        rs = [r for r in rows if r.solver == solver and r.nodes == nodes and r.lanes == m]
        gaps = [r.gap for r in rs if r.gap is not None]
        times = [r.seconds for r in rs]
        hits = sum(1 for r in rs if r.value is not None and r.optimum is not None
                   and r.value <= r.optimum + 1e-9)
        out.append({
            "solver": solver,
            "nodes": nodes,
            "lanes": m,
            "instances": len(rs),
            "errors": sum(1 for r in rs if r.error),
            "mean_gap": statistics.fmean(gaps) if gaps else None,
            "max_gap": max(gaps) if gaps else None,
            "hits": hits,
            "hit_rate": hits / len(rs) if rs else None,
            "claimed_optimal": sum(1 for r in rs if r.claims_optimal),
            "below_proven": sum(1 for r in rs if r.value is not None and r.optimum_proven
                                and r.optimum is not None and r.value < r.optimum - 1e-9),
            "false_claims": sum(1 for r in rs if r.claims_optimal and r.optimum is not None
                                and r.value is not None and r.value > r.optimum + 1e-9),
            "median_s": statistics.median(times) if times else None,
            "max_s": max(times) if times else None,
        })
    return out


def _fmt_gap(x: float | None) -> str:
    return "—" if x is None or math.isnan(x) else f"{100 * x:.2f}%"


def markdown_summary(summary: Sequence[dict[str, Any]]) -> str:
    """The summary as a markdown table.

    Parameters
    ----------
    summary
        Entries of :func:`summarize`.

    Returns
    -------
    str
        A header, a separator and one line per entry.
    """
    lines = [
        "| solver | tasks | lanes | instances | mean gap | max gap | optimum hit | claimed optimal "
        "| below proven opt. | median s | max s | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['solver']} | {s['nodes']} | {s['lanes']} | {s['instances']} "
            f"| {_fmt_gap(s['mean_gap'])} | {_fmt_gap(s['max_gap'])} "
            f"| {s['hits']}/{s['instances']} "
            f"| {s['claimed_optimal']} | {s['below_proven']} | {s['median_s']:.3f} "
            f"| {s['max_s']:.3f} | {s['errors']} |"
        )
    return "\n".join(lines)


def print_summary(summary: Sequence[dict[str, Any]], title: str = "") -> None:
    """Print the summary as a rich table.

    Parameters
    ----------
    summary
        Entries of :func:`summarize`.
    title
        The table's title (none when empty).
    """
    from rich.table import Table

    table = Table(title=title or None)
    for col, just in [("solver", "left"), ("tasks", "right"), ("lanes", "right"), ("n", "right"),
                      ("mean gap", "right"), ("max gap", "right"), ("optimum hit", "right"),
                      ("proven", "right"), ("median s", "right"), ("max s", "right"),
                      ("errors", "right")]:
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for s in summary:
        table.add_row(s["solver"], str(s["nodes"]), str(s["lanes"]), str(s["instances"]),
                      _fmt_gap(s["mean_gap"]), _fmt_gap(s["max_gap"]),
                      f"{s['hits']}/{s['instances']}", str(s["claimed_optimal"]),
                      f"{s['median_s']:.3f}", f"{s['max_s']:.3f}", str(s["errors"]))
    from tvm_sched.console import console

    console().print(table)


def rows_to_dicts(rows: Sequence[StgRow]) -> list[dict[str, Any]]:
    """The rows as plain dictionaries (for JSON).

    Parameters
    ----------
    rows
        Rows of :func:`run_stg`.

    Returns
    -------
    list of dict
        ``dataclasses.asdict`` of each row.
    """
    return [asdict(r) for r in rows]
