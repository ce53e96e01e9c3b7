"""Operator graphs of the zoo's models, with kernel durations measured on this CPU, as JSON files.

The GFlowNet's training code is handed its graphs (it imports no TVM); this script assembles
them: for every zoo model at the chosen size it imports and prepares the model
(``tvm_sched.relax.frontend.prepare``), times every kernel on the local CPU
(``tvm_sched.relax.profile_kernels``, one thread) and writes the main dataflow block's
``OpGraph`` with those durations (seconds) to ``<out>/<model>-<size>.json``::

    .venv/bin/python benchmarks/zoo_graphs.py --size bench --out /tmp/zoo_graphs
    .venv/bin/python -m tvm_sched.solvers.gflownet.train --graphs /tmp/zoo_graphs/*.json \\
        --graphs-frac 0.15 ...

``--static`` skips the timing (durations from the extractor's static estimate). The set measured
for the shipped checkpoint study is in ``benchmarks/data/zoo_graphs`` (its README says how).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TVM_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

from tvm_sched import zoo  # noqa: E402
from tvm_sched.datasets.io import save_json  # noqa: E402
from tvm_sched.relax import extract_op_graphs, prepare, profile_kernels  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="bench", choices=list(zoo.SIZES))
    p.add_argument("--models", nargs="+", default=None, help="default: every zoo model")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--static", action="store_true", help="do not time the kernels")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.models or zoo.names():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = prepare(zoo.load(name, size=args.size).mod)
            times = None if args.static else profile_kernels(mod, repeat=args.repeat)
            g = extract_op_graphs(mod, kernel_times=times)[0]
        g = g.replace(meta=dict(g.meta, name=f"{name}-{args.size}",
                                durations="static" if args.static else "measured, this CPU"))
        path = save_json(g, args.out / f"{name}-{args.size}.json")
        print(f"{name}: {g.num_nodes} nodes, {g.num_edges} edges, sum {g.total_duration:.4g}, "
              f"{time.perf_counter() - t0:.1f} s -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
