"""STG makespan benchmark: every registered solver on the Standard Task Graph Set.

For each graph of the chosen sizes and each lane count, run every solver with the same
wall-clock budget and report the gap to the published optimum (or to the best known value for
rows still open), the time per graph, how often the optimum is hit, and whether any solver claims
a value below a proven optimum. Writes ``stg.json`` and ``stg.md`` under ``--out``.

    .venv/bin/python benchmarks/stg.py --sizes 50 --lanes 2 4 8 --budget 10

Run it with the machine otherwise idle: CP-SAT's result depends on the CPU time it gets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tvm_sched.console import console as make_console
from tvm_sched.datasets import read_stg_optima, stg_graphs
from tvm_sched.solvers import solver_names
from tvm_sched.solvers.compare import (
    StgRow,
    markdown_summary,
    print_summary,
    rows_to_dicts,
    run_stg,
    summarize,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[50], choices=[50, 100])
    p.add_argument("--lanes", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--solvers", nargs="+", default=None, help="default: every registered one")
    p.add_argument("--budget", type=float, default=10.0, help="seconds per solve")
    p.add_argument("--limit", type=int, default=None, help="first N graphs of each size")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--name", default="stg", help="output file stem")
    p.add_argument("--rows-from", type=Path, default=None,
                   help="re-summarise the rows of an earlier JSON result instead of solving")
    args = p.parse_args(argv)
    console = make_console()
    if args.rows_from is not None:
        old = json.loads(args.rows_from.read_text())
        rows = [StgRow(**r) for r in old["rows"]]
        write_results(rows, old["meta"], args.out, args.name, console)
        return 0

    solvers = args.solvers or solver_names()
    graphs = [g for size in args.sizes for g in stg_graphs(size)[: args.limit]]
    optima = read_stg_optima()
    total = len(graphs) * len(args.lanes) * len(solvers)
    console.print(f"{len(graphs)} graphs x {len(args.lanes)} lane counts x {len(solvers)} "
                  f"solvers = {total} solves, budget {args.budget:g} s each")
    t0 = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("solving", total=total)

        def tick(row) -> None:
            bar.update(task, advance=1, description=f"{row.graph} m={row.lanes} {row.solver}")

        rows = run_stg(graphs, args.lanes, solvers, budget_s=args.budget, optima=optima,
                       progress=tick)
    wall = time.perf_counter() - t0
    meta = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None
                                                         else sys.argv[1:])]),
        "budget_s": args.budget,
        "sizes": args.sizes,
        "lanes": args.lanes,
        "solvers": solvers,
        "graphs": len(graphs),
        "wall_s": wall,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    write_results(rows, meta, args.out, args.name, console)
    return 0


def write_results(rows, meta, out: Path, name: str, console) -> None:
    """Print the summary and write ``name.json`` and ``name.md`` under ``out``."""
    summary = summarize(rows)
    print_summary(summary, title="STG makespan: gap to the published optimum")
    out.mkdir(parents=True, exist_ok=True)
    wall = meta["wall_s"]
    (out / f"{name}.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "rows": rows_to_dicts(rows)}, indent=1))
    md = [
        f"# STG makespan benchmark ({', '.join(map(str, meta['sizes']))}-task graphs)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']['platform']}, {meta['machine']['cpus']} CPUs; "
        f"{meta['date']}; wall time {wall:.0f} s.",
        "",
        "Gap = value / published optimum - 1 (open rows: best known). 'below proven opt.' "
        "counts values under a proven optimum (must be 0).",
        "",
        markdown_summary(summary),
        "",
    ]
    better = [r for r in rows if r.value is not None and r.optimum is not None
              and not r.optimum_proven and r.value < r.optimum - 1e-9]
    if better:
        md += ["## Open rows improved", "",
               "Rows the published table lists as open (lower bound < best known) where a solver "
               "found a better schedule (re-checked by the exact evaluator); 'proven' = the "
               "solver's own proof of optimality.", "",
               "| graph | lanes | solver | value | best known | lower bound | proven |",
               "|---|---:|---|---:|---:|---:|---|"]
        md += [f"| {r.graph} | {r.lanes} | {r.solver} | {r.value:g} | {r.optimum} | {r.lower} "
               f"| {'yes' if r.claims_optimal else 'no'} |" for r in better]
        md.append("")
    (out / f"{name}.md").write_text("\n".join(md))
    console.print(f"wrote {out / (name + '.json')} and {out / (name + '.md')}")


if __name__ == "__main__":
    sys.exit(main())
