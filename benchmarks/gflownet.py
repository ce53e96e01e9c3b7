"""GFlowNet (and GauS) on real workloads: STG quality, sampling rate, equal samples, robustness.

Parts (``--part``):

- ``stg``: STG 50-task graphs (``--graphs`` of rand0000-rand0119) at 2/4/8 lanes, ``--budget``
  seconds per solve, solvers gaus, gflownet, list, random-list with their default options. Gap
  to the optimum: the published optimum where it is proven, else CP-SAT's value from
  ``benchmarks/results/stg.json`` (``ref`` says which). Also: graphs where a solver is worse than
  ``list``, and wall time per solve (p95, max).
- ``rate``: GFlowNet sampling rate (1,000 samples, encoding included, ``seeds=False``) on
  layered graphs of 100, 500 and 1,000 nodes, 4 lanes, and the memory task.
- ``equal``: GFlowNet vs random-list at an equal number of samples (``--samples``, no seeds)
  on the STG graphs of part ``stg`` and 4 lanes: wins, ties, losses, mean gap.
- ``memory``: peak and planned memory on 10 generated 100-node graphs (two per family, seeds
  20,000 + k), no budget (fixed work): lpmf, random (1,000), GauS, GFlowNet with and without
  seeds; value relative to lpmf.
- ``robust``: the robustness study of Zhang et al. (ICLR 2023, Table 1 protocol, 4 lanes) on
  ``--robust-graphs`` generated 50-node graphs (two per family, seeds 10,000 + k): each method
  proposes its ``--top`` best distinct schedules by the proxy (makespan, no communication;
  1,000 samples for the samplers, ``--budget`` s for GauS), each run on three simulated targets
  (chain semantics: the schedule keeps its lanes and per-lane order): noisy runtimes (log-normal
  factor, log-sd 0.3, mean of 5 draws), bandwidth limited (a cross-lane edge costs 1 x mean
  duration / mean edge bytes per byte) and latency limited (1 x mean duration per cross-lane
  edge); the best target speedup among the top schedules is reported.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gflownet.py --part stg rate equal robust
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
import torch

from tvm_sched.cost import Comm, Makespan
from tvm_sched.cost.makespan import makespan_batch
from tvm_sched.datasets import read_stg, read_stg_optima, stg_graphs
from tvm_sched.datasets.generators import FAMILIES, generate
from tvm_sched.solvers import get_solver

RESULTS = Path(__file__).parent / "results"


def _machine() -> str:
    return (f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.1f}").strip()


def _cpsat_values() -> dict[tuple[str, int], float]:
    path = RESULTS / "stg.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())["rows"]
    return {(r["graph"], r["lanes"]): r["value"] for r in rows
            if r["solver"] == "cpsat" and r["value"] is not None}


def _reference(name: str, lanes: int, optima, cpsat) -> tuple[float, str]:
    o = optima[(name, lanes)]
    if o.proven:
        return float(o.best), "published optimum"
    c = cpsat.get((name, lanes))
    if c is not None and c <= o.best:
        return float(c), "CP-SAT value"
    return float(o.best), "published best known"


def stg_instances(first: int, stop: int, lanes_list: list[int]):
    """STG 50-task graphs ``first..stop-1`` at each lane count, with their reference (see
    :func:`_reference`): yields ``(graph, lanes, Makespan objective, reference, its kind)`` and
    prints a line after each graph."""
    optima, cpsat = read_stg_optima(), _cpsat_values()
    for p in stg_graphs(50)[first:stop]:
        g = read_stg(p)
        for lanes in lanes_list:
            ref, kind = _reference(g.meta["name"], lanes, optima, cpsat)
            yield g, lanes, Makespan(lanes=lanes), ref, kind
        print(f"stg {g.meta['name']} done", flush=True)


def run_stg(args) -> dict:
    rows = []
    for g, lanes, obj, ref, kind in stg_instances(args.skip, args.graphs, args.lanes):
        for solver in args.solvers:
            t = time.perf_counter()
            res = get_solver(solver).solve(g, obj, budget=args.budget, seed=0)
            wall = time.perf_counter() - t
            rows.append({"graph": g.meta["name"], "lanes": lanes, "solver": solver,
                         "value": res.value, "ref": ref, "ref_kind": kind,
                         "gap": res.value / ref - 1, "wall_s": wall,
                         "samples": res.info.get("samples"),
                         "best_from": res.info.get("best_from")})
    return {"rows": rows, "summary": stg_summary(rows, args.solvers, args.lanes)}


def stg_summary(rows: list[dict], solvers: list[str], lanes_list: list[int]) -> list[dict]:
    summary = []
    for solver in solvers:
        for lanes in lanes_list:
            sel = [r for r in rows if r["solver"] == solver and r["lanes"] == lanes]
            lst = {r["graph"]: r["value"] for r in rows
                   if r["solver"] == "list" and r["lanes"] == lanes}
            walls = [r["wall_s"] for r in sel]
            summary.append({
                "solver": solver, "lanes": lanes, "graphs": len(sel),
                "mean_gap": float(np.mean([r["gap"] for r in sel])),
                "max_gap": float(np.max([r["gap"] for r in sel])),
                "worse_than_list": sum(r["value"] > lst[r["graph"]] + 1e-9 for r in sel),
                "wall_p95_s": float(np.percentile(walls, 95)), "wall_max_s": float(max(walls)),
            })
    return summary


def run_rate(args) -> list[dict]:
    out = []
    for n in (100, 500, 1000):
        g = generate("layered", n, seed=1)
        for obj in (Makespan(lanes=4), "peak_memory"):
            s = get_solver("gflownet", samples=1000, seeds=False)
            t = time.perf_counter()
            res = s.solve(g, obj, seed=0)
            out.append({"nodes": n, "objective": res.objective.name, "samples": res.info["samples"],
                        "solve_s": time.perf_counter() - t,
                        "samples_per_s": res.info["samples_per_s"],
                        "encode_s": res.info["encode_s"]})
            print(f"rate n={n} {out[-1]}", flush=True)
    return out


def run_equal(args) -> dict:
    rows = []
    for g, lanes, obj, ref, _ in stg_instances(0, args.graphs, args.lanes):
        a = get_solver("gflownet", samples=args.samples, seeds=False).solve(g, obj, seed=0)
        b = get_solver("random-list", samples=args.samples).solve(g, obj, seed=0)
        rows.append({"graph": g.meta["name"], "lanes": lanes, "gflownet": a.value,
                     "random_list": b.value, "gfn_samples": a.info["samples"],
                     "rl_samples": b.info["samples"], "ref": ref})
    summary = []
    for lanes in args.lanes:
        sel = [r for r in rows if r["lanes"] == lanes]
        summary.append({
            "lanes": lanes, "graphs": len(sel),
            "gflownet_wins": sum(r["gflownet"] < r["random_list"] - 1e-9 for r in sel),
            "ties": sum(abs(r["gflownet"] - r["random_list"]) <= 1e-9 for r in sel),
            "random_list_wins": sum(r["gflownet"] > r["random_list"] + 1e-9 for r in sel),
            "gflownet_mean_gap": float(np.mean([r["gflownet"] / r["ref"] - 1 for r in sel])),
            "random_list_mean_gap": float(np.mean([r["random_list"] / r["ref"] - 1
                                                   for r in sel])),
        })
    return {"rows": rows, "summary": summary}


def run_memory(args) -> dict:
    graphs = [generate(f, 100, seed=20_000 + k) for f in FAMILIES for k in range(2)]
    methods = {"lpmf": ("lpmf", {}), "random": ("random", {"samples": 1000}),
               "gaus": ("gaus", {}), "gflownet": ("gflownet", {"seeds": False}),
               "gflownet+seeds": ("gflownet", {})}
    rows = []
    for g in graphs:
        for objective in ("peak_memory", "planned_memory"):
            ref = None
            for label, (name, opts) in methods.items():
                t = time.perf_counter()
                res = get_solver(name, **opts).solve(g, objective, seed=0)
                ref = res.value if ref is None else ref
                rows.append({"graph": g.meta.get("name", "?"), "objective": objective,
                             "method": label, "value": res.value, "ratio_to_lpmf": res.value / ref,
                             "seconds": time.perf_counter() - t})
    summary = []
    for objective in ("peak_memory", "planned_memory"):
        for label in methods:
            sel = [r for r in rows if r["objective"] == objective and r["method"] == label]
            summary.append({"objective": objective, "method": label, "graphs": len(sel),
                            "mean_ratio_to_lpmf": float(np.mean([r["ratio_to_lpmf"]
                                                                 for r in sel])),
                            "better_than_lpmf": sum(r["ratio_to_lpmf"] < 1 - 1e-12 for r in sel),
                            "worse_than_lpmf": sum(r["ratio_to_lpmf"] > 1 + 1e-12 for r in sel)})
    return {"rows": rows, "summary": summary}


def _top_schedules(method: str, g, obj, args):
    opts = {"list": {}, "random-list": {"samples": 1000, "top_k": args.top},
            "gaus": {"top_k": args.top}, "gflownet": {"samples": 1000, "top_k": args.top}}
    budget = args.budget if method == "gaus" else None
    res = get_solver(method, **opts[method]).solve(g, obj, budget=budget, seed=0)
    orders = np.array([s.order for s in res])
    lanes = np.empty_like(orders)
    for i, s in enumerate(res):
        lanes[i] = np.asarray(s.lane)
    return res, orders, lanes


def run_robust(args) -> list[dict]:
    rng = np.random.default_rng(args.seed)
    graphs = [generate(f, 50, seed=10_000 + k) for f in FAMILIES for k in range(2)]
    graphs = graphs[: args.robust_graphs]
    out = []
    for g in graphs:
        total = float(g.duration.sum())
        mean_dur = total / g.num_nodes
        eb = g.edge_bytes[g.edge_bytes > 0]
        bw = Comm(a=mean_dur / max(float(eb.mean()) if eb.size else 1.0, 1e-12), b=0.0)
        lat = Comm(a=0.0, b=mean_dur)
        noisy = [g.replace(duration=g.duration * rng.lognormal(0.0, 0.3, g.num_nodes))
                 for _ in range(5)]
        obj = Makespan(lanes=4)
        for method in args.methods:
            t = time.perf_counter()
            res, o, ln = _top_schedules(method, g, obj, args)
            s = time.perf_counter() - t
            proxy = total / res.value
            noise = np.mean([float(gn.duration.sum()) / makespan_batch(gn, o, lane=ln)
                             for gn in noisy], axis=0)
            bwv = total / makespan_batch(g, o, lane=ln, comm=bw)
            latv = total / makespan_batch(g, o, lane=ln, comm=lat)
            out.append({"graph": g.meta.get("name", "?"), "n": g.num_nodes, "method": method,
                        "top": len(res), "proxy": proxy, "noisy": float(noise.max()),
                        "bandwidth": float(bwv.max()), "latency": float(latv.max()),
                        "seconds": s})
            print(f"robust {out[-1]}", flush=True)
    return out


def markdown(res: dict, meta: dict) -> str:
    lines = ["# GFlowNet and GauS on real workloads", "",
             f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}  ",
             f"Date: {meta['date']}; wall time {meta['wall_s']:.0f} s. "
             f"Checkpoint: {meta['checkpoint']}.", ""]
    if "stg" in res:
        lines += [f"## STG 50-task, {meta['budget']:g} s budget ({meta['graphs']} graphs: "
                  f"rand0000-rand{meta['graphs'] - 1:04d})", "",
                  "Gap to the optimum (published where proven, else CP-SAT's value).", "",
                  "| solver | lanes | graphs | mean gap | max gap | worse than list | "
                  "wall p95 s | wall max s |", "|---|---|---|---|---|---|---|---|"]
        for r in res["stg"]["summary"]:
            lines.append(f"| {r['solver']} | {r['lanes']} | {r['graphs']} | "
                         f"{100 * r['mean_gap']:.2f}% | {100 * r['max_gap']:.2f}% | "
                         f"{r['worse_than_list']} | {r['wall_p95_s']:.2f} | "
                         f"{r['wall_max_s']:.2f} |")
        lines.append("")
    if "rate" in res:
        lines += ["## GFlowNet sampling rate (layered graphs, 1,000 samples, encoding included)",
                  "", "| nodes | objective | samples/s | solve s | encode s |",
                  "|---|---|---|---|---|"]
        for r in res["rate"]:
            lines.append(f"| {r['nodes']} | {r['objective']} | {r['samples_per_s']:.0f} | "
                         f"{r['solve_s']:.2f} | {r['encode_s']:.3f} |")
        lines.append("")
    if "equal" in res:
        lines += [f"## GFlowNet vs random-list at {meta['samples']} samples each (no seeds)", "",
                  "| lanes | graphs | gflownet wins | ties | random-list wins | "
                  "gflownet mean gap | random-list mean gap |", "|---|---|---|---|---|---|---|"]
        for r in res["equal"]["summary"]:
            lines.append(f"| {r['lanes']} | {r['graphs']} | {r['gflownet_wins']} | {r['ties']} | "
                         f"{r['random_list_wins']} | {100 * r['gflownet_mean_gap']:.2f}% | "
                         f"{100 * r['random_list_mean_gap']:.2f}% |")
        lines.append("")
    if "memory" in res:
        lines += ["## Memory objectives (10 generated 100-node graphs; no budget: fixed work)", "",
                  "Value / least-peak-memory-first's value (lower is better).", "",
                  "| objective | method | graphs | mean ratio | better than lpmf | worse |",
                  "|---|---|---|---|---|---|"]
        for r in res["memory"]["summary"]:
            lines.append(f"| {r['objective']} | {r['method']} | {r['graphs']} | "
                         f"{r['mean_ratio_to_lpmf']:.4f} | {r['better_than_lpmf']} | "
                         f"{r['worse_than_lpmf']} |")
        lines.append("")
    if "robust" in res:
        lines += ["## Robustness study (4 lanes; best target speedup among the top schedules)",
                  "", "| graph | n | method | top | proxy | noisy | bandwidth | latency | s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in res["robust"]:
            lines.append(f"| {r['graph']} | {r['n']} | {r['method']} | {r['top']} | "
                         f"{r['proxy']:.3f} | {r['noisy']:.3f} | {r['bandwidth']:.3f} | "
                         f"{r['latency']:.3f} | {r['seconds']:.1f} |")
        means = {}
        for r in res["robust"]:
            means.setdefault(r["method"], []).append(r)
        lines += ["", "| method | mean proxy | mean noisy | mean bandwidth | mean latency |",
                  "|---|---|---|---|---|"]
        for m, rs in means.items():
            lines.append(f"| {m} | " + " | ".join(
                f"{np.mean([r[k] for r in rs]):.3f}"
                for k in ("proxy", "noisy", "bandwidth", "latency")) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", nargs="+", default=["stg", "rate", "equal", "robust"])
    p.add_argument("--graphs", type=int, default=120, help="first N STG 50-task graphs")
    p.add_argument("--skip", type=int, default=0, help="part stg: skip the first K of them")
    p.add_argument("--lanes", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--solvers", nargs="+", default=["list", "random-list", "gflownet", "gaus"])
    p.add_argument("--budget", type=float, default=5.0)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--methods", nargs="+", default=["list", "random-list", "gaus", "gflownet"])
    p.add_argument("--top", type=int, default=100)
    p.add_argument("--robust-graphs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="gflownet")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--merge", nargs="+", type=Path, default=None,
                   help="re-summarise the STG rows of earlier JSON results into --name")
    args = p.parse_args(argv)
    if args.merge:
        docs = [json.loads(m.read_text()) for m in args.merge]
        rows = [r for d in docs for r in d["stg"]["rows"]]
        graphs = len({r["graph"] for r in rows})
        meta = dict(docs[0]["meta"], graphs=graphs,
                    command=" + ".join(d["meta"]["command"] for d in docs),
                    wall_s=sum(d["meta"]["wall_s"] for d in docs))
        res = {"stg": {"rows": rows, "summary": stg_summary(rows, args.solvers, args.lanes)}}
        (args.out / f"{args.name}.json").write_text(json.dumps({"meta": meta, **res}, indent=1))
        (args.out / f"{args.name}.md").write_text(markdown(res, meta))
        print(markdown(res, meta))
        return 0
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    runners = {"stg": run_stg, "rate": run_rate, "equal": run_equal, "robust": run_robust,
               "memory": run_memory}
    res = {part: runners[part](args) for part in args.part}
    from tvm_sched.solvers.gflownet.checkpoint import DEFAULT_CHECKPOINT, read_checkpoint

    doc = read_checkpoint(DEFAULT_CHECKPOINT)
    meta = {"command": "benchmarks/gflownet.py " + " ".join(sys.argv[1:] if argv is None
                                                             else argv),
            "machine": _machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "wall_s": time.perf_counter() - t0, "budget": args.budget, "graphs": args.graphs,
            "samples": args.samples,
            "checkpoint": f"default.pt ({doc['progress'].get('iteration')} iterations, "
                          f"{doc['progress'].get('seconds', 0):.0f} s of training)"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps({"meta": meta, **res}, indent=1))
    (args.out / f"{args.name}.md").write_text(markdown(res, meta))
    print(markdown(res, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
