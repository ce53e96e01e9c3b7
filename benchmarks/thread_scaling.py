"""How much can lanes gain over the tuned all-core VM? Kernel thread scaling and the lane bound.

Lanes pay when the kernels use the cores poorly: m lanes of one thread each beat the VM on m
threads only if the kernels' m-thread speed-up is well below m, or the VM wastes time between
kernels. This benchmark measures that, per zoo model (``--size bench``) with the kernels
``benchmarks/tuned.py`` tuned (its ``--work`` directory; ``--kernel-trials`` and
``--lane-kernel-trials`` as there, so the same databases are found and nothing is tuned again):

- every kernel call of ``main`` timed through the Relax VM's instrument hook (in program order,
  median of ``--repeat`` runs) in child processes of their own: the 1-thread kernels with a
  1-thread pool, and the all-core kernels with an all-core pool (``TVM_NUM_THREADS``),
  alternated ``--rounds`` times (medians over the rounds); the end-to-end VM latency of each is
  timed the same way, without the hook;
- ``scaling``: the summed 1-thread durations over the summed all-core ones (m = the core count
  is perfect scaling), and the spread per call;
- the lanes' bound: the operator graph with the 1-thread durations (per kernel, the median over
  its calls), m lanes, makespan objective, solved by CP-SAT for ``--budget`` seconds: its best
  plan (``lanes_ms``) and its proven lower bound (``bound_ms``; no m-lane plan of these
  durations is faster, before any synchronisation cost). ``best_gain`` = the all-core VM's
  latency (its fastest round: slow periods of the machine hit the all-core rounds) over
  ``bound_ms``: the most any m-lane plan of one-thread lanes can gain here.

Run it alone on the machine (it times kernels). Results: ``<out>/thread_scaling.{json,md}``::

    .venv/bin/python benchmarks/thread_scaling.py --work tvm-sched-runs/bench-tuned-s14 \\
        --kernel-trials 480 --lane-kernel-trials 128
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODELS = ("nasnet", "inception", "darts", "hrnet", "resnet")


def _kernel_set(name: str, args, cores: int):
    import tvm

    from tvm_sched.tune import load_model
    from tvm_sched.tune.kernels import prepare_kernels

    model = load_model(model=name, size=args.size, layout=args.layout)
    cpu = tvm.target.codegen.llvm_get_system_cpu()
    work = Path(args.work) / f"{name}-{args.size}"
    ks = prepare_kernels(model.mod, tvm.target.Target("llvm"), cpu, {cores, 1}, work=work,
                         trials=args.kernel_trials, model_hash=model.hash,
                         lane_trials=args.lane_kernel_trials)
    return model, ks


def child(name: str, threads: int, args) -> dict:
    """Per-call durations and end-to-end latency of ``name`` on ``threads`` threads (run in a
    process whose ``TVM_NUM_THREADS`` is ``threads``)."""
    import numpy as np
    import tvm
    from tvm import relax

    from tvm_sched.relax.profile import _kernel_names, _main_args, time_calls
    from tvm_sched.runtime.builder import apply_database

    model, ks = _kernel_set(name, args, args.cores)
    db = ks.database(threads)
    if db is None:
        raise SystemExit(f"{name}: no database for {threads} thread(s) under {args.work}")
    mod = apply_database(model.mod, ks.target(threads), db)
    host = _main_args(mod, "main", np.random.default_rng(0), list(model.inputs))
    vm = relax.VirtualMachine(tvm.compile(mod, ks.target(threads)), tvm.cpu())
    argv = [tvm.runtime.tensor(a, tvm.cpu()) for a in host]
    for _ in range(5):
        vm["main"](*argv)
    e2e = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        vm["main"](*argv)
        e2e.append(time.perf_counter() - t0)
    runs = time_calls(vm, "main", argv, _kernel_names(mod), args.repeat)
    names = [n for n, _ in runs[0]]
    per_call = [statistics.median(r[i][1] for r in runs) for i in range(len(names))]
    return {"names": names, "seconds": per_call, "e2e": statistics.median(e2e),
            "target": str(ks.target(threads)), "database": str(db)}


def _run_child(name: str, threads: int, args) -> dict:
    env = dict(os.environ, TVM_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--child", name, "--child-threads", str(threads),
           "--size", args.size, "--layout", args.layout, "--work", args.work,
           "--kernel-trials", str(args.kernel_trials), "--cores", str(args.cores),
           "--repeat", str(args.repeat)]
    if args.lane_kernel_trials is not None:
        cmd += ["--lane-kernel-trials", str(args.lane_kernel_trials)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{name} on {threads} thread(s): {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _merge(runs: list[dict]) -> dict:
    """Medians over the rounds of one thread count (per call, and end to end)."""
    out = dict(runs[0])
    out["seconds"] = [statistics.median(r["seconds"][i] for r in runs)
                      for i in range(len(runs[0]["names"]))]
    out["e2e"] = statistics.median(r["e2e"] for r in runs)
    out["e2e_rounds"] = [r["e2e"] for r in runs]
    return out


def _lane_bound(name: str, args, one: dict) -> dict:
    from tvm_sched.cost import make_objective
    from tvm_sched.relax.extract import extract
    from tvm_sched.runtime.builder import apply_database
    from tvm_sched.solvers import solve

    model, ks = _kernel_set(name, args, args.cores)
    mod = apply_database(model.mod, ks.target(1), ks.database(1))
    by_name: dict[str, list[float]] = {}
    for n, s in zip(one["names"], one["seconds"], strict=True):
        by_name.setdefault(n, []).append(s)
    times = {n: statistics.median(v) for n, v in by_name.items()}
    graphs = extract(mod, kernel_times=times)
    graph = max(graphs, key=lambda g: g.num_nodes)
    objective = make_objective("makespan", lanes=args.cores)
    res = solve(graph, objective, solver="cpsat", budget=args.budget)
    return {"nodes": graph.num_nodes, "lanes_ms": res.values[0] * 1e3,
            "bound_ms": res.bound * 1e3, "cpsat_status": str(res.status),
            "graph_sum_ms": float(graph.duration.sum()) * 1e3}


def measure(name: str, args) -> dict:
    load = os.getloadavg()[0]
    rounds: dict[int, list[dict]] = {1: [], args.cores: []}
    for _ in range(args.rounds):  # interleaved: a slow period of the machine hits both
        for t in rounds:
            rounds[t].append(_run_child(name, t, args))
    one, full = (_merge(rounds[1]), _merge(rounds[args.cores]))
    if one["names"] != full["names"]:
        raise RuntimeError(f"{name}: the two builds call different kernels")
    ratios = sorted(a / b for a, b in zip(one["seconds"], full["seconds"], strict=True))
    row = {"model": name, "load_1min": load, "calls": len(ratios),
           "vm1_ms": one["e2e"] * 1e3, "vm_ms": full["e2e"] * 1e3,
           "vm1_rounds_ms": [x * 1e3 for x in one["e2e_rounds"]],
           "vm_rounds_ms": [x * 1e3 for x in full["e2e_rounds"]],
           "sum1_ms": sum(one["seconds"]) * 1e3, "sum_ms": sum(full["seconds"]) * 1e3,
           "scaling": sum(one["seconds"]) / sum(full["seconds"]),
           "scaling_p10": ratios[len(ratios) // 10], "scaling_median": statistics.median(ratios),
           "targets": [one["target"], full["target"]]}
    row.update(_lane_bound(name, args, one))
    # the VM's fastest round: a slow period of the machine (seen on both cores at once, in
    # rounds of the all-core VM only) must not make the lanes look better than they can be
    row["vm_quiet_ms"] = min(row["vm_rounds_ms"])
    row["best_gain"] = row["vm_quiet_ms"] / row["bound_ms"]
    return row


def _md(meta: dict, rows: list[dict], cores: int) -> str:
    lines = [f"# Kernel thread scaling and the lanes' bound ({cores} cores)", "",
             f"CPU: {meta['cpu']}; {meta['date']}; `{meta['command']}`", "",
             "VM ms: the Relax VM end to end: 1 thread on the 1-thread kernels (median over "
             "the rounds); all cores on the all-core kernels (the fastest round, every round in "
             "brackets: a slow period of the machine hits the all-core rounds). scaling: "
             "summed 1-thread kernel time over summed all-core kernel "
             f"time ({cores} = perfect), with the 10th percentile and median over the calls. "
             f"{cores}-lane bound: CP-SAT's proven lower bound on the makespan of any {cores}-lane "
             "plan of one-thread lanes on the 1-thread durations (synchronisation not counted); "
             "best gain = VM (all cores) / that bound.", "",
             f"| model | nodes | VM 1 thread ms | VM {cores} threads ms (rounds) "
             f"| scaling [p10, median] | {cores}-lane plan ms | {cores}-lane bound ms "
             "| best gain | load |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | error: {r['error']} |||||||")
            continue
        rounds = ", ".join(f"{x:.2f}" for x in r["vm_rounds_ms"])
        lines.append(f"| {r['model']} | {r['nodes']} | {r['vm1_ms']:.2f} | "
                     f"{r['vm_quiet_ms']:.2f} ({rounds}) | "
                     f"{r['scaling']:.2f} [{r['scaling_p10']:.2f}, {r['scaling_median']:.2f}] | "
                     f"{r['lanes_ms']:.2f} | {r['bound_ms']:.2f} | {r['best_gain']:.3f}x | "
                     f"{r['load_1min']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--size", default="bench")
    ap.add_argument("--layout", default="NHWC", choices=["NCHW", "NHWC"])
    ap.add_argument("--work", default="tvm-sched-runs/bench-tuned")
    ap.add_argument("--kernel-trials", type=int, default=200)
    ap.add_argument("--lane-kernel-trials", type=int, default=None)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=30, help="runs per child process")
    ap.add_argument("--rounds", type=int, default=3,
                    help="child processes per thread count, alternated")
    ap.add_argument("--budget", type=float, default=10.0, help="CP-SAT seconds per model")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-threads", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.child_threads, args)))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from profile_accuracy import run_meta

    meta = run_meta("thread_scaling.py", args)
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        try:
            rows.append(measure(name, args))
        except Exception as err:  # noqa: BLE001 - one model's failure is its row
            rows.append({"model": name, "error": f"{type(err).__name__}: {err}"[:300]})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "thread_scaling.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / "thread_scaling.md").write_text(_md(meta, rows, args.cores))


if __name__ == "__main__":
    main()
