"""The fastest module on the device: tuned kernels, lanes x threads, against the strongest anchors.

Per zoo model (``--size bench`` by default), on the embedded tvm_sched RPC server (this
machine):

1. ``--stage kernels``: the kernels tuned with MetaSchedule on the device, ``--kernel-trials``
   per thread count (all cores for the Relax VM, cores / lanes for each lane), into
   ``<work>/<model>/kernels`` (resumable: a second call tunes nothing);
2. ``--stage measure``: one ``tune(..., TuneConfig(lanes=M, kernel_trials=N,
   anchors=all))`` on those kernels (it tunes nothing again), earlier lane records removed so
   that every candidate is measured in the same interleaved rounds: the tuned Relax VM on every
   core (the anchor), the lane plans (m lanes x t threads on kernels tuned for t), PyTorch eager
   (1 thread, all) and ONNX Runtime (sequential, parallel), outputs checked against the VM;
3. ``--stage all``: both.

Kernel tuning loads the machine while it runs; run ``measure`` alone on a quiet machine (the
1-minute load average is recorded before each model). Results: ``<out>/tuned.{json,md}``::

    .venv/bin/python benchmarks/tuned.py --stage kernels --kernel-trials 200
    .venv/bin/python benchmarks/tuned.py --stage measure --kernel-trials 200
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODELS = ("nasnet", "inception", "darts", "hrnet", "resnet")


def _kernels(name: str, size: str, trials: int, work: Path, runner, lanes_asked: str,
             lane_trials: int | None, layout: str) -> dict:
    import tvm

    from tvm_sched.runtime.cores import lanes_for
    from tvm_sched.tune import load_model
    from tvm_sched.tune.kernels import device_facts, prepare_kernels
    from tvm_sched.tune.lanes import device_conditions

    model = load_model(model=name, size=size, layout=layout)
    (_, sess), = runner.open()
    cond = device_conditions(sess)
    cpu, cores = device_facts(sess)
    del sess
    lanes = (lanes_for(cond) if cond else cores) if lanes_asked == "auto" else int(lanes_asked)
    t0 = time.perf_counter()
    ks = prepare_kernels(model.mod, tvm.target.Target("llvm"), cpu,
                         {cores, max(1, cores // lanes)}, work=work, trials=trials,
                         model_hash=model.hash, runner=runner, lane_trials=lane_trials)
    return {"kernel_tuning": ks.describe(), "kernel_s": time.perf_counter() - t0,
            "lanes_for_kernels": lanes}


def _measure(name: str, size: str, trials: int, work: Path, runner, repeats: int,
             lanes: str, lane_trials: int | None, layout: str) -> dict:
    from tvm_sched.tune import TuneConfig, load_model, tune
    from tvm_sched.tune.anchors import ANCHORS
    from tvm_sched.tune.report import anchor_table

    for f in ("lane_records.jsonl", "lane_state.json"):
        (work / f).unlink(missing_ok=True)
    model = load_model(model=name, size=size, layout=layout)
    t0 = time.perf_counter()
    res = tune(model, "llvm", runner, work, TuneConfig(
        lanes=lanes, kernel_trials=trials, lane_kernel_trials=lane_trials,
        anchors=tuple(ANCHORS), repeats=repeats,
        min_repeat_ms=20.0))
    rows = {r["name"]: r for r in anchor_table(res)}
    vm = next(r for r in res.records if r.kind == "vm")
    best = res.best
    fastest = res.fastest
    out = {
        "nodes": model.num_nodes, "lanes": res.lanes,
        "threads_per_lane": res.info.get("threads_per_lane"), "cores": res.info.get("cores"),
        "kernels_tuned_now": sum(d["trials_now"] for d in
                                 res.info["kernel_tuning"]["databases"].values()),
        "vm_ms": vm.latency["median"] * 1e3 if vm.ok else None,
        "pick": best.candidate if best else None, "pick_kind": best.kind if best else None,
        "pick_ms": (best.latency["median"] * 1e3) if best and best.latency else None,
        "pick_speedup": res.speedup_stats,
        "fastest_lane_plan": fastest.candidate if fastest else None,
        "fastest_speedup": fastest.speedup if fastest and fastest.kind != "vm" else None,
        "spearman": res.spearman.get("predicted"), "tune_s": time.perf_counter() - t0,
        "anchors": {n: {"ms": rows[n]["median_ms"], "error": rows[n]["error"],
                        "pick_speedup": rows[n]["pick_speedup"]} for n in ANCHORS if n in rows},
    }
    return out


def _seeded(d: dict) -> str:
    return f" ({d['seeded']} of them the VM kernels' fastest schedules)" if d.get("seeded") else ""


def _md(meta: dict, rows: list[dict]) -> str:
    lines = ["# The fastest module: tuned kernels, lanes x threads, anchors", "",
             f"CPU: {meta['cpu']}; {meta['date']}; `{meta['command']}`", "",
             "All times are medians of the same interleaved rounds on the embedded server; "
             "'x' = how many times faster the pick ran than that row's module "
             "(ratio of the median per-round speed-ups over the tuned VM).", "",
             "| model | layout | nodes | lanes x threads | tuned VM ms | pick | pick ms | "
             "over VM [IQR] | PyTorch 1t | PyTorch all | ORT seq | ORT par | pick vs best ORT | "
             "load before / at measure |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(a: dict | None) -> str:
        if not a:
            return "-"
        if a["ms"] is None:
            return f"({(a['error'] or 'n/a')[:40]})"
        return f"{a['ms']:.2f} ({a['pick_speedup']:.2f}x)"

    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | error: {r['error']} |" + " |" * 12)
            continue
        a = r.get("anchors", {})
        sp = r.get("pick_speedup") or {}
        ort = [x for x in (a.get("onnxruntime"), a.get("onnxruntime-parallel"))
               if x and x.get("ms")]
        best_ort = min(ort, key=lambda x: x["ms"]) if ort else None
        vs = f"{best_ort['pick_speedup']:.2f}x" if best_ort else "-"
        lines.append(
            f"| {r['model']} | {r.get('layout', 'NCHW')} | {r.get('nodes')} | "
            f"{r.get('lanes')} x {r.get('threads_per_lane')}"
            f" | {r['vm_ms']:.2f} | {r['pick']} | {r['pick_ms']:.2f} | "
            f"{sp.get('median', 1):.3f} [{sp.get('q1', 1):.3f}, {sp.get('q3', 1):.3f}] | "
            f"{cell(a.get('pytorch-1t'))} | {cell(a.get('pytorch'))} | "
            f"{cell(a.get('onnxruntime'))} | {cell(a.get('onnxruntime-parallel'))} | {vs} | "
            f"{r.get('load_1min', 0):.2f} / {r.get('load_1min_measure', 0):.2f} |")
    lines += ["", "Kernel tuning per model (trials per thread count, seconds):", ""]
    for r in rows:
        kt = (r.get("kernel_tuning") or {}).get("databases", {})
        lines.append(f"- {r['model']}: " + "; ".join(
            f"{t} thread(s): {d['trials']} trials over {d['tasks']} kernels"
            f"{_seeded(d)}, "
            f"{d['seconds']:.0f} s this run, {d.get('seconds_total', d['seconds']):.0f} s in all"
            for t, d in kt.items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--size", default="bench")
    ap.add_argument("--kernel-trials", type=int, default=200, help="the VM's (all cores)")
    ap.add_argument("--lane-kernel-trials", type=int, default=None,
                    help="the lanes' thread count (default: --kernel-trials), seeded from the "
                         "VM's fastest schedules")
    ap.add_argument("--layout", default="auto", choices=["auto", "NCHW", "NHWC"],
                    help="the convolutions' layout (auto: the tuner's choice for the budget)")
    ap.add_argument("--stage", default="all", choices=["kernels", "measure", "all"])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--lanes", default="2", help="auto or M (the kernels stage tunes for it)")
    ap.add_argument("--work", default="tvm-sched-runs/bench-tuned")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    from profile_accuracy import run_meta

    from tvm_sched.tune.devices import create_devices
    from tvm_sched.tune.model import conv_layout

    meta = run_meta("tuned.py", args)
    out = Path(args.out)
    path = out / "tuned.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    rows = {r["model"]: r for r in old.get("rows", [])}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        work = Path(args.work) / f"{name}-{args.size}"
        work.mkdir(parents=True, exist_ok=True)
        row = dict(rows.get(name, {}), model=name, size=args.size)
        row["load_1min"] = os.getloadavg()[0]
        row["layout"] = layout = conv_layout(args.layout, args.kernel_trials)
        runner = create_devices("embedded")
        try:
            runner.prepare()
            if args.stage in ("kernels", "all"):
                row.update(_kernels(name, args.size, args.kernel_trials, work, runner,
                                    args.lanes, args.lane_kernel_trials, layout))
            if args.stage in ("measure", "all"):
                row.pop("error", None)
                row["load_1min_measure"] = os.getloadavg()[0]  # kernel tuning's own load
                row.update(_measure(name, args.size, args.kernel_trials, work, runner,
                                    args.repeats, args.lanes, args.lane_kernel_trials,
                                    layout))
        except Exception as err:  # noqa: BLE001 - one model's failure is its row
            traceback.print_exc()
            row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        finally:
            runner.close()
        rows[name] = row
        print(json.dumps({k: v for k, v in row.items() if k != "kernel_tuning"}), flush=True)
        out.mkdir(parents=True, exist_ok=True)
        doc = {"meta": meta, "rows": list(rows.values())}
        path.write_text(json.dumps(doc, indent=1))
        if args.stage != "kernels":
            (out / "tuned.md").write_text(_md(meta, [r for r in rows.values() if "vm_ms" in r
                                                     or r.get("error")]))


if __name__ == "__main__":
    main()
