"""Planned memory of every ordering method on the zoo, the arena, and the speed of the pass.

For each zoo model (``prepare``-d: weight work lifted, fused) and its main dataflow block, one
row per method with the bytes TVM's ``StaticPlanBlockMemory`` allocates for the rewritten module
(``tvm_sched.relax.memory.planned_bytes``) and the ratio to the module's own order:

- ``tvm``: the order after the fusion prefix (the baseline);
- TVM's ``TopologicalSort`` pass, four ways (depth/breadth-first, from inputs/outputs);
- every registered solver: on ``arena_memory`` (the arena planner) when it handles it, then
  ``planned_memory`` (the planner replica), otherwise ``peak_memory`` (liveness) -- the row says
  which;
- the best (and worst) of ``--random`` uniformly random topological orders by the replica;
- CP-SAT on ``peak_memory`` with ``--cpsat-budget`` seconds: its liveness value, the proven
  lower bound and status, and what TVM plans for its order;
- the ``ScheduleOperators`` pass with its defaults: planned bytes after it and its wall time
  (median of ``--repeat`` runs after one warm-up, on the already fused module).

Every row also has ``arena``: the bytes the ``tvm_sched`` lowering allocates for that order
(TVM's default pipeline with ``PlanArena`` after its planner: one arena with offsets; summed
``alloc_storage`` sizes of the lowered module, ``tvm_sched.relax.allocated_bytes``), next to
``default``, what TVM's default pipeline allocates for the same order (the planned bytes plus a
few bytes of storage outside the block, the same for every order), and the arena's lower bound
(the liveness peak of the arena tensors in that order, 64-byte aligned). The pass row runs the
whole ``tvm_sched`` pipeline (``ScheduleOperators`` defaults, then ``PlanArena``), and its
outputs are compared bit for bit with TVM's default pipeline on the model's inputs.

Every row is also scored by the replica (``tvm_sched.cost.planned_memory`` plus whatever the
module plans outside the block, 0 for the zoo) and any disagreement with TVM is reported.

A second part times the pass on ~200-operator blocks: the zoo's Transformer and NASNet built with
``--large-depth`` layers / cells (8 gives 205 and 203 operators).

    OMP_NUM_THREADS=1 TVM_NUM_THREADS=1 .venv/bin/python benchmarks/memory.py
    .venv/bin/python benchmarks/memory.py --quick --out /tmp/memory   # smoke run, < 1 min

Writes ``<name>.json`` and ``<name>.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tvm import relax

from tvm_sched import zoo
from tvm_sched.cost import peak_memory, planned_memory, planned_memory_batch
from tvm_sched.cost.planned_memory import planned_memory_lower_bound as planned_lb
from tvm_sched.errors import SolverUnavailableError
from tvm_sched.graph import priority_orders_batch
from tvm_sched.relax.arena import PlanArena, allocated_bytes, arena_pipeline
from tvm_sched.relax.extract import extract
from tvm_sched.relax.frontend import from_torch, prepare, run_module
from tvm_sched.relax.memory import planned_bytes
from tvm_sched.relax.passes import ScheduleOperators
from tvm_sched.relax.reorder import apply
from tvm_sched.solvers import get_solver, solver_class, solver_names
from tvm_sched.zoo import irregular

TOPO_SORTS = [(o, d) for o in ("depth-first", "breadth-first")
              for d in ("from-inputs", "from-outputs")]


class Block:
    """A prepared model, its main block's graph and the TVM-order baseline."""

    def __init__(self, name: str, mod):
        self.name = name
        self.mod = mod
        graphs = extract(mod)
        self.num_blocks = len(graphs)
        self.graph = graphs[0]
        self.n = self.graph.num_nodes
        self.base = planned_bytes(mod)
        # bytes planned outside the block (other blocks / functions): 0 for the zoo
        self.rest = self.base - planned_memory(self.graph, np.arange(self.n))

    def row(self, method: str, objective: str, order, module=None, seconds=None, **extra):
        """Score ``order`` (or ``module``, already rewritten) with TVM and with the replica."""
        if module is None:
            module = apply(self.mod, [(self.graph, order)])
        planned = planned_bytes(module)
        arena, lower = arena_bytes(module)
        replica = None if order is None else planned_memory(self.graph, order) + self.rest
        r = {"method": method, "objective": objective, "planned": planned,
             "ratio": planned / self.base, "replica": replica,
             "match": replica is None or replica == planned,
             "liveness": None if order is None else int(peak_memory(self.graph,
                                                                    np.asarray(order))),
             "seconds": seconds, "arena": arena, "arena_lower_bound": lower,
             "default": allocated_bytes(module, "default"), **extra}
        print(f"  {method:<28} {objective:<15} {planned:>9} ({r['ratio']:.3f}) arena {arena:>9}"
              f" (lb {lower}){'' if r['match'] else f'  REPLICA {replica}'}", flush=True)
        return r

    def node_order(self, sorted_mod) -> list[int] | None:
        """The block's node order in ``sorted_mod`` (same binding variables), if it maps."""
        g = self.graph
        block = self.mod[g.meta["func"]].body.blocks[g.meta["block"]]
        node_of = {block.bindings[p].var: v for v, p in enumerate(g.meta["positions"])}
        new = sorted_mod[g.meta["func"]].body.blocks[g.meta["block"]]
        order = [node_of[b.var] for b in new.bindings if b.var in node_of]
        return order if sorted(order) == list(range(self.n)) else None


def arena_bytes(module) -> tuple[int, int]:
    """(bytes the arena lowering allocates, the arena's lower bound) for ``module``."""
    pa = PlanArena()
    allocated = allocated_bytes(module, arena_pipeline(pa))
    main = next(r for r in pa.report if r.func == "main")
    return allocated, main.lower_bound + allocated - (main.arena_bytes if main.rewritten
                                                      else main.tvm_bytes)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def time_pass(mod, repeat: int):
    """Run ``ScheduleOperators(arena=True)`` (the pipeline's setting) once cold, then ``repeat``
    times; (module, pass, times)."""
    _, cold = _timed(lambda: ScheduleOperators(arena=True)(mod))
    times = []
    for _ in range(repeat):
        p = ScheduleOperators(arena=True)
        out, t = _timed(lambda p=p: p(mod))
        times.append(t)
    return out, p, cold, times


def run_model(name: str, args) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imported, import_s = _timed(lambda: zoo.load(name, seed=args.seed))
        mod, prepare_s = _timed(lambda: prepare(imported.mod))
    b = Block(name, mod)
    g, n = b.graph, b.n
    print(f"{name}: {n} nodes, {b.num_blocks} block(s), TVM order {b.base} B", flush=True)
    rows = [b.row("tvm", "-", np.arange(n))]

    for order, direction in TOPO_SORTS:
        out, t = _timed(lambda o=order, d=direction: relax.transform.TopologicalSort(
            order=o, direction=d)(mod))
        rows.append(b.row(f"TopologicalSort {order} {direction}", "-", b.node_order(out),
                          module=out, seconds=t))

    for solver in solver_names():
        if solver == "cpsat":
            continue
        try:
            handles = solver_class(solver).objectives
        except SolverUnavailableError as err:
            rows.append({"method": solver, "objective": "-", "skipped": str(err)})
            continue
        objective = next((o for o in ("arena_memory", "planned_memory", "peak_memory")
                          if o in handles), None)
        if objective is None:
            continue
        res = get_solver(solver).solve(g, objective, budget=args.budget, seed=args.seed)
        rows.append(b.row(solver, objective, res.best.order, seconds=res.seconds,
                          value=res.value, status=str(res.status)))

    rng = np.random.default_rng(args.seed)
    t1 = time.perf_counter()
    orders = priority_orders_batch(g, rng.random((args.random, n)))
    vals = planned_memory_batch(g, orders)
    t = time.perf_counter() - t1
    lo, hi = int(np.argmin(vals)), int(np.argmax(vals))
    sample = {"orders": args.random, "distinct_planned": len(set(vals.tolist())),
              "min": int(vals.min()) + b.rest, "median": float(np.median(vals)) + b.rest,
              "max": int(vals.max()) + b.rest, "seconds": t}
    rows.append(b.row(f"random x{args.random} (best)", "planned_memory", orders[lo], seconds=t))
    rows.append(b.row(f"random x{args.random} (worst)", "planned_memory", orders[hi]))

    cp = get_solver("cpsat", num_workers=args.cpsat_workers).solve(
        g, "peak_memory", budget=args.cpsat_budget, seed=args.seed)
    cpsat = {"liveness": cp.value, "bound": cp.bound, "status": str(cp.status),
             "proven": cp.proven, "cp_status": cp.info.get("cp_status"),
             "fallback": cp.info.get("fallback"), "seconds": cp.seconds}
    rows.append(b.row("cpsat", "peak_memory", cp.best.order, seconds=cp.seconds,
                      **{k: v for k, v in cpsat.items() if k != "seconds"}))

    out, p, cold, times = time_pass(mod, args.repeat)
    rep = p.report[0]
    rows.append(b.row("ScheduleOperators (defaults)", "planned_memory", b.node_order(out),
                      module=out, seconds=statistics.median(times), chosen=rep["chosen"]))
    # the pass's own replica number must agree too
    rows[-1]["match"] &= rep["planned_after"] + b.rest == rows[-1]["planned"]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = run_module(mod, imported)
        ours = run_module(mod, imported, relax_pipeline="tvm_sched")
    bit_equal = all(np.array_equal(a, b) for a, b in zip(reference, ours, strict=True))
    pipeline_bytes = allocated_bytes(mod, "tvm_sched")
    scored = [r for r in rows if "planned" in r]
    best_arena = min(scored, key=lambda r: r["arena"])
    best = min(scored, key=lambda r: r["planned"])
    ties = sum(r["planned"] == best["planned"] for r in scored) - 1
    return {
        "model": name, "nodes": n, "edges": g.num_edges, "blocks": b.num_blocks,
        "bytes_outside_block": b.rest, "import_s": import_s, "prepare_s": prepare_s,
        "tvm_planned": b.base, "tvm_liveness": int(peak_memory(g, np.arange(n))),
        "planned_lower_bound": planned_lb(g) + b.rest,
        "best": {"method": best["method"], "planned": best["planned"], "ties": ties},
        "arena": {"tvm_default": rows[0]["default"], "tvm_order": rows[0]["arena"],
                  "tvm_order_lower_bound": rows[0]["arena_lower_bound"],
                  "pipeline": pipeline_bytes, "pipeline_bit_equal": bit_equal,
                  "pass_lower_bound": rows[-1]["arena_lower_bound"],
                  "best": best_arena["arena"], "best_method": best_arena["method"],
                  "liveness_optimum": cpsat["liveness"], "liveness_proven": cpsat["proven"]},
        "random": sample, "cpsat": cpsat,
        "pass": {"planned": rows[-1]["planned"], "chosen": rep["chosen"], "cold_s": cold,
                 "median_s": statistics.median(times), "min_s": min(times),
                 "max_s": max(times), "candidates": rep["candidates"]},
        "mismatches": [r["method"] for r in scored if not r["match"]],
        "rows": rows,
    }


def large_model(kind: str, depth: int, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "transformer":
            return irregular.Transformer(layers=depth), (torch.randint(0, 64, (1, 16)),)
        return irregular.NASNet(cells=depth), (torch.randn(1, 3, 32, 32),)


def run_large(args) -> list[dict]:
    out = []
    for kind in args.large:
        label = f"{kind} ({'layers' if kind == 'transformer' else 'cells'}={args.large_depth})"
        model, inputs = large_model(kind, args.large_depth, args.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            imported = from_torch(model, inputs, name=kind)
            t1 = time.perf_counter()
            mod = prepare(imported.mod)
            import_s, prepare_s = t1 - t0, time.perf_counter() - t1
        graphs = extract(mod)
        new, p, cold, times = time_pass(mod, args.repeat)
        rep = p.report[0]
        before, after = planned_bytes(mod), planned_bytes(new)
        pa = PlanArena()
        t_arena = time.perf_counter()
        arena_after = allocated_bytes(new, arena_pipeline(pa))
        t_arena = time.perf_counter() - t_arena
        main = next(r for r in pa.report if r.func == "main")
        g = graphs[0]
        rng = np.random.default_rng(args.seed)
        orders = priority_orders_batch(g, rng.random((args.random, g.num_nodes)))
        vals = planned_memory_batch(g, orders)
        k = int(np.argmin(vals))
        random_best = planned_bytes(apply(mod, [(g, orders[k])]))
        out.append({"model": label, "nodes": graphs[0].num_nodes, "blocks": len(graphs),
                    "import_s": import_s, "prepare_s": prepare_s, "cold_s": cold,
                    "median_s": statistics.median(times), "min_s": min(times),
                    "max_s": max(times), "chosen": rep["chosen"], "planned_before": before,
                    "planned_after": after, "replica_after": rep["planned_after"],
                    "random_best": random_best, "default_alloc": allocated_bytes(mod, "default"),
                    "arena_alloc": arena_after, "arena_lower_bound": main.lower_bound,
                    "arena_lowering_s": t_arena, "arena_proven": main.proven,
                    "random_best_replica": int(vals[k]) + before - rep["planned_before"],
                    "match": rep["planned_after"] + before - rep["planned_before"] == after
                    and random_best == int(vals[k]) + before - rep["planned_before"]})
        print(out[-1], flush=True)
    return out


# ---------------------------------------------------------------------------- report
def _b(x) -> str:
    return "-" if x is None else f"{int(x):,}"


def _method_label(r) -> str:
    return r["method"] if r["objective"] == "-" else f"{r['method']} [{r['objective']}]"


def markdown(meta, models, large) -> str:
    a = meta["args"]
    md = ["# Planned memory per ordering method on the zoo", "",
          f"Command: `{meta['command']}`  ",
          f"Machine: {meta['machine']}; {meta['date']}; wall time {meta['wall_s']:.0f} s "
          "(after imports).", "",
          "Planned bytes = what TVM's `StaticPlanBlockMemory` allocates for the rewritten module "
          "(`tvm_sched.relax.memory.planned_bytes`); ratio = planned / planned in the module's "
          "own order after the fusion prefix (`tvm`). Solvers run on the objective in brackets: "
          "`planned_memory` is the planner replica, `peak_memory` the liveness proxy. "
          f"Heuristic / GauS / Gumbel budget {a['budget']:g} s, CP-SAT {a['cpsat_budget']:g} s "
          f"with {a['cpsat_workers']} workers, {a['random']} random orders, seed {a['seed']}. "
          f"Pass time: median of {a['repeat']} runs after a warm-up, on the fused module "
          "(the fusion prefix is not repeated).", "",
          "## Summary", "",
          "| model | nodes | TVM order planned B | TVM order liveness B | planned LB | "
          "pass planned B (ratio) | pass chose | pass median s | best found B (by) | "
          f"random x{a['random']} min / median / max B | CP-SAT liveness / bound (status) | "
          "replica mismatches |",
          "|---|---:|---:|---:|---:|---:|---|---:|---|---|---|---|"]
    for m in models:
        ps, rd, cp = m["pass"], m["random"], m["cpsat"]
        ties = f" +{m['best']['ties']} more" if m["best"]["ties"] else ""
        md.append(
            f"| {m['model']} | {m['nodes']} | {_b(m['tvm_planned'])} | {_b(m['tvm_liveness'])} | "
            f"{_b(m['planned_lower_bound'])} | {_b(ps['planned'])} "
            f"({ps['planned'] / m['tvm_planned']:.3f}) | {ps['chosen']} | {ps['median_s']:.3f} | "
            f"{_b(m['best']['planned'])} ({m['best']['method']}"
            f"{ties}) | {_b(rd['min'])} / "
            f"{_b(rd['median'])} / {_b(rd['max'])} | {_b(cp['liveness'])} / {_b(cp['bound'])} "
            f"({cp['status']}) | {len(m['mismatches']) or 'none'} |")
    md += ["", "## The arena (`tvm_sched` pipeline) against TVM's planner", "",
           "Bytes allocated for intermediates by the lowered module (`alloc_storage` sizes). "
           "`TVM default`: TVM's default pipeline, the module's own order. `arena, TVM order`: "
           "`PlanArena` without reordering. `tvm_sched`: the whole pipeline (ScheduleOperators "
           "defaults + PlanArena). LB: the arena's lower bound (liveness peak of the arena "
           "tensors in that order). Liveness optimum: CP-SAT over all orders (the best any "
           "order can reach with a perfect packing).", "",
           "| model | TVM default B | arena, TVM order B (/LB) | tvm_sched B (ratio to TVM) | "
           "tvm_sched / its LB | best arena of any method B (by) | liveness optimum B | "
           "outputs bit-equal |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    ratios = []
    for m in models:
        ar = m["arena"]
        ratios.append(ar["pipeline"] / ar["tvm_default"])
        md.append(f"| {m['model']} | {_b(ar['tvm_default'])} | {_b(ar['tvm_order'])} "
                  f"({ar['tvm_order'] / max(1, ar['tvm_order_lower_bound']):.3f}) | "
                  f"{_b(ar['pipeline'])} ({ratios[-1]:.3f}) | "
                  f"{ar['pipeline'] / max(1, ar['pass_lower_bound']):.3f} | "
                  f"{_b(ar['best'])} ({ar['best_method']}) | {_b(ar['liveness_optimum'])}"
                  f"{'' if ar['liveness_proven'] else ' (not proven)'} | "
                  f"{'yes' if ar['pipeline_bit_equal'] else 'NO'} |")
    if ratios:
        geo = float(np.exp(np.mean(np.log(ratios))))
        md += ["", f"Geometric mean of tvm_sched / TVM default over {len(ratios)} models: "
               f"**{geo:.3f}**; worst {max(ratios):.3f}."]
    methods = [_method_label(r) for r in models[0]["rows"] if "planned" in r] if models else []
    md += ["", "## Ratio to the TVM order, per method (lower is better)", "",
           "| method | " + " | ".join(m["model"] for m in models) + " |",
           "|---|" + "---:|" * len(models)]
    for label in methods:
        cells = []
        for m in models:
            r = next((r for r in m["rows"] if "planned" in r and _method_label(r) == label), None)
            cells.append("-" if r is None else f"{r['ratio']:.3f}" + ("" if r["match"] else "*"))
        md.append(f"| {label} | " + " | ".join(cells) + " |")
    md += ["", "`*`: the replica disagrees with TVM for that row.", ""]
    for m in models:
        md += [f"### {m['model']} ({m['nodes']} nodes, {m['edges']} edges)", "",
               "| method | objective | planned B | ratio | replica B | liveness B | arena B | "
               "arena LB B | seconds |",
               "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in m["rows"]:
            if "planned" not in r:
                md.append(f"| {r['method']} | skipped: {r['skipped']} | | | | | | | |")
                continue
            s = "-" if r["seconds"] is None else f"{r['seconds']:.3f}"
            md.append(f"| {r['method']} | {r['objective']} | {_b(r['planned'])} | "
                      f"{r['ratio']:.3f} | {_b(r['replica'])} | {_b(r['liveness'])} | "
                      f"{_b(r['arena'])} | {_b(r['arena_lower_bound'])} | {s} |")
        cp = m["cpsat"]
        md += ["", f"CP-SAT on liveness: {_b(cp['liveness'])} B, proven lower bound "
               f"{_b(cp['bound'])} B, status {cp['status']} (CP-SAT: {cp['cp_status']}"
               f"{', fallback ' + cp['fallback'] if cp['fallback'] else ''}), "
               f"{cp['seconds']:.1f} s. Pass: chose `{m['pass']['chosen']}` among "
               f"{m['pass']['candidates']} candidates; cold run {m['pass']['cold_s']:.3f} s. "
               f"Random orders: {m['random']['distinct_planned']} distinct planned values.", ""]
    if large:
        md += ["## ScheduleOperators and PlanArena on large blocks", "",
               "Zoo classes built deeper, imported with `from_torch`, then `prepare` (lift + "
               "fusion prefix, timed separately). The pass time covers "
               "`ScheduleOperators(arena=True)` construction and the pass on the fused module: "
               "extraction, the default solvers "
               "(`lpmf` and `cpsat` on liveness, baselines `topo-dfs`, `topo-bfs`, `list`, each "
               "within the pass budget), arena and replica scoring, rewrite; no fusion prefix. "
               f"Median / min / max of {a['repeat']} runs after a cold run. `arena lowering s`: "
               "TVM's default lowering with PlanArena on the scheduled module.", "",
               "| model | nodes | prepare s | pass cold s | pass median s | min s | max s | "
               f"chose | planned before B | after B | random x{a['random']} best B | "
               "replica agrees | TVM default B | tvm_sched arena B (LB) | arena lowering s |",
               "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|"]
        md += [f"| {r['model']} | {r['nodes']} | {r['prepare_s']:.2f} | {r['cold_s']:.3f} | "
               f"{r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | {r['chosen']} | "
               f"{_b(r['planned_before'])} | {_b(r['planned_after'])} | {_b(r['random_best'])} | "
               f"{'yes' if r['match'] else 'NO'} | {_b(r['default_alloc'])} | "
               f"{_b(r['arena_alloc'])} ({_b(r['arena_lower_bound'])}) | "
               f"{r['arena_lowering_s']:.2f} |" for r in large]
        md.append("")
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=None, help="default: the whole zoo")
    p.add_argument("--budget", type=float, default=5.0,
                   help="seconds per heuristic / GauS / Gumbel solve")
    p.add_argument("--cpsat-budget", type=float, default=20.0, help="CP-SAT seconds per model")
    p.add_argument("--cpsat-workers", type=int, default=2)
    p.add_argument("--random", type=int, default=1000, help="random topological orders")
    p.add_argument("--repeat", type=int, default=5, help="timed runs of the pass")
    p.add_argument("--large", nargs="*", default=["transformer", "nasnet"],
                   choices=["transformer", "nasnet"], help="models for the ~200-op timing")
    p.add_argument("--large-depth", type=int, default=40,
                   help="their layers / cells (40: about 1,000 operators)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: inception and transformer, tiny budgets")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--name", default=None, help="output file stem (default memory[_quick])")
    p.add_argument("--render", type=Path, default=None,
                   help="only write the markdown of a saved JSON result")
    args = p.parse_args(argv)
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        text = markdown(saved["meta"], saved["models"], saved["large"])
        args.render.with_suffix(".md").write_text(text)
        print(text)
        return 0
    if args.quick:
        args.models = args.models or ["inception", "transformer"]
        args.budget, args.cpsat_budget, args.random, args.repeat = 0.5, 2.0, 100, 2
        args.large, args.large_depth = ["transformer"], 4
    args.name = args.name or ("memory_quick" if args.quick else "memory")
    models = args.models or zoo.names()

    t0 = time.perf_counter()
    results = [run_model(name, args) for name in models]
    large = run_large(args)
    meta = {"command": " ".join(["benchmarks/memory.py",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, python "
                       f"{platform.python_version()}, OMP_NUM_THREADS="
                       f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, TVM_NUM_THREADS="
                       f"{os.environ.get('TVM_NUM_THREADS', 'unset')}",
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "wall_s": time.perf_counter() - t0,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(
        json.dumps({"meta": meta, "models": results, "large": large}, indent=1))
    text = markdown(meta, results, large)
    (args.out / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
