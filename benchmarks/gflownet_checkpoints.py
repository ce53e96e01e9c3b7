"""GFlowNet checkpoints side by side, at an equal number of samples (fixed work, no wall clock).

Each checkpoint (``--checkpoints LABEL=PATH ...``) draws ``--samples`` orders per instance with
the solver's defaults except ``seeds=False`` (only what the policy samples counts, no prior
order), next to ``random-list`` with the same number of samples and ``list`` (one order).
Instances:

- ``stg``: the first ``--graphs`` STG 50-task graphs at ``--lanes``; value relative to the
  published optimum, or CP-SAT's value where the table has only a bound
  (``benchmarks/gflownet.py``'s reference);
- ``zoo``: operator graphs of models with measured kernel durations (``--zoo FILE.json ...``,
  written by ``benchmarks/zoo_graphs.py``) at ``--lanes`` (makespan relative to the lower bound
  max(critical path, total / m)) and the one-lane memory task (peak memory relative to
  ``lpmf``'s). ``--held-out NAME ...`` marks the graphs no checkpoint trained on.
- ``val``: generated validation graphs (50 nodes, two per family, seeds 40,000 + k, never used
  in training) at each of ``--sigmas``: the inference temperature per checkpoint.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gflownet_checkpoints.py \\
        --checkpoints shipped=tvm_sched/solvers/gflownet/checkpoints/default.pt new=/tmp/run.pt \\
        --zoo /tmp/zoo_graphs/*.json --held-out darts-bench hrnet-bench
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from gflownet import RESULTS, _machine, stg_instances  # noqa: E402

from tvm_sched.cost import Makespan, make_objective  # noqa: E402
from tvm_sched.datasets import read_graph  # noqa: E402
from tvm_sched.datasets.generators import FAMILIES, generate  # noqa: E402
from tvm_sched.solvers import get_solver  # noqa: E402


def _solvers(args, sigma: float | None = None) -> dict:
    out = {}
    for label, path in args.checkpoints:
        opts = {"samples": args.samples, "seeds": False, "checkpoint": path}
        if sigma is not None:
            opts["sigma"] = sigma
        out[label] = get_solver("gflownet", **opts)
    out["random-list"] = get_solver("random-list", samples=args.samples)
    out["list"] = get_solver("list")
    return out


def run_stg(args) -> list[dict]:
    solvers = _solvers(args)
    rows = []
    for g, lanes, obj, ref, kind in stg_instances(0, args.graphs, args.lanes):
        for label, s in solvers.items():
            res = s.solve(g, obj, seed=args.seed)
            rows.append({"part": "stg", "graph": g.meta["name"], "task": f"{lanes} lanes",
                         "method": label, "value": res.value, "ref": ref, "ref_kind": kind,
                         "rel": res.value / ref})
    return rows


def run_zoo(args) -> list[dict]:
    solvers = _solvers(args)
    solvers["lpmf"] = get_solver("lpmf")
    rows = []
    for path in args.zoo:
        g = read_graph(path)
        name = Path(path).stem
        held = name in args.held_out
        tasks = [(f"{m} lanes", make_objective("makespan", lanes=m)) for m in args.lanes]
        tasks.append(("memory", make_objective("peak_memory")))
        for task, obj in tasks:
            vals = {}
            for label, s in solvers.items():
                if label == "lpmf" and task != "memory":  # a memory heuristic
                    continue
                t = time.perf_counter()
                res = s.solve(g, obj, seed=args.seed)
                vals[label] = (res.value, time.perf_counter() - t)
            ref = vals["lpmf"][0] if task == "memory" else float(obj.lower_bound(g))
            for label, (v, sec) in vals.items():
                rows.append({"part": "zoo", "graph": name, "nodes": g.num_nodes, "task": task,
                             "held_out": held, "method": label, "value": v, "ref": ref,
                             "ref_kind": "lpmf" if task == "memory" else "lower bound",
                             "rel": v / ref if ref else None, "seconds": sec})
        print(f"zoo {name} ({g.num_nodes} nodes)", flush=True)
    return rows


def run_val(args) -> list[dict]:
    graphs = [generate(f, 50, seed=40_000 + 2 * i + j) for i, f in enumerate(FAMILIES)
              for j in range(2)]
    rows = []
    for sigma in args.sigmas:
        solvers = {k: v for k, v in _solvers(args, sigma).items() if k != "random-list"}
        for g in graphs:
            for lanes in args.lanes:
                obj = Makespan(lanes=lanes)
                lb = float(obj.lower_bound(g))
                for label, s in solvers.items():
                    if label == "list" and sigma != args.sigmas[0]:
                        continue
                    res = s.solve(g, obj, seed=args.seed)
                    rows.append({"part": "val", "graph": g.meta.get("name", ""),
                                 "task": f"{lanes} lanes", "sigma": sigma, "method": label,
                                 "value": res.value, "ref": lb, "rel": res.value / lb})
        print(f"val sigma {sigma}", flush=True)
    return rows


def summary(rows: list[dict], labels: list[str]) -> list[dict]:
    out = []
    keys = sorted({(r["part"], r["task"], r.get("held_out"), r.get("sigma")) for r in rows},
                  key=str)
    for part, task, held, sigma in keys:
        sel = [r for r in rows if (r["part"], r["task"], r.get("held_out"), r.get("sigma"))
               == (part, task, held, sigma)]
        methods = sorted({r["method"] for r in sel}, key=lambda m: (m not in labels, m))
        by = {(r["graph"], r["method"]): r["value"] for r in sel}
        graphs = sorted({r["graph"] for r in sel})
        for m in methods:
            rel = [r["rel"] for r in sel if r["method"] == m and r["rel"] is not None]
            row = {"part": part, "task": task, "held_out": held, "sigma": sigma, "method": m,
                   "instances": len(rel), "mean_rel": float(np.mean(rel)),
                   "max_rel": float(np.max(rel))}
            if m in labels and labels[0] != m and (graphs[0], labels[0]) in by:
                # wins / ties / losses against the first checkpoint, per instance
                pairs = [(by[(g, m)], by[(g, labels[0])]) for g in graphs]
                tol = [1e-9 * abs(y) for _, y in pairs]
                row["vs_" + labels[0]] = [
                    sum(x < y - t for (x, y), t in zip(pairs, tol, strict=True)),
                    sum(abs(x - y) <= t for (x, y), t in zip(pairs, tol, strict=True)),
                    sum(x > y + t for (x, y), t in zip(pairs, tol, strict=True))]
            out.append(row)
    return out


def markdown(res: dict) -> str:
    meta = res["meta"]
    lines = [f"# GFlowNet checkpoints at {meta['samples']} samples each (no prior seeds)", "",
             f"Machine: {meta['machine']}; torch threads {meta['threads']}; "
             f"{meta['wall_s']:.0f} s. Command: `{meta['command']}`", "",
             "Checkpoints: " + ", ".join(f"`{k}` = `{v}`" for k, v in meta["checkpoints"]), "",
             "`rel`: value / reference (STG: optimum or CP-SAT value; zoo makespan: lower bound; "
             "zoo memory: lpmf's peak; val: lower bound). W/T/L: wins, ties, losses per "
             "instance against the first checkpoint.", "",
             "| part | task | held out | sigma | method | n | mean rel | max rel | W/T/L |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["summary"]:
        wtl = next((v for k, v in r.items() if k.startswith("vs_")), None)
        held = "" if r["held_out"] is None else r["held_out"]
        sigma = "" if r["sigma"] is None else r["sigma"]
        lines.append(f"| {r['part']} | {r['task']} | {held} | {sigma} | {r['method']} | "
                     f"{r['instances']} | {r['mean_rel']:.4f} | {r['max_rel']:.4f} | "
                     f"{'/'.join(map(str, wtl)) if wtl else ''} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoints", nargs="+", required=True, help="LABEL=PATH ...")
    p.add_argument("--part", nargs="+", default=["stg", "zoo"], choices=["stg", "zoo", "val"])
    p.add_argument("--graphs", type=int, default=120)
    p.add_argument("--lanes", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--zoo", nargs="*", type=Path, default=[])
    p.add_argument("--held-out", nargs="*", default=[])
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.0005, 0.001, 0.002])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="gflownet_checkpoints")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    args.checkpoints = [tuple(c.split("=", 1)) for c in args.checkpoints]
    if any(len(c) != 2 for c in args.checkpoints):
        p.error("--checkpoints takes LABEL=PATH")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = []
    if "stg" in args.part:
        rows += run_stg(args)
    if "zoo" in args.part:
        rows += run_zoo(args)
    if "val" in args.part:
        rows += run_val(args)
    labels = [c[0] for c in args.checkpoints]
    res = {"meta": {"machine": _machine(), "threads": torch.get_num_threads(),
                    "samples": args.samples, "checkpoints": args.checkpoints,
                    "command": " ".join(["benchmarks/gflownet_checkpoints.py", *sys.argv[1:]]),
                    "wall_s": time.perf_counter() - t0},
           "summary": summary(rows, labels), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(res, indent=1))
    (args.out / f"{args.name}.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
