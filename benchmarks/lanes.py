"""Lane runtime benchmark: the Relax VM against lanes scheduled by each solver, per zoo model.

For every zoo model (``--size bench`` by default) on the CPU with TVM's default kernels:

- ``vm_ms``: the Relax VM running ``main`` (the same executable whose kernels the lanes call);
- per lane count m (``--lanes``, default 1 and 2) and solver (``--solvers``: ``list``, ``gaus``,
  ``gflownet``, ``cpsat``; ``--budget`` seconds each) the solver's best makespan schedule on
  kernel durations measured just before (``LaneKernels.profile``: the VM instrument hook),
  its predicted makespan (``pred_ms``) and predicted speed-up (Σ durations / makespan), and per
  engine (``--engines``: ``native`` when built, ``python``) the measured latency (``ms``) and
  speed-up over the VM (``speedup``); at m = 1 the schedule is the module's own order;
- ``arena`` bytes of each plan next to TVM's planned bytes (``tvm_bytes``, the module in its own
  order, :func:`tvm_sched.relax.memory.planned_bytes`);
- per-kernel overhead of each engine against the VM at m = 1: (engine - VM) / kernels, µs;
- PyTorch eager at 1 and 2 threads on the same model (same weights), for context;
- a control, ``vm_pair_gain``: two independent Relax VMs run the model at once on two threads,
  throughput over one VM. On an idle 2-core machine it is about 2; on a shared one it says how
  much of a second core there was -- lane speed-ups cannot exceed it.

Outputs are checked bit-identical to the VM before timing (``ok``). Timings are medians over
``--repeat`` rounds; in each round every configuration (VM, torch, each lane module) runs
``--number`` times in turn, so drifts of a shared machine hit all alike. The 1-minute load
average before and after each model is recorded: on a machine shared with other work, 2-lane
figures are pessimistic (a lane loses its core while another process runs). Results are merged
by model into ``<out>/lanes.json``; ``lanes.md`` is rewritten from all rows::

    .venv/bin/python benchmarks/lanes.py                         # every model, bench size
    .venv/bin/python benchmarks/lanes.py --models nasnet,inception --repeat 5 --budget 3
    .venv/bin/python benchmarks/lanes.py --size small --solvers list --repeat 3  # smoke run
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TVM_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _median_ms(xs) -> float:
    return 1e3 * float(statistics.median(xs)) if xs else float("nan")


def bench_model(name: str, args) -> dict:
    import torch
    import tvm
    from tvm import relax

    from tvm_sched import zoo
    from tvm_sched.runtime.builder import LaneKernels

    load0 = _load()
    t0 = time.perf_counter()
    imp = zoo.load(name, size=args.size)
    kernels = LaneKernels(imp.mod, "llvm", params=imp.params)
    build_s = time.perf_counter() - t0
    inputs = imp.inputs
    ref = kernels.reference(*inputs)
    kernels.profile(repeat=args.profile_repeat)
    graph = kernels.graph
    steps = None
    row: dict = {"model": name, "size": args.size, "ops": graph.num_nodes,
                 "build_s": round(build_s, 2), "tvm_bytes": kernels.tvm_planned_bytes,
                 "sum_ms": 1e3 * float(np.sum(graph.duration)),
                 "critical_ms": 1e3 * float(graph.critical_path_length), "configs": []}
    engines = list(args.engines)
    configs: list[dict] = []
    modules = []
    for m in args.lanes:
        solvers = ["tvm-order"] if m == 1 else list(args.solvers)
        for solver in solvers:
            t1 = time.perf_counter()
            try:
                sched = kernels.schedule(m, solver if m > 1 else "list", budget=args.budget,
                                         seed=0)
            except Exception as err:  # noqa: BLE001 - one solver failing is a recorded row
                configs.append({"m": m, "solver": solver, "error": f"{type(err).__name__}: "
                                f"{str(err)[:200]}"})
                continue
            solve_s = time.perf_counter() - t1
            pred = kernels.predicted_makespan(sched)
            plan = kernels.plan(sched)
            for engine in engines:
                cfg = {"m": m, "solver": solver, "engine": engine, "solve_s": round(solve_s, 2),
                       "pred_ms": 1e3 * pred,
                       "pred_speedup": float(np.sum(graph.duration)) / pred if pred else None}
                try:
                    lm = kernels.module(plan, engine=engine, allow_oversubscribe=True)
                except Exception as err:  # noqa: BLE001
                    cfg["error"] = f"{type(err).__name__}: {str(err)[:200]}"
                    configs.append(cfg)
                    continue
                outs = lm(*inputs)
                cfg["ok"] = all(np.array_equal(a, b, equal_nan=True)
                                for a, b in zip(outs, ref, strict=True))
                cfg["arena"] = lm.arena_bytes
                cfg["waits"] = lm.plan.num_waits
                cfg["lanes_used"] = lm.plan.num_lanes
                steps = len(lm.plan.steps)
                cfg["samples"] = []
                configs.append(cfg)
                modules.append((cfg, lm))
    # the VM and torch, interleaved with the lane modules
    vm = kernels.vm()
    vm_args = kernels.vm_args(inputs)
    main = vm["main"]
    tmodel, targs = zoo.torch_model(name, size=args.size)
    vm_samples: list[float] = []
    pair_samples: list[float] = []
    torch_samples: dict[int, list[float]] = {1: [], 2: []}
    mains = [main, relax.VirtualMachine(kernels.exe, tvm.cpu(0))["main"]]
    main(*vm_args)
    mains[1](*vm_args)
    with torch.no_grad():
        tmodel(*targs)
    for _ in range(args.repeat):
        t1 = time.perf_counter()
        for _ in range(args.number):
            main(*vm_args)
        vm_samples.append((time.perf_counter() - t1) / args.number)
        # control: two independent VMs at once -- how much of a second core the machine gives
        threads = [threading.Thread(target=lambda f=f: [f(*vm_args) for _ in range(args.number)])
                   for f in mains]
        t1 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        pair_samples.append((time.perf_counter() - t1) / args.number)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.no_grad():
                t1 = time.perf_counter()
                for _ in range(args.number):
                    tmodel(*targs)
                torch_samples[threads].append((time.perf_counter() - t1) / args.number)
        for cfg, lm in modules:
            lm.run()  # warm
            t1 = time.perf_counter()
            for _ in range(args.number):
                lm.run()
            cfg["samples"].append((time.perf_counter() - t1) / args.number)
    torch.set_num_threads(1)
    row["vm_ms"] = _median_ms(vm_samples)
    row["vm_pair_ms"] = _median_ms(pair_samples)
    row["vm_pair_gain"] = 2 * row["vm_ms"] / row["vm_pair_ms"] if pair_samples else None
    row["torch1_ms"] = _median_ms(torch_samples[1])
    row["torch2_ms"] = _median_ms(torch_samples[2])
    row["steps"] = steps
    for cfg, lm in modules:
        cfg["ms"] = _median_ms(cfg.pop("samples"))
        cfg["speedup"] = row["vm_ms"] / cfg["ms"] if cfg["ms"] else None
        if cfg["m"] == 1 and steps:
            cfg["overhead_us_per_kernel"] = 1e3 * (cfg["ms"] - row["vm_ms"]) / steps
        lm.close()
    row["configs"] = configs
    row["load_before"] = round(load0, 2)
    row["load_after"] = round(_load(), 2)
    return row


def _fmt(x, spec: str = ".1f") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return format(x, spec)


def write_markdown(doc: dict, path: Path) -> None:
    env = doc["env"]
    lines = [
        "# Lane runtime: Relax VM vs lanes",
        "",
        f"`lanes.py` -- {env['platform']}, {env['cpus']} CPUs ({env['usable']} usable); "
        f"TVM {env['tvm']}; torch {env['torch']}; {env['when']}.",
        "TVM's default (untuned, single-threaded) kernels; medians of interleaved rounds "
        f"({env['repeat']} rounds x {env['number']} runs). `pred` = makespan of the schedule "
        "on kernel durations measured just before; `pred x` = Σ durations / makespan; `x VM` = "
        "VM latency / lane latency; `ok` = outputs bit-identical to the VM; overhead = (lanes "
        "at m = 1 - VM) / kernels. Load = 1-minute load average before/after the model (the "
        "machine is shared: with load above the core count, 2-lane runs lose their cores).",
        "",
    ]
    for row in doc["rows"]:
        lines += [
            f"## {row['model']} ({row['size']}, {row['ops']} ops, {row.get('steps')} kernels)",
            "",
            f"Relax VM {_fmt(row['vm_ms'], '.2f')} ms; PyTorch eager 1 thread "
            f"{_fmt(row['torch1_ms'], '.2f')} ms, 2 threads {_fmt(row['torch2_ms'], '.2f')} ms; "
            f"Σ kernel durations {_fmt(row['sum_ms'], '.2f')} ms, critical path "
            f"{_fmt(row['critical_ms'], '.2f')} ms; TVM planned bytes {row['tvm_bytes']}; "
            f"load {row['load_before']} / {row['load_after']}; two independent VMs at once: "
            f"{_fmt(row.get('vm_pair_gain'), '.2f')}x the throughput of one (the parallelism "
            "the machine offered).",
            "",
            "| m | solver | engine | ms | x VM | pred ms | pred x | measured/pred x | arena B "
            "| arena/TVM | waits | ok | overhead µs/kernel |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for c in row["configs"]:
            if "error" in c:
                lines.append(f"| {c['m']} | {c['solver']} | {c.get('engine', '-')} | "
                             f"error: {c['error'][:80]} |||||||||")
                continue
            ratio = (c["speedup"] / c["pred_speedup"]) if c.get("speedup") and \
                c.get("pred_speedup") else None
            arena_ratio = c["arena"] / row["tvm_bytes"] if row["tvm_bytes"] else None
            lines.append(
                f"| {c['m']} | {c['solver']} | {c['engine']} | {_fmt(c['ms'], '.2f')} | "
                f"{_fmt(c['speedup'], '.2f')} | {_fmt(c['pred_ms'], '.2f')} | "
                f"{_fmt(c['pred_speedup'], '.2f')} | {_fmt(ratio, '.2f')} | {c['arena']} | "
                f"{_fmt(arena_ratio, '.2f')} | {c['waits']} | {'yes' if c['ok'] else 'NO'} | "
                f"{_fmt(c.get('overhead_us_per_kernel'), '.1f')} |")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=None, help="comma-separated (default: every zoo model)")
    ap.add_argument("--size", default="bench")
    ap.add_argument("--lanes", default="1,2")
    ap.add_argument("--solvers", default="list,gaus,gflownet,cpsat")
    ap.add_argument("--engines", default=None, help="default: native (when built), python")
    ap.add_argument("--budget", type=float, default=3.0, help="seconds per solver")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--number", type=int, default=3)
    ap.add_argument("--profile-repeat", type=int, default=5)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--name", default="lanes")
    args = ap.parse_args(argv)
    import torch
    import tvm

    from tvm_sched import zoo
    from tvm_sched.runtime import native_engine as native
    from tvm_sched.runtime.cores import usable_cores

    args.lanes = [int(x) for x in args.lanes.split(",")]
    args.solvers = [s for s in args.solvers.split(",") if s]
    if args.engines is None:
        args.engines = (["native"] if native.available() else []) + ["python"]
    else:
        args.engines = [e for e in args.engines.split(",") if e]
    models = args.models.split(",") if args.models else zoo.names()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{args.name}.json"
    doc = json.loads(json_path.read_text()) if json_path.exists() else {"rows": []}
    doc["env"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                  "usable": len(usable_cores()), "tvm": tvm.__version__,
                  "torch": torch.__version__, "repeat": args.repeat, "number": args.number,
                  "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                  "command": " ".join(["benchmarks/lanes.py", *(sys.argv[1:] if argv is None
                                                                  else argv)])}
    for name in models:
        print(f"[lanes] {name} ({args.size}) ...", flush=True)
        row = bench_model(name, args)
        doc["rows"] = [r for r in doc["rows"]
                       if (r["model"], r["size"]) != (name, args.size)] + [row]
        json_path.write_text(json.dumps(doc, indent=1))
        write_markdown(doc, out / f"{args.name}.md")
        best = max((c for c in row["configs"] if c.get("m", 1) > 1 and "ms" in c),
                   key=lambda c: c["speedup"] or 0, default=None)
        print(f"[lanes] {name}: VM {row['vm_ms']:.2f} ms" + (
            f"; best 2-lane {best['solver']}/{best['engine']} {best['ms']:.2f} ms "
            f"({best['speedup']:.2f}x, predicted {best['pred_speedup']:.2f}x)" if best else ""),
            flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
