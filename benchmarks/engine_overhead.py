"""Per-kernel overhead of the lane engines: many steps of an (almost) empty TVM kernel.

    .venv/bin/python benchmarks/engine_overhead.py --steps 20000 --repeat 15

The kernel is ``c[i] = a[i] + b[i]`` on ``--elements`` float32 (default 1: an empty kernel; the
time per step is then the engine's per-kernel cost plus the FFI call). Scenarios, each a chain
of ``--steps`` calls of that kernel:

- ``python loop``: ``for f, args in steps: f(*args)`` (the baseline: calling kernels from Python);
- ``1 lane``: the whole chain on one lane;
- ``2 lanes, independent``: half the steps on each lane, no waits (time per step of the run);
- ``2 lanes, ping-pong``: steps alternate lanes and each waits for the previous one, so every
  step is a cross-lane hand-off (the worst case for waits);
- ``run() of 1 step per lane``: the fixed cost of one ``run()`` (waking the lanes and waiting
  for them), per run.

for the native engine (``spin_us`` default, and ping-pong with ``spin_us=0``: futex only) and the
Python engine (on ``--python-steps`` steps: its waits cost tens of µs). Repeats are interleaved
(round-robin over scenarios); the tables give medians, minima and maxima of the time per step.
Writes ``engine_overhead.json`` and ``engine_overhead.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _kernel(elements: int):
    import tvm
    from tvm import te

    a = te.placeholder((elements,), "float32", name="a")
    b = te.placeholder((elements,), "float32", name="b")
    c = te.compute((elements,), lambda i: a[i] + b[i], name="c")
    func = te.create_prim_func([a, b, c]).with_attr("global_symbol", "add")
    return tvm.compile(tvm.IRModule({"add": func}), target="llvm")["add"]


def _plans(steps: int):
    """name -> (lanes, waits) over `steps` steps."""
    one = ([list(range(steps))], [[] for _ in range(steps)])
    independent = ([list(range(0, steps, 2)), list(range(1, steps, 2))],
                   [[] for _ in range(steps)])
    pingpong = ([list(range(0, steps, 2)), list(range(1, steps, 2))],
                [[]] + [[s - 1] for s in range(1, steps)])
    return {"1 lane": one, "2 lanes, independent": independent, "2 lanes, ping-pong": pingpong}


def _time(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--python-steps", type=int, default=2000)
    p.add_argument("--elements", type=int, default=1)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)

    import tvm

    from tvm_sched.runtime import native_engine as native
    from tvm_sched.runtime.engine_python import PythonEngine

    load_before = os.getloadavg()
    add = _kernel(args.elements)
    dev = tvm.cpu()
    x = tvm.runtime.tensor(np.ones(args.elements, "float32"), dev)
    z = tvm.runtime.empty((args.elements,), "float32", dev)
    kernel_args = [x, x, z]

    # name -> (steps in the scenario, callable running it once, closer)
    scenarios: dict[str, tuple[int, Callable[[], None], Callable[[], None]]] = {}
    calls = [(add, kernel_args)] * args.steps

    def python_loop():
        for f, a in calls:
            f(*a)

    scenarios["python loop"] = (args.steps, python_loop, lambda: None)

    if native.available():
        for name, (lanes, waits) in _plans(args.steps).items():
            e = native.NativeEngine([add], [(0, kernel_args)] * args.steps, lanes, waits,
                                    allow_oversubscribe=True)
            scenarios[f"native: {name}"] = (args.steps, e.run, e.close)
        lanes, waits = _plans(args.steps)["2 lanes, ping-pong"]
        e = native.NativeEngine([add], [(0, kernel_args)] * args.steps, lanes, waits,
                                allow_oversubscribe=True, spin_us=0)
        scenarios["native: 2 lanes, ping-pong, spin_us=0"] = (args.steps, e.run, e.close)
        for k in (1, 2):
            e = native.NativeEngine([add], [(0, kernel_args)] * k, [[i] for i in range(k)],
                                    [[]] * k, allow_oversubscribe=True)
            scenarios[f"native: run() of 1 step per lane, {k} lane(s)"] = (1, e.run, e.close)
    else:
        print(f"native engine unavailable: {native.unavailable_reason()}", file=sys.stderr)
    for name, (lanes, waits) in _plans(args.python_steps).items():
        e = PythonEngine([add], [(0, kernel_args)] * args.python_steps, lanes, waits,
                         allow_oversubscribe=True)
        scenarios[f"python engine: {name}"] = (args.python_steps, e.run, e.close)
    for k in (1, 2):
        e = PythonEngine([add], [(0, kernel_args)] * k, [[i] for i in range(k)], [[]] * k,
                         allow_oversubscribe=True)
        scenarios[f"python engine: run() of 1 step per lane, {k} lane(s)"] = (1, e.run, e.close)

    for _steps, fn, _close in scenarios.values():  # warm up
        fn()
    samples: dict[str, list[float]] = {name: [] for name in scenarios}
    for _ in range(args.repeat):
        for name, (steps, fn, _close) in scenarios.items():
            if steps == 1:  # a single run() is too short to time alone: time 200 of them
                samples[name].append(_time(lambda fn=fn: [fn() for _ in range(200)]) / 200)
            else:
                samples[name].append(_time(fn) / steps)
    for _steps, _fn, close in scenarios.values():
        close()
    load_after = os.getloadavg()

    rows = []
    for name, values in samples.items():
        us = [v * 1e6 for v in values]
        rows.append({"scenario": name, "steps": scenarios[name][0],
                     "median_us": statistics.median(us), "min_us": min(us), "max_us": max(us)})
    meta = {
        "command": " ".join(["engine_overhead.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "steps": args.steps, "python_steps": args.python_steps, "elements": args.elements,
        "repeat": args.repeat, "native_available": native.available(),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, "
                   f"{len(os.sched_getaffinity(0))} usable",
        "load_average_before": list(load_before), "load_average_after": list(load_after),
        "tvm": tvm.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "engine_overhead.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        "# Lane engine per-kernel overhead",
        "",
        f"`{meta['command']}` — {meta['machine']}; TVM {meta['tvm']}; {meta['date']}.",
        f"Load average (1/5/15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; "
        f"after: {', '.join(f'{v:.2f}' for v in load_after)}.",
        "",
        f"Kernel: `c = a + b` on {args.elements} float32 (an empty kernel); time per step "
        "(per run for the `run()` rows), µs, over "
        f"{args.repeat} interleaved repeats.",
        "",
        "| scenario | steps | median µs | min µs | max µs |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['steps']} | {r['median_us']:.3f} | "
                     f"{r['min_us']:.3f} | {r['max_us']:.3f} |")
    (args.out / "engine_overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
