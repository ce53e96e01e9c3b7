"""Do the kernel durations the lane tuner measures predict the one-lane plan's latency?

For every zoo model (``--size bench`` by default), on the CPU with TVM's default kernels and
through an embedded tvm_sched RPC server on 127.0.0.1 (the tuner's own path):

- ``profile``: :meth:`tvm_sched.tune.lane_runner.LaneRunner.profile` -- the one-lane plan run on
  the model's inputs, then one kernel at a time (``lane_step``), ``--profile-repeat`` times;
  ``pred_ms`` is the one-lane makespan on those durations (their sum over the steps);
- ``lane1_ms``: the one-lane plan measured as the tuner measures it (``lane_time``: back-to-back
  runs of the engine), median of ``--repeat`` samples of ``number`` runs, interleaved with
  ``vm_ms`` (the Relax VM on the same kernels);
- ``ratio`` = pred_ms / lane1_ms (issue 21's target: within 10%, i.e. 0.90-1.10).

The 1-minute load average is recorded before each model. Results go to
``<out>/profile_accuracy.{json,md}``::

    .venv/bin/python benchmarks/profile_accuracy.py                     # every zoo model
    .venv/bin/python benchmarks/profile_accuracy.py --models darts,hrnet --repeat 7
    .venv/bin/python benchmarks/profile_accuracy.py --size small --repeat 3   # smoke run
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _cpu() -> str:
    try:
        import tvm

        llvm = tvm.target.codegen.llvm_get_system_cpu()
    except Exception:  # noqa: BLE001 - only a label
        llvm = "?"
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} (LLVM cpu {llvm}), {os.cpu_count()} cores"


def run_meta(script: str, args: argparse.Namespace) -> dict:
    """The header every result file of these benchmarks carries: CPU, date and the command
    (every option but ``--out``, unset ones left out)."""
    return {"cpu": _cpu(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": f"benchmarks/{script} " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                if k != "out" and v not in (None, False))}


def measure_model(name: str, size: str, server, *, repeat: int, profile_repeat: int) -> dict:
    """One row: profile on the device, predicted one-lane makespan, measured latencies."""
    from tvm import rpc

    from tvm_sched.runtime.builder import LaneKernels
    from tvm_sched.tune import load_model
    from tvm_sched.tune.lane_runner import LaneRunner
    from tvm_sched.tune.lanes import LaneBuilder
    from tvm_sched.tune.objective import LaneCandidate

    load = os.getloadavg()[0]
    model = load_model(model=name, size=size)
    t0 = time.perf_counter()
    k = LaneKernels(model.mod, "llvm", params=model.params)
    compile_s = time.perf_counter() - t0
    n = k.graph.num_nodes
    with tempfile.TemporaryDirectory(prefix="tvm_sched_profile_acc_") as tmp:
        builder = LaneBuilder(k, Path(tmp))
        m1 = LaneCandidate("executor m=1", "baseline", "lanes", 1, tuple(range(n)), (0,) * n)
        path = builder.export(m1, Path(tmp) / "one.tar")
        dev = LaneRunner(name, rpc.connect(*server.address), builder, model.inputs,
                         timeout=600.0)
        try:
            t0 = time.perf_counter()
            times = dev.profile(path, builder.plan(m1), repeat=profile_repeat)
            profile_s = time.perf_counter() - t0
            k.profile(times)
            pred = k.predicted_makespan(builder.schedule(m1))
            dev.reference = dev.vm_outputs()
            lane = dev.upload(path)
            bad = dev._check(dev.lane_outputs(lane, len(dev.reference)))  # noqa: SLF001
            first = dev.vm_time(1)
            number = max(1, round(0.05 / max(first, 1e-6)))
            dev.lane_time(lane, number)
            vm, one = [], []
            for _ in range(repeat):  # interleaved: VM, one lane, VM, one lane, ...
                vm.append(dev.vm_time(number))
                one.append(dev.lane_time(lane, number))
        finally:
            dev.close()
    lane1 = statistics.median(one)
    return {"model": name, "size": size, "nodes": n, "kernels": len(times),
            "pred_ms": pred * 1e3, "lane1_ms": lane1 * 1e3,
            "vm_ms": statistics.median(vm) * 1e3, "ratio": pred / lane1,
            "within_10pct": abs(pred / lane1 - 1.0) <= 0.10, "ok": bad is None,
            "profile_s": profile_s, "compile_s": compile_s, "load_before": load}


def write(rows: list[dict], out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile_accuracy.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                          indent=1))
    lines = ["# One-lane plan: predicted (profiled kernel durations) vs measured", "",
             f"{meta['cpu']}; {meta['date']}; command: `{meta['command']}`", "",
             "| model | size | nodes | pred ms | one lane ms | VM ms | pred / measured | "
             "within 10% | outputs | profile s | load |", "|---|---|---:|---:|---:|---:|---:|"
             "---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['size']} | {r['nodes']} | {r['pred_ms']:.2f} | "
                     f"{r['lane1_ms']:.2f} | {r['vm_ms']:.2f} | {r['ratio']:.3f} | "
                     f"{'yes' if r['within_10pct'] else 'no'} | "
                     f"{'same' if r['ok'] else 'DIFFER'} | {r['profile_s']:.1f} | "
                     f"{r['load_before']:.2f} |")
    (out / "profile_accuracy.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    from tvm_sched.tune.server import EmbeddedServer
    from tvm_sched.zoo import names

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(names()))
    ap.add_argument("--size", default="bench")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--profile-repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    meta = run_meta("profile_accuracy.py", args)
    rows = []
    with EmbeddedServer(lifetime=7200) as server:
        for name in args.models.split(","):
            row = measure_model(name, args.size, server, repeat=args.repeat,
                                profile_repeat=args.profile_repeat)
            rows.append(row)
            print(json.dumps(row), flush=True)
            write(rows, args.out, meta)


if __name__ == "__main__":
    main()
