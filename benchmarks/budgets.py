"""Budgets kept: wall time of every registered solver against its budget.

For each registered solver, each graph (a 700-node generated ``layered`` graph, the kind of size
of a real model's main block, and ``--stg`` STG 50-task graphs) and each objective (makespan on
4 lanes, planned memory where the solver handles it), solve ``--repeats`` times (seeds 0..)
with ``--budget`` seconds and record the wall time of ``solve`` (start-up included: model loads,
encodings). The target is ``budget + 10% + 0.5 s``; the table gives the 95th percentile and the
maximum per solver.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/budgets.py --budget 5 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tvm_sched.cost import Makespan, PlannedMemory
from tvm_sched.datasets import read_stg, stg_graphs
from tvm_sched.datasets.generators import generate
from tvm_sched.solvers import get_solver, solver_names

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--stg", type=int, default=3, help="STG 50-task graphs")
    p.add_argument("--solvers", nargs="+", default=None)
    p.add_argument("--name", default="budgets")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    graphs = [generate("layered", 700, seed=7)] + [read_stg(q) for q in stg_graphs(50)[: args.stg]]
    rows = []
    t0 = time.perf_counter()
    for name in args.solvers or solver_names():
        for g in graphs:
            for obj in (Makespan(lanes=4), PlannedMemory()):
                s = get_solver(name)
                if not s.supports(obj):
                    continue
                for seed in range(args.repeats):
                    load = os.getloadavg()[0]
                    t = time.perf_counter()
                    res = s.solve(g, obj, budget=args.budget, seed=seed)
                    wall = time.perf_counter() - t
                    rows.append({"solver": name, "graph": g.meta.get("name", "?"),
                                 "nodes": g.num_nodes, "objective": obj.name, "seed": seed,
                                 "wall_s": wall, "value": res.value, "status": str(res.status),
                                 "load": load})
                    print(f"{name} {rows[-1]['graph']} {obj.name}: {wall:.2f} s", flush=True)
    limit = args.budget * 1.1 + 0.5
    summary = []
    for name in dict.fromkeys(r["solver"] for r in rows):
        for big in (True, False):
            w = [r["wall_s"] for r in rows if r["solver"] == name and (r["nodes"] >= 700) == big]
            if w:
                summary.append({"solver": name, "graphs": "700-node" if big else "STG 50",
                                "solves": len(w), "p95_s": float(np.percentile(w, 95)),
                                "max_s": float(max(w)), "over_limit": sum(x > limit for x in w)})
    meta = {"budget_s": args.budget, "limit_s": limit, "repeats": args.repeats,
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs (shared)",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "wall_s": time.perf_counter() - t0,
            "command": "benchmarks/budgets.py " + " ".join(argv or [])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "rows": rows}, indent=1))
    lines = ["# Budgets kept: wall time per solve", "",
             f"Budget {args.budget:g} s; target budget + 10% + 0.5 s = {limit:.2f} s. "
             f"Objectives: makespan (4 lanes) and planned memory where handled; "
             f"{args.repeats} seeds. Machine: {meta['machine']}; load average 1-min "
             f"{min(r['load'] for r in rows):.1f}-{max(r['load'] for r in rows):.1f}. "
             f"Date {meta['date']}.", "",
             "| solver | graphs | solves | p95 s | max s | over target |",
             "|---|---|---|---|---|---|"]
    for r in summary:
        lines.append(f"| {r['solver']} | {r['graphs']} | {r['solves']} | {r['p95_s']:.2f} | "
                     f"{r['max_s']:.2f} | {r['over_limit']} |")
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
