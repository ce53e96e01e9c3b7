"""GauS benchmark: the ICML'24 stage partition and STG makespan (issue 5 protocol).

Part ``stage``: the 18 graphs of ``icml24_random_dags`` (node weight = out_bytes), D stages and
ratio (default 10 and 100); ``gaus``, ``gumbel``, ``list`` (critical-path order split by
``stages_from_order``) and ``cpsat`` at the same wall-clock budget, plus optionally CP-SAT at a
reference budget with its proven bound. Reported per graph: the objective, the seconds taken and
the time-to-quality -- the first moment the solver's incumbent is within ``--tol`` of the best
value any method reached on that graph (anytime solvers record their incumbent history; the
others count their total time when their final value qualifies).

Part ``stg``: GauS makespan on STG graphs (2/4/8 lanes) with the gap to the published optimum.

Full protocol (the issue): ``--budget 60 --reference-budget 900`` on all 18 graphs, STG on all
120 50-task graphs at 10 s. Writes ``<name>.json`` and ``<name>.md`` under ``--out``.

    .venv/bin/python benchmarks/gaus.py --part stage --budget 60 --reference-budget 900
    .venv/bin/python benchmarks/gaus.py --part stg --stg-budget 10 --stg-limit 120
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from tvm_sched.cost import StageCost
from tvm_sched.datasets import read_gml, read_stg_optima, stg_graphs
from tvm_sched.datasets.gml import icml24_graphs
from tvm_sched.solvers import get_solver
from tvm_sched.solvers.compare import run_stg as stg_run

SOLVER_OPTIONS = {"cpsat": {"num_workers": 2}}


def _ttq(history, seconds, value, target, tol):
    goal = target * (1 + tol)
    for t, v in history or []:
        if v <= goal:
            return float(t)
    return float(seconds) if value <= goal else None


def run_stage(args) -> list[dict]:
    paths = icml24_graphs()
    if args.graphs:
        paths = [p for p in paths if any(p.stem == g or p.stem.endswith(g) for g in args.graphs)]
    obj = StageCost(stages=args.stages, ratio=args.ratio)
    rows = []
    for path in paths:
        g = read_gml(path)
        runs = {}
        for name in args.solvers:
            opts = SOLVER_OPTIONS.get(name, {})
            res = get_solver(name, **opts).solve(g, obj, budget=args.budget, seed=args.seed)
            runs[name] = {"value": res.value, "seconds": res.seconds, "bound": res.bound,
                          "status": str(res.status),
                          "history": res.info.get("history")}
            print(f"{path.stem} n={g.num_nodes} {name}: {res.value:.0f} ({res.seconds:.1f} s)",
                  flush=True)
        if args.reference_budget:
            res = get_solver("cpsat", **SOLVER_OPTIONS["cpsat"]).solve(
                g, obj, budget=args.reference_budget, seed=args.seed)
            runs["cpsat-ref"] = {"value": res.value, "seconds": res.seconds, "bound": res.bound,
                                 "status": str(res.status), "history": None}
            print(f"{path.stem} cpsat-ref: {res.value:.0f} bound {res.bound:.0f}", flush=True)
        best = min(r["value"] for r in runs.values())
        for r in runs.values():
            r["ttq_s"] = _ttq(r["history"], r["seconds"], r["value"], best, args.tol)
        rows.append({"graph": path.stem, "nodes": g.num_nodes, "edges": g.num_edges,
                     "lower_bound": obj.lower_bound(g), "runs": runs})
    return rows


def run_stg(args) -> list[dict]:
    """GauS on the STG graphs through the shared harness (``solvers.compare.run_stg``)."""

    def show(r):
        print(f"{r.graph} m={r.lanes}: {r.value:g} vs {r.optimum} "
              f"(gap {100 * r.gap:.2f}%, {r.seconds:.1f} s)" if r.error is None
              else f"{r.graph} m={r.lanes}: {r.error}", flush=True)

    rows = stg_run(stg_graphs(50)[: args.stg_limit], args.lanes, ["gaus"],
                   budget_s=args.stg_budget, optima=read_stg_optima(), seed=args.seed,
                   progress=show)
    return [{"graph": r.graph, "lanes": r.lanes, "optimum": r.optimum,
             "proven": r.optimum_proven, "value": r.value, "gap": r.gap, "seconds": r.seconds,
             "init_value": r.info.get("init_value"), "error": r.error} for r in rows]


def markdown(args, stage_rows, stg_rows, wall) -> str:
    env = "OMP_NUM_THREADS=1 " if os.environ.get("OMP_NUM_THREADS") == "1" else ""
    cmd = env + ".venv/bin/python " + " ".join([sys.argv[0], *sys.argv[1:]])
    out = ["# GauS benchmark", "",
           f"Command: `{cmd}`  ", f"Machine: {platform.processor() or platform.machine()}, "
           f"{os.cpu_count()} cores shared with other work, CPU only (no GPU in this session).  ",
           f"Wall time: {wall:.0f} s.", ""]
    if args.note:
        out += [args.note, ""]
    if stage_rows:
        names = list(stage_rows[0]["runs"])
        out += [f"## Stage partition (D={args.stages}, ratio={args.ratio:g}), budget "
                f"{args.budget:g} s per solver", "",
                "Objective (lower is better); `ttq` = seconds to within "
                f"{100 * args.tol:g}% of the best value any method reached on the graph.", "",
                "| graph | n | LB | " + " | ".join(f"{s} | {s} ttq" for s in names) + " |",
                "|---|---|---|" + "---|---|" * len(names)]
        for r in stage_rows:
            cells = []
            for s in names:
                x = r["runs"][s]
                ttq = "-" if x["ttq_s"] is None else f"{x['ttq_s']:.1f}"
                cells += [f"{x['value']:.0f}", ttq]
            out.append(f"| {r['graph']} | {r['nodes']} | {r['lower_bound']:.0f} | "
                       + " | ".join(cells) + " |")
        if "gaus" in names:
            out.append("")
            for other in names:
                if other == "gaus":
                    continue
                le = sum(r["runs"]["gaus"]["value"] <= r["runs"][other]["value"]
                         for r in stage_rows)
                out.append(f"- gaus <= {other} on {le}/{len(stage_rows)} graphs")
    if stg_rows:
        gaps = np.array([r["gap"] for r in stg_rows])
        out += ["", f"## STG makespan, GauS at {args.stg_budget:g} s per graph", "",
                "| lanes | graphs | mean gap | max gap | optimal |", "|---|---|---|---|---|"]
        for m in sorted({r["lanes"] for r in stg_rows}):
            sub = np.array([r["gap"] for r in stg_rows if r["lanes"] == m])
            out.append(f"| {m} | {len(sub)} | {100 * sub.mean():.2f}% | {100 * sub.max():.2f}% "
                       f"| {(sub <= 1e-9).sum()} |")
        out.append(f"| all | {len(gaps)} | {100 * gaps.mean():.2f}% | {100 * gaps.max():.2f}% "
                   f"| {(gaps <= 1e-9).sum()} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["stage", "stg", "both"], default="both")
    p.add_argument("--graphs", nargs="*", default=None, help="graph stems (suffix match)")
    p.add_argument("--solvers", nargs="+", default=["gaus", "gumbel", "list", "cpsat"])
    p.add_argument("--budget", type=float, default=60.0)
    p.add_argument("--reference-budget", type=float, default=0.0, help="CP-SAT reference (s)")
    p.add_argument("--stages", type=int, default=10)
    p.add_argument("--ratio", type=float, default=100.0)
    p.add_argument("--tol", type=float, default=0.001)
    p.add_argument("--lanes", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--stg-budget", type=float, default=10.0)
    p.add_argument("--stg-limit", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--name", default="gaus")
    p.add_argument("--note", default="", help="a paragraph written into the markdown")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    stage_rows = run_stage(args) if args.part in ("stage", "both") else []
    stg_rows = run_stg(args) if args.part in ("stg", "both") else []
    wall = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "stage": stage_rows, "stg": stg_rows, "wall_s": wall, "device": "cpu"}
    (args.out / f"{args.name}.json").write_text(json.dumps(doc, indent=1, default=float))
    (args.out / f"{args.name}.md").write_text(markdown(args, stage_rows, stg_rows, wall))
    print(markdown(args, stage_rows, stg_rows, wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
