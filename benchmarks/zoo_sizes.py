"""The zoo at both sizes: fused operators, build time, Relax VM latency and graph width.

For every zoo model and size (``small``, ``bench``), on the CPU with TVM's default (untuned,
single-threaded) kernels:

- ``ops``: operators (nodes) of ``main``'s dataflow block after ``tvm_sched.relax.frontend``'s
  import and ``prepare`` (weight work lifted, fused); ``kernels``: distinct TIR kernels it calls;
- ``import_s``: torch.export + Relax import + prepare; ``build_s``: ``tvm.compile(mod, "llvm")``
  (``build_cpu_s``: the process's CPU time for it);
- ``vm_ms``: median latency of ``main`` on the Relax VM (``--repeat`` timings of at least
  ``--number`` calls and 20 ms each, after a warm-up; weights pre-transformed by
  ``main_transform_params``); ``vm_cpu_ms``: the median process CPU time per call. With one
  thread the CPU time is what the call costs on a core of its own: on a shared, loaded machine
  the wall time also counts the time other processes held the core;
- ``max_err``: largest absolute difference of the VM's outputs from torch's (same weights);
- ``torch_ms`` / ``torch_cpu_ms``: PyTorch eager at one thread on the same model, for context;
- ``speedup2``: the graph's width -- Σ durations / makespan of critical-path list scheduling on
  2 lanes (``tvm_sched.solvers.solve(g, "makespan", solver="list", lanes=2)``) on the extracted
  OpGraph whose durations are the kernels' measured times
  (``tvm_sched.relax.profile.profile_kernels`` + ``extract(kernel_times=...)``), with
  ``kernel_sum_ms`` = Σ durations and ``critical_ms`` the longest path (the bound on any number
  of lanes: ``kernel_sum_ms / critical_ms``). The profiler's kernel times are wall times, so on
  a loaded machine they carry preemptions; ``speedup2_cpu`` (and ``kernel_sum_cpu_ms``) is the
  same figure on each kernel's median thread CPU time, taken through the same VM hook.

Threads are pinned to one (``OMP_NUM_THREADS=TVM_NUM_THREADS=1``, ``torch.set_num_threads(1)``)
and the 1-minute load average is recorded before and after each model (the machine may be
shared). Results are merged by (model, size) into ``<out>/<name>.json`` and the markdown table
is rewritten from all rows, so a partial run updates only its rows::

    .venv/bin/python benchmarks/zoo_sizes.py                       # every model, both sizes
    .venv/bin/python benchmarks/zoo_sizes.py --models darts --sizes bench
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["TVM_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import tvm  # noqa: E402
from tvm import relax  # noqa: E402

from tvm_sched import zoo  # noqa: E402
from tvm_sched.relax.extract import extract  # noqa: E402
from tvm_sched.relax.frontend import flatten_values, prepare  # noqa: E402
from tvm_sched.relax.profile import profile_kernels  # noqa: E402
from tvm_sched.solvers import solve  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _kernels(mod: tvm.IRModule, ops) -> int:
    prim = {gv.name_hint for gv, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc)}
    return len(set(ops) & prim)


def _timed(call, number: int, repeat: int) -> tuple[float, float]:
    """Median wall and process-CPU milliseconds per call: ``repeat`` timings of ``number`` calls
    (at least ~20 ms each) after a warm-up."""
    call()
    t = time.perf_counter()
    call()
    number = max(number, int(0.02 / (time.perf_counter() - t)))
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(number):
            call()
        cpu.append((time.process_time() - c) / number)
        wall.append((time.perf_counter() - t) / number)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def _vm(mod, imported, number: int, repeat: int) -> dict:
    t, c = time.perf_counter(), time.process_time()
    ex = tvm.compile(mod, "llvm")
    build_s, build_cpu_s = time.perf_counter() - t, time.process_time() - c
    dev = tvm.cpu()
    vm = relax.VirtualMachine(ex, dev)
    params = [tvm.runtime.tensor(p, dev) for p in imported.params]
    params = list(flatten_values(vm["main_transform_params"](params)))
    inputs = [tvm.runtime.tensor(x, dev) for x in imported.inputs]
    outs = [o.numpy() for o in flatten_values(vm["main"](*inputs, *params))]
    err = max(float(np.max(np.abs(o - r))) for o, r in zip(outs, imported.reference, strict=True))
    vm_ms, vm_cpu_ms = _timed(lambda: vm["main"](*inputs, *params), number, repeat)
    row = {"build_s": round(build_s, 2), "build_cpu_s": round(build_cpu_s, 2),
           "vm_ms": round(vm_ms, 3), "vm_cpu_ms": round(vm_cpu_ms, 3), "max_err": err}
    return row, _kernel_cpu_times(mod, vm, inputs + params, repeat)


def _kernel_cpu_times(mod, vm, args, repeat: int) -> dict[str, float]:
    """Median thread CPU seconds per kernel (VM instrument hook, as ``profile_kernels`` does
    with wall time): robust to other processes sharing the core."""
    kernels = {gv.name_hint for gv, f in mod.functions.items()
               if isinstance(f, tvm.tirx.PrimFunc)}
    samples: dict[str, list[float]] = {}
    started: dict[str, float] = {}

    def instrument(fn, symbol, before_run, ret, *call_args):
        name = str(symbol)
        if name in kernels:
            if before_run:
                started[name] = time.thread_time()
            else:
                samples.setdefault(name, []).append(time.thread_time() - started.pop(name))
        return 0  # go on

    vm.set_instrument(instrument)
    for _ in range(repeat):
        vm["main"](*args)
    return {k: statistics.median(v) for k, v in samples.items()}


def _width(mod, kernel_times: dict[str, float]) -> tuple[float, float, float]:
    """(Σ durations, 2-lane list makespan, critical path) in seconds."""
    g = extract(mod, kernel_times=kernel_times)[0]
    makespan = solve(g, "makespan", solver="list", lanes=2).value
    return g.total_duration, makespan, g.critical_path_length


def _torch(name: str, size: str, number: int, repeat: int) -> dict:
    model, args = zoo.torch_model(name, size=size)
    with torch.no_grad():
        wall, cpu = _timed(lambda: model(*args), number, repeat)
    return {"torch_ms": round(wall, 3), "torch_cpu_ms": round(cpu, 3)}


def measure(name: str, size: str, *, number: int = 1, repeat: int = 5) -> dict:
    """One row of the table (see the module docstring)."""
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    imported = zoo.load(name, size=size)
    mod = prepare(imported.mod)
    import_s = time.perf_counter() - t0
    graph = extract(mod)[0]
    vm, cpu_times = _vm(mod, imported, number, repeat)
    total, makespan, critical = _width(mod, profile_kernels(mod, repeat=repeat))
    total_cpu, makespan_cpu, _ = _width(mod, cpu_times)
    return {
        "model": name, "size": size, "ops": graph.num_nodes,
        "kernels": _kernels(mod, graph.ops), "import_s": round(import_s, 2), **vm,
        **_torch(name, size, number, repeat),
        "kernel_sum_ms": round(1e3 * total, 3), "critical_ms": round(1e3 * critical, 3),
        "makespan2_ms": round(1e3 * makespan, 3), "speedup2": round(total / makespan, 3),
        "width": round(total / critical, 3), "kernel_sum_cpu_ms": round(1e3 * total_cpu, 3),
        "speedup2_cpu": round(total_cpu / makespan_cpu, 3),
        "load_before": load_before, "load_after": os.getloadavg()[0],
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(rows: list[dict], meta: dict) -> str:
    head = ("| model | size | ops | kernels | import s | build s (CPU) | Relax VM ms (CPU) | "
            "torch 1T ms (CPU) | Σ kernels ms (CPU) | 2-lane list speed-up (CPU) | "
            "Σ / critical path | max err | load |")
    lines = [
        "# The zoo at both sizes", "",
        f"Machine: {meta['machine']}; TVM {meta['tvm']}, torch {meta['torch']}; one thread "
        "(OMP_NUM_THREADS=TVM_NUM_THREADS=1); TVM's default (untuned) llvm kernels. Relax VM and "
        "torch: median wall time per call over timed runs after a warm-up, and in brackets the "
        "median process CPU time per call (the cost on a core of one's own). Speed-up: Σ "
        "measured kernel durations / makespan of list scheduling on 2 lanes (a prediction; "
        "nothing here runs lanes), on the profiler's wall times (in brackets: on kernels' "
        "thread CPU times). Load: 1-minute load average before/after the row (the "
        "machine is shared).", "",
        head, "|" + "---|" * (head.count("|") - 1),
    ]
    order = {n: i for i, n in enumerate(zoo.names())}
    for r in sorted(rows, key=lambda r: (zoo.SIZES.index(r["size"]), order.get(r["model"], 99))):
        lines.append(
            f"| {r['model']} | {r['size']} | {r['ops']} | {r['kernels']} | {r['import_s']:.1f} | "
            f"{r['build_s']:.1f} ({r['build_cpu_s']:.1f}) | "
            f"{r['vm_ms']:.2f} ({r['vm_cpu_ms']:.2f}) | "
            f"{r['torch_ms']:.2f} ({r['torch_cpu_ms']:.2f}) | "
            f"{r['kernel_sum_ms']:.2f} ({r['kernel_sum_cpu_ms']:.2f}) | "
            f"{r['speedup2']:.2f}x ({r['speedup2_cpu']:.2f}x) | {r['width']:.2f}x | "
            f"{r['max_err']:.1e} | {r['load_before']:.1f}/{r['load_after']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=zoo.names(), choices=zoo.names())
    p.add_argument("--sizes", nargs="*", default=list(zoo.SIZES), choices=zoo.SIZES)
    p.add_argument("--number", type=int, default=1, help="calls per timing")
    p.add_argument("--repeat", type=int, default=7, help="timings (median kept)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--name", default="zoo_sizes")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    meta = {"machine": f"{_cpu_name()}, {os.cpu_count()} cores",
            "tvm": tvm.__version__, "torch": torch.__version__}
    for size in args.sizes:
        for name in args.models:
            row = measure(name, size, number=args.number, repeat=args.repeat)
            print(json.dumps(row), flush=True)
            rows = [r for r in rows if (r["model"], r["size"]) != (name, size)] + [row]
            path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
            (args.out / f"{args.name}.md").write_text(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
