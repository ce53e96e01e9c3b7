"""End-to-end cost and outcome of ``tvm_sched.tune`` on the zoo.

For each zoo model and objective, one fresh tuning run (new temporary work dir, so nothing is
resumed) with the embedded RPC runner (the default of ``tvm-sched tune``), and one row with:

- time: end to end (``tune``'s own total, the model import apart) and its split -- propose
  (solvers + random fill + proxies), build (of which: the shared kernel library), measure,
  export of the pick;
- throughput: candidates measured per minute of the measure stage and per end-to-end minute;
- the pick against TVM's own order (the ``tvm`` record): median latency with its [q1, q3],
  speed-up (TVM median / pick median), planned bytes and their ratio; whether the two [q1, q3]
  intervals overlap (then the speed-up is within the measurement noise);
- the spread of all measured medians (slowest / fastest) and how many candidates were faster
  than TVM's order beyond noise (their q3 below TVM's q1);
- the Spearman rank correlation of each proxy (cache-miss, planned, peak bytes) with the
  measured medians, and the number of candidates that failed.

    OMP_NUM_THREADS=1 TVM_NUM_THREADS=1 .venv/bin/python benchmarks/tune.py \\
        --objectives latency memory
    .venv/bin/python benchmarks/tune.py --quick --out /tmp/tune   # smoke run, < 1 min
    .venv/bin/python benchmarks/tune.py --lanes auto   # lanes: see benchmarks/tune_lanes.py

Writes ``<name>.json`` and ``<name>.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

from tvm_sched import zoo
from tvm_sched.tune import EmbeddedDevices, InProcessDevices, TuneConfig, load_model, tune
from tvm_sched.tune.tuner import DEFAULT_SOLVERS, OBJECTIVES

STAGES = ("propose", "build", "kernels", "measure", "export")


def _overlap(a: dict | None, b: dict | None) -> bool | None:
    """Whether the [q1, q3] intervals of two latency summaries overlap."""
    if not a or not b:
        return None
    return a["q1"] <= b["q3"] and b["q1"] <= a["q3"]


def summarise(res, load_s: float) -> dict:
    """One benchmark row from a :class:`~tvm_sched.tune.TuneResult`'s typed records."""
    secs = {k: float(res.seconds.get(k, 0.0)) for k in (*STAGES, "total")}
    best, base = res.best, res.baseline
    ok = [r for r in res.records if r.ok]
    medians = [r.latency["median"] for r in ok]
    base_lat = base.latency if base else None
    best_lat = best.latency if best else None
    errors = [r for r in res.records if r.error]
    measured = res.measured_now

    def per_min(seconds: float) -> float | None:
        return measured / seconds * 60 if seconds > 0 else None

    def lat_part(lat: dict | None) -> dict | None:
        if lat is None:
            return None
        return {"median_s": lat["median"], "q1_s": lat["q1"], "q3_s": lat["q3"],
                "iqr_s": lat["q3"] - lat["q1"], "rel_iqr": (lat["q3"] - lat["q1"]) / lat["median"],
                "n": lat["n"]}

    pick_is_tvm = best is not None and base is not None and best.order_hash == base.order_hash
    planned_ratio = (best.planned_bytes / base.planned_bytes
                     if best and base and best.planned_bytes and base.planned_bytes else None)
    return {
        "model": res.model, "objective": res.objective, "nodes": res.info.get("nodes"),
        "load_s": load_s, "seconds": secs,
        "proposed": res.info.get("candidates_proposed"),
        "chosen": res.info.get("candidates_chosen"), "measured": measured,
        "per_min_measure": per_min(secs["measure"]), "per_min_total": per_min(secs["total"]),
        "pick": None if best is None else {
            "candidate": best.candidate, "source": best.source,
            "planned_bytes": best.planned_bytes, "latency": lat_part(best_lat)},
        "tvm": None if base is None else {
            "planned_bytes": base.planned_bytes, "latency": lat_part(base_lat)},
        "pick_is_tvm": pick_is_tvm,
        "fastest": res.info.get("fastest"),
        "fastest_speedup": next((1.0 / r.relative for r in ok
                                 if r.candidate == res.info.get("fastest") and r.relative),
                                None),
        "kept_tvm_within_noise": bool(res.info.get("kept_default_within_noise")),
        "speedup": res.speedup, "planned_ratio": planned_ratio,
        "within_noise": _overlap(best_lat, base_lat),
        "spread": max(medians) / min(medians) if medians else None,
        "faster_beyond_noise": sum(1 for r in ok if base_lat and r.latency["q3"]
                                   < base_lat["q1"]),
        "spearman": dict(res.spearman),
        "errors": len(errors),
        "error_messages": sorted({str(r.error)[:160] for r in errors}),
        "reconnects": res.info.get("reconnects"), "full_compiles": res.info.get("full_compiles"),
        "devices": sorted({r.device for r in res.records}),
    }


def run_one(model, objective: str, args) -> dict:
    """Tune ``model`` for ``objective`` in a fresh temporary work dir."""
    cfg = TuneConfig(objective=objective, candidates=args.candidates, top_k=args.top_k,
                     repeats=args.repeats, solvers=tuple(args.solvers),
                     solver_budget=args.solver_budget, seed=args.seed)
    stage = {"now": None}

    def progress(name: str, done: int, total: int, what: str) -> None:
        if name != stage["now"]:
            stage["now"] = name
            print(f"    {name} ({total})", flush=True)

    runner = InProcessDevices() if args.runner == "in-process" else EmbeddedDevices()
    with tempfile.TemporaryDirectory(prefix=f"tune_{model.name}_{objective}_") as work, runner:
        return tune(model, "llvm", runner, work, cfg, progress=progress)


def run_model(name: str, args) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model = load_model(model=name, seed=args.seed)
        load_s = time.perf_counter() - t0
    print(f"{name}: {model.num_nodes} operators, {len(model.graphs)} block(s), "
          f"import {load_s:.1f} s", flush=True)
    rows = []
    for objective in args.objectives:
        print(f"  objective {objective}", flush=True)
        row = summarise(run_one(model, objective, args), load_s)
        rows.append(row)
        sp = "-" if row["speedup"] is None else f"{row['speedup']:.3f}x"
        print(f"  -> pick {row['pick']['candidate'] if row['pick'] else None}, speed-up {sp}"
              f" ({'within noise' if row['within_noise'] else 'beyond noise'}), planned ratio "
              f"{_f(row['planned_ratio'], '.3f')}, {row['measured']} measured in "
              f"{row['seconds']['total']:.1f} s, {row['errors']} errors", flush=True)
    return rows


# ---------------------------------------------------------------------------- report
def _f(x, spec: str, none: str = "-") -> str:
    return none if x is None else format(x, spec)


def _b(x) -> str:
    return "-" if x is None else f"{int(x):,}"


def _ms(part: dict | None) -> str:
    """``median [q1, q3]`` in ms, and the IQR relative to the median."""
    if not part or not part.get("latency"):
        return "-"
    lat = part["latency"]
    return (f"{lat['median_s'] * 1e3:.4f} [{lat['q1_s'] * 1e3:.4f}, {lat['q3_s'] * 1e3:.4f}] "
            f"({100 * lat['rel_iqr']:.1f}%)")


def _cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _geomean(values: list[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _noise(row: dict) -> str:
    if row["pick_is_tvm"]:
        return "pick is TVM's order"
    if row["within_noise"] is None:
        return "-"
    return "yes (IQRs overlap)" if row["within_noise"] else "no"


def markdown(meta: dict, rows: list[dict]) -> str:
    a = meta["args"]
    md = ["# The tuner on the zoo: time, throughput and the pick against TVM's order", "",
          f"Command: `{meta['command']}`  ",
          f"Machine: {meta['machine']}; {meta['date']}; wall time {meta['wall_s']:.0f} s "
          "(after imports).", "",
          f"Each row is one fresh `tune` run (new temporary work dir, nothing resumed) on target "
          f"`llvm` with the `{a['runner']}` runner: solvers {', '.join(a['solvers'])} "
          f"({a['solver_budget']:g} s each) plus random orders up to {a['candidates']} "
          f"candidates, the top {a['top_k']} by the objective's proxy plus the baselines "
          f"(TVM's order and the distinct `TopologicalSort` orders) measured, {a['repeats']} "
          f"interleaved repeats each, seed {a['seed']}.", "",
          "## How to read", "",
          "*Time* is `tune`'s own end-to-end time (model import not included, see the JSON) as "
          "propose / build / measure / export; *kernels* is the part of build spent compiling "
          "the shared kernel library once. *Cand./min* counts the candidates measured in the "
          "run (baselines included) per minute of the measure stage and per end-to-end minute. "
          "Latencies are `median [q1, q3]` of the repeats in ms, with the interquartile range "
          "as a percentage of the median. *Speed-up* is TVM's median over the pick's. The "
          "measure stage has a fixed cost per run (starting the embedded RPC server, exporting "
          "and uploading the kernel library and the inputs): models with a single legal order "
          "measure one candidate and show it, and it is why the candidates per minute grow "
          "with the number measured.", "",
          "These are small CPU models: every order runs the same kernels, and the order only "
          "changes which intermediate tensors are still in cache, so the differences between "
          "orders are often of the size of the measurement noise (the machine is shared, and "
          "the IQR column shows how large that noise is). *Within noise* says whether the "
          "pick's [q1, q3] overlaps TVM's: when it does, the speed-up is not evidence that the "
          "pick is faster. Picking the lowest of a dozen noisy medians also favours a speed-up "
          "above 1 by chance alone, so read a small speed-up with an overlapping IQR as "
          "\"no measurable difference\". *Spread* is the slowest measured median over the "
          "fastest; *beyond noise* counts candidates whose q3 is below TVM's q1. With the "
          "latency objective the tuner keeps TVM's order unless the fastest candidate's q3 is "
          "below the q1 of TVM's order measured in the same interleaved batch (*kept TVM* in "
          "the *fastest* column); the fastest candidate and its speed-up are shown anyway. "
          "With the memory objective the pick is the candidate with the fewest planned bytes (the "
          "planner's number is exact, not noisy); its latency is reported only to show that it "
          "costs none. Spearman is the rank correlation of each proxy with the measured "
          "medians over the candidates measured without error.", ""]
    for objective in meta["objectives"]:
        part = [r for r in rows if r["objective"] == objective]
        if not part:
            continue
        md += [f"## Objective: {objective}", "",
               "| model | nodes | measured | time s (propose / build (kernels) / measure / "
               "export) | cand./min measure / end-to-end | pick | pick ms [q1, q3] (IQR) | "
               "TVM ms [q1, q3] (IQR) | speed-up | within noise | fastest (vs TVM, same batch) | "
               "spread | beyond noise | "
               "pick planned B | TVM planned B | planned ratio | Spearman cache-miss / planned "
               "/ peak | errors |",
               "|---|---:|---:|---|---|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---|"
               "---:|"]
        for r in part:
            s, sp = r["seconds"], r["spearman"]
            pick = r["pick"] or {}
            md.append(
                f"| {r['model']} | {r['nodes']} | {r['measured']} | {s['total']:.1f} "
                f"({s['propose']:.1f} / {s['build']:.1f} ({s['kernels']:.1f}) / "
                f"{s['measure']:.1f} / {s['export']:.1f}) | {_f(r['per_min_measure'], '.1f')} / "
                f"{_f(r['per_min_total'], '.1f')} | {pick.get('candidate', '-')} | "
                f"{_ms(r['pick'])} | {_ms(r['tvm'])} | {_f(r['speedup'], '.3f')} | "
                f"{_noise(r)} | {r.get('fastest') or '-'} ({_f(r.get('fastest_speedup'), '.3f')})"
                f"{' kept TVM' if r.get('kept_tvm_within_noise') else ''} | "
                f"{_f(r['spread'], '.3f')} | {r['faster_beyond_noise']} | "
                f"{_b(pick.get('planned_bytes'))} | {_b((r['tvm'] or {}).get('planned_bytes'))} "
                f"| {_f(r['planned_ratio'], '.3f')} | "
                + " / ".join(_f(sp.get(k), "+.2f", "n/a") for k in ("cache_miss", "planned",
                                                                    "peak"))
                + f" | {r['errors']} |")
        speedups = [r["speedup"] for r in part if r["speedup"]]
        ratios = [r["planned_ratio"] for r in part if r["planned_ratio"]]
        beyond = [r["model"] for r in part if r["within_noise"] is False and not r["pick_is_tvm"]]
        md += ["", f"Geometric mean over {len(part)} models: speed-up "
               f"{_f(_geomean(speedups), '.3f')}, planned ratio {_f(_geomean(ratios), '.3f')}. "
               f"Pick is TVM's order: {sum(r['pick_is_tvm'] for r in part)}; speed-up within "
               f"noise: {sum(bool(r['within_noise']) and not r['pick_is_tvm'] for r in part)}; "
               f"beyond noise: {', '.join(beyond) if beyond else 'none'}. Errors: "
               f"{sum(r['errors'] for r in part)}; full compiles (fast build fell back): "
               f"{sum(r['full_compiles'] or 0 for r in part)}; reconnects: "
               f"{sum(r['reconnects'] or 0 for r in part)}. Total tuning time "
               f"{sum(r['seconds']['total'] for r in part):.0f} s for "
               f"{sum(r['measured'] for r in part)} candidates measured.", ""]
        msgs = sorted({m for r in part for m in r["error_messages"]})
        if msgs:
            md += ["Errors:", ""] + [f"- {m}" for m in msgs] + [""]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=None, choices=zoo.names(),
                   help="default: the whole zoo")
    p.add_argument("--objectives", nargs="+", default=["latency"], choices=list(OBJECTIVES))
    p.add_argument("--candidates", type=int, default=64, help="orders proposed in all")
    p.add_argument("--top-k", type=int, default=8, help="proposals measured (plus baselines)")
    p.add_argument("--repeats", type=int, default=10, help="interleaved timing rounds")
    p.add_argument("--solvers", nargs="+", default=list(DEFAULT_SOLVERS))
    p.add_argument("--solver-budget", type=float, default=2.0, help="seconds per solver")
    p.add_argument("--runner", choices=["embedded", "in-process"], default="embedded")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: inception, 16 candidates, top 2, 3 repeats")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--name", default=None, help="output file stem (default tune[_quick])")
    p.add_argument("--render", type=Path, default=None, metavar="FILE.json",
                   help="only rewrite FILE.md from a saved FILE.json (after editing the report)")
    lanes = p.add_argument_group("lanes (benchmarks/tune_lanes.py)")
    lanes.add_argument("--lanes", default=None, metavar="auto|M",
                       help="tune lane schedules instead (default models: the multi-branch ones)")
    lanes.add_argument("--size", default="bench", choices=list(zoo.SIZES))
    lanes.add_argument("--cores", type=int, default=2, help="cores this run may use")
    lanes.add_argument("--samples", type=int, default=256)
    lanes.add_argument("--per-solver", type=int, default=2)
    args = p.parse_args(argv)
    if args.lanes is not None:
        from tune_lanes import main as lanes_main

        return lanes_main(args, argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.models = args.models or ["inception"]
        args.candidates, args.top_k, args.repeats, args.solver_budget = 16, 2, 3, 0.5
    args.name = args.name or ("tune_quick" if args.quick else "tune")
    models = args.models or zoo.names()

    if args.render is not None:  # re-render the markdown of a saved run, measure nothing
        saved = json.loads(args.render.read_text())
        text = markdown(saved["meta"], saved["rows"])
        args.render.with_suffix(".md").write_text(text)
        print(text)
        return 0

    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    t0 = time.perf_counter()
    rows = [row for name in models for row in run_model(name, args)]
    meta = {"command": " ".join(["benchmarks/tune.py",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "machine": f"{platform.platform()}, {os.cpu_count()} CPUs "
                       f"({_cpu_name()}), python "
                       f"{platform.python_version()}, OMP_NUM_THREADS="
                       f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, TVM_NUM_THREADS="
                       f"{os.environ.get('TVM_NUM_THREADS', 'unset')}",
            "date": started,
            "wall_s": time.perf_counter() - t0, "objectives": args.objectives,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                           indent=1))
    text = markdown(meta, rows)
    (args.out / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
