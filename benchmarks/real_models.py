"""The real-model corpus end to end: extraction, the arena pipeline's bytes, lane tuning.

Per model of the torchvision corpus (:mod:`tvm_sched.zoo.vision`; ``--size bench`` by default)
and, with ``--zoo``, the zoo's own models:

- extraction: fused operators of ``main`` (``nodes``) and the most operators at one depth
  (``width``, a lower bound of how many can run at once);
- memory: bytes allocated by ``relax_pipeline="tvm_sched"`` against TVM's default pipeline on the
  same fused module (``bytes_ratio``), with the outputs of both compared (``outputs``);
- lanes: one fresh ``tune(..., TuneConfig(lanes="auto"))`` on the embedded RPC server (a new work
  dir each time, nothing resumed): the pick, its speed-up over the Relax VM (median of the
  per-round ratios of the interleaved rounds), the best measured lane plan's speed-up against its
  predicted speed-up (``measured / predicted``), the one-lane plan's predicted makespan against
  its measured latency, Spearman(predicted, measured) over the measured plans and how far their
  predicted makespans spread (largest / smallest - 1; issue 21 asks for Spearman >= 0.5 only where
  they spread by more than 5%), the wall time;
  every lane plan's outputs are checked against the VM's by the tuner before it is timed.

A model that fails in a stage gets the error in its row (one line) and the run goes on. The
1-minute load average is recorded before each model. Results go to
``<out>/real_models.{json,md}``::

    .venv/bin/python benchmarks/real_models.py                          # the corpus, bench size
    .venv/bin/python benchmarks/real_models.py --models googlenet,squeezenet1_1 --size small
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _level_width(graph) -> int:
    """The most operators at one depth (longest path from an input): a lower bound of the
    graph's width, the operators that could run at once."""
    import collections

    import networkx as nx

    g = graph.to_networkx()
    level: dict = {}
    for v in nx.topological_sort(g):
        level[v] = max((level[u] + 1 for u in g.predecessors(v)), default=0)
    return max(collections.Counter(level.values()).values())


def _memory(row: dict, name: str, size: str) -> None:
    import tvm_sched.relax as tsr
    from tvm_sched import zoo

    imported = zoo.load(name, size=size)
    mod = tsr.prepare(imported.mod)
    graph = tsr.extract_op_graphs(mod)[0]
    row.update(nodes=graph.num_nodes, width=_level_width(graph))
    default, ours = tsr.allocated_bytes(mod, "default"), tsr.allocated_bytes(mod, "tvm_sched")
    row.update(tvm_bytes=int(default), arena_bytes=int(ours), bytes_ratio=ours / default)
    a = tsr.run_module(mod, imported)
    b = tsr.run_module(mod, imported, relax_pipeline="tvm_sched")
    row["outputs"] = "same" if all(np.allclose(x, y, rtol=1e-5, atol=1e-5)
                                   for x, y in zip(a, b, strict=True)) else "DIFFER"


def _lanes(row: dict, name: str, size: str, args) -> None:
    from tvm_sched.tune import EmbeddedDevices, TuneConfig, load_model, tune

    t0 = time.perf_counter()
    model = load_model(model=name, size=size)
    cfg = TuneConfig(lanes="auto", samples=args.samples, top_k=args.top_k,
                     repeats=args.repeats, solver_budget=args.solver_budget)
    with tempfile.TemporaryDirectory(prefix="tvm_sched_real_") as work, \
            EmbeddedDevices() as runner:
        res = tune(model, "llvm", runner, work, cfg)
    row["tune_s"] = time.perf_counter() - t0
    sum_s = res.info["sum_durations_s"]
    lanes = [r for r in res.records if r.ok and r.kind == "lanes" and r.speedup]
    one = res.by_name("executor m=1")
    best = max((r for r in lanes if r.lane_facts.lanes > 1), key=lambda r: r.speedup["median"],
               default=None)
    row.update(lanes=res.lanes, pick=res.best.candidate if res.best else None,
               pick_speedup=res.speedup,
               errors=sum(1 for r in res.records if r.error),
               spearman=res.spearman.get("predicted"))
    # the Spearman's own set: measured lane plans with a prediction and an anchor in their rounds
    preds = [r.lane_facts.predicted for r in res.records if r.ok and r.kind == "lanes"
             and r.lane_facts.predicted and r.anchor_samples]
    if len(preds) > 1:
        row["predicted_spread"] = max(preds) / min(preds) - 1.0
    if one is not None and one.ok:
        row["one_lane_pred_over_measured"] = one.lane_facts.predicted / one.latency["median"]
        # the samples behind it (seconds per run, round by round, with the VM's beside them)
        row["one_lane_samples"] = list(one.samples)
        row["one_lane_vm_samples"] = list(one.anchor_samples)
    if best is not None:
        predicted = sum_s / best.lane_facts.predicted
        row.update(best_plan=best.candidate, best_speedup=best.speedup["median"],
                   best_predicted_speedup=predicted,
                   measured_over_predicted=best.speedup["median"] / predicted)


def run_model(name: str, args) -> dict:
    row: dict = {"model": name, "size": args.size, "load_before": os.getloadavg()[0]}
    for stage, fn in (("memory", lambda: _memory(row, name, args.size)),
                      ("lanes", lambda: _lanes(row, name, args.size, args))):
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - a failing model is a row, not the end
            row[f"{stage}_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            traceback.print_exc()
    return row


def _f(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def write(rows: list[dict], out: Path, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "real_models.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["# Real models: extraction, arena bytes, lanes", "",
             f"{meta['cpu']}; {meta['date']}; command: `{meta['command']}`", "",
             "| model | nodes | width | bytes vs TVM | outputs | lanes | pick | speed-up | best "
             "plan meas./pred. | 1-lane pred./meas. | Spearman | pred. spread | tune s | load | "
             "error |",
             "|---|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        err = r.get("memory_error") or r.get("lanes_error") or ""
        lines.append(
            f"| {r['model']} | {r.get('nodes', '-')} | {r.get('width', '-')} | "
            f"{_f(r.get('bytes_ratio'), '.3f')} | {r.get('outputs', '-')} | "
            f"{r.get('lanes', '-')} | {r.get('pick', '-')} | {_f(r.get('pick_speedup'), '.3f')} "
            f"| {_f(r.get('measured_over_predicted'), '.3f')} | "
            f"{_f(r.get('one_lane_pred_over_measured'), '.3f')} | "
            f"{_f(r.get('spearman'), '+.2f')} | {_f(r.get('predicted_spread'), '.1%')} | "
            f"{_f(r.get('tune_s'), '.0f')} | "
            f"{r['load_before']:.2f} | {err} |")
    (out / "real_models.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    from profile_accuracy import run_meta

    from tvm_sched import zoo

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=None, help="comma-separated (default: the corpus)")
    ap.add_argument("--zoo", action="store_true", help="the zoo's own models too")
    ap.add_argument("--size", default="bench")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--top-k", type=int, default=8,
                    help="plans measured per model (the tuner's own default)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--solver-budget", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    models = args.models.split(",") if args.models else zoo.corpus() + (
        zoo.names() if args.zoo else [])
    meta = run_meta("real_models.py", args)
    rows = []
    for name in models:
        rows.append(run_model(name, args))
        print(json.dumps(rows[-1]), flush=True)
        write(rows, args.out, meta)


if __name__ == "__main__":
    main()
