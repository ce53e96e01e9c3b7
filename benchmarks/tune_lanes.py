"""Tuning for latency over lanes on the bench-size zoo (``benchmarks/tune.py --lanes``).

Per model, one fresh ``tune(..., TuneConfig(lanes=...))`` run (new temporary work dir, nothing
resumed) on the embedded RPC server, this process and the server limited to ``--cores`` cores
(CPU affinity, inherited by the server), and one row with:

- the pick and its speed-up over the Relax VM: median [q1, q3] of the per-round ratios of the
  interleaved rounds (VM and candidate measured side by side);
- the executor at m = 1 and list scheduling at m, the same way;
- per solver (same sample budget): its best measured speed-up and its proxy rank;
- whether the pick beats the VM beyond noise, and the pick against the best measured candidate;
- Spearman of predicted makespan vs measured latency (relative to the VM of the same rounds);
- wall time per stage (import, connect, compile, profile, propose, plan, measure, export).

    OMP_NUM_THREADS=1 TVM_NUM_THREADS=1 .venv/bin/python benchmarks/tune.py --lanes auto \\
        --models darts hrnet nasnet inception randwire

Writes ``tune_lanes.json`` and ``tune_lanes.md`` under ``--out``.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

MULTI_BRANCH = ("darts", "hrnet", "nasnet", "inception", "randwire")


def _limit_cores(n: int | None) -> list[int]:
    cores = sorted(os.sched_getaffinity(0))
    if n is not None and n < len(cores):
        cores = cores[:n]
        os.sched_setaffinity(0, cores)
    return cores


def run_model(name: str, args) -> dict:
    from tvm_sched.tune import EmbeddedDevices, TuneConfig, load_model, tune
    from tvm_sched.tune.report import solver_table

    t0 = time.perf_counter()
    model = load_model(model=name, size=args.size, seed=args.seed)
    load_s = time.perf_counter() - t0
    cfg = TuneConfig(lanes=args.lanes, samples=args.samples, per_solver=args.per_solver,
                     top_k=args.top_k, repeats=args.repeats, solver_budget=args.solver_budget,
                     seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="tvm_sched_bench_lanes_") as work, \
            EmbeddedDevices() as runner:
        res = tune(model, "llvm", runner, work, cfg)
    ok = [r for r in res.records if r.ok and r.kind == "lanes" and r.speedup]
    best_measured = max(ok, key=lambda r: r.speedup["median"]) if ok else None

    def sp(rec):
        if rec is None:
            return None
        if rec.kind == "vm":
            return {"median": 1.0, "q1": 1.0, "q3": 1.0}
        return rec.speedup

    vm = next((r for r in res.records if r.kind == "vm"), None)
    lst = res.by_name("list") or next((r for r in res.records if "list" in r.aliases), None)
    pick_sp = sp(res.best)
    return {
        "model": name, "size": args.size, "nodes": res.info["nodes"],
        "kernels": res.info["kernels"], "lanes": res.lanes,
        "vm_median_ms": vm.latency["median"] * 1e3 if vm and vm.ok else None,
        "sum_durations_ms": res.info["sum_durations_s"] * 1e3,
        "pick": res.best.candidate if res.best else None,
        "pick_speedup": pick_sp,
        "pick_beyond_noise": bool(res.best and res.best.kind != "vm"),
        "best_measured": best_measured.candidate if best_measured else None,
        "best_measured_speedup": sp(best_measured),
        "pick_vs_best": (pick_sp["median"] / best_measured.speedup["median"]
                         if pick_sp and best_measured else None),
        "executor_m1_speedup": sp(res.by_name("executor m=1")),
        "list_speedup": sp(lst),
        "solvers": solver_table(res), "spearman": res.spearman.get("predicted"),
        "seconds": {"import": load_s, **res.seconds},
        "errors": [f"{r.candidate}: {r.error}" for r in res.records if r.error],
        "arena": {r.candidate: r.lane_facts.arena_bytes for r in res.records},
    }


def _f(x, spec=".3f", none="-"):
    return none if x is None else format(x, spec)


def _sp(s):
    return "-" if not s else f"{s['median']:.3f} [{s['q1']:.3f}, {s['q3']:.3f}]"


def markdown(meta: dict, rows: list[dict]) -> str:
    md = ["# Tuning for latency over lanes (benchmarks/tune.py --lanes)", "",
          f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}  ",
          f"Date: {meta['date']}; wall {meta['wall_s']:.0f} s; load average at start "
          f"{meta['load_start']}, at end {meta['load_end']}.", "",
          "Speed-ups over the Relax VM are the median [q1, q3] of per-round ratios, VM and "
          "candidate timed side by side in the same interleaved rounds.", ""]
    cores = len(meta["args"].get("cores_used", [])) or meta["args"].get("cores") or 1
    if max(meta["load_start"][0], meta["load_end"][0]) > cores:
        md += [f"**The machine was loaded** (1-minute load average up to "
               f"{max(meta['load_start'][0], meta['load_end'][0]):.1f} on {cores} cores, other "
               "jobs running): the lanes competed with other processes for the cores, so these "
               "figures say how the tuner decides under load, not what lanes gain on an idle "
               "machine.", ""]
    md += [
          "| model | nodes | lanes | VM ms | pick | pick speed-up | beyond noise | best measured "
          "| pick / best | executor m=1 | list at m | Spearman | total s |",
          "|---|---:|---:|---:|---|---|---|---|---:|---|---|---:|---:|"]
    for r in rows:
        md.append(f"| {r['model']} | {r['nodes']} | {r['lanes']} | {_f(r['vm_median_ms'], '.1f')}"
                  f" | {r['pick']} | {_sp(r['pick_speedup'])} | "
                  f"{'yes' if r['pick_beyond_noise'] else 'no (VM kept)'} | "
                  f"{r['best_measured']} {_sp(r['best_measured_speedup'])} | "
                  f"{_f(r['pick_vs_best'])} | {_sp(r['executor_m1_speedup'])} | "
                  f"{_sp(r['list_speedup'])} | {_f(r['spearman'], '+.2f')} | "
                  f"{r['seconds']['total'] + r['seconds']['import']:.0f} |")
    md += ["", "## Per solver (same sample budget): best measured speed-up (proxy rank)", ""]
    solvers = list(dict.fromkeys(s["solver"] for r in rows for s in r["solvers"]))
    md += ["| model | " + " | ".join(solvers) + " |", "|---|" + "---|" * len(solvers)]
    for r in rows:
        cells = []
        by = {s["solver"]: s for s in r["solvers"]}
        for name in solvers:
            s = by.get(name)
            if s is None:
                cells.append("-")
            elif s.get("error"):
                cells.append("skipped")
            else:
                cells.append(f"{_sp(s['best_speedup'])} ({s['proxy_rank'] or '-'})")
        md.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    md += ["", "## Wall time per stage (s)", "",
           "| model | import | connect | compile | profile | propose | plan | measure | export "
           "| total |", "|---|" + "---:|" * 9]
    for r in rows:
        s = r["seconds"]
        md.append(f"| {r['model']} | " + " | ".join(
            _f(s.get(k), ".1f") for k in ("import", "connect", "compile", "profile", "propose",
                                          "plan", "measure", "export", "total")) + " |")
    errs = [e for r in rows for e in r["errors"]]
    if errs:
        md += ["", "Errors:", ""] + [f"- {e}" for e in errs]
    return "\n".join(md) + "\n"


def main(args, argv) -> int:
    cores = _limit_cores(args.cores)
    models = args.models or list(MULTI_BRANCH)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    rows = []
    for name in models:
        print(f"[tune --lanes] {name} ...", flush=True)
        rows.append(run_model(name, args))
        print(json.dumps({k: rows[-1][k] for k in ("model", "pick", "pick_speedup")}),
              flush=True)
    meta = {"command": " ".join(["benchmarks/tune.py", *argv]),
            "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, used {len(cores)} "
                       f"({cores}), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
                       f", TVM_NUM_THREADS={os.environ.get('TVM_NUM_THREADS', 'unset')}",
            "date": started, "wall_s": time.perf_counter() - t0,
            "load_start": [round(x, 2) for x in load_start],
            "load_end": [round(x, 2) for x in os.getloadavg()],
            "args": {**{k: (str(v) if isinstance(v, Path) else v)
                        for k, v in vars(args).items()}, "cores_used": cores}}
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.name or "tune_lanes"
    (args.out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    text = markdown(meta, rows)
    (args.out / f"{name}.md").write_text(text)
    print(text)
    return 0
