"""Speed of the planner replica (``planned_memory_batch``), and optionally its exactness on the zoo.

    .venv/bin/python benchmarks/planner_speed.py --nodes 200 --orders 1000 --repeat 5
    .venv/bin/python benchmarks/planner_speed.py --exact 200   # + zoo sweep against TVM

Speed: ``--orders`` random topological orders of a generated ``--nodes``-node layered DAG (read
with the replica's default model: one tensor per node of its ``out_bytes``) and, when TVM and the
zoo are installed, of each zoo model's extracted graph; the median of ``--repeat`` runs.
Exactness (``--exact N``, needs TVM): for every zoo model, the program order, the four
``TopologicalSort`` orders and ``N`` random orders, replica vs ``planned_bytes`` of the reordered
module. Writes ``planner_speed.json`` and ``planner_speed.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from tvm_sched.cost import planned_memory_batch
from tvm_sched.datasets import generate
from tvm_sched.graph import priority_orders_batch


def _time(graph, orders, repeat: int) -> list[float]:
    planned_memory_batch(graph, orders[:10])  # compile the per-graph plan once
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        planned_memory_batch(graph, orders)
        out.append(time.perf_counter() - t0)
    return out


def _zoo_graphs():
    try:
        import warnings

        from tvm_sched import zoo
        from tvm_sched.relax.extract import extract
        from tvm_sched.relax.frontend import prepare
    except ImportError:
        return []
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in zoo.names():
            mod = prepare(zoo.load(name).mod)
            out.append((name, mod, extract(mod)))
    return out


def _exactness(zoo_graphs, n_random: int) -> list[dict]:
    from tvm import relax

    from tvm_sched.relax.memory import planned_bytes
    from tvm_sched.relax.reorder import apply_order

    rows = []
    for name, mod, graphs in zoo_graphs:
        total = planned_bytes(mod)
        for g in graphs:
            n = g.num_nodes
            block = mod[g.meta["func"]].body.blocks[g.meta["block"]]
            node_of = {block.bindings[p].var: v for v, p in enumerate(g.meta["positions"])}
            orders = [list(range(n))]
            for o in ("depth-first", "breadth-first"):
                for d in ("from-inputs", "from-outputs"):
                    s = relax.transform.TopologicalSort(order=o, direction=d)(mod)
                    sb = s[g.meta["func"]].body.blocks[g.meta["block"]]
                    orders.append([node_of[b.var] for b in sb.bindings if b.var in node_of])
            rng = np.random.default_rng(0)
            orders += priority_orders_batch(g, rng.random((n_random, n))).tolist()
            mine = planned_memory_batch(g, np.array(orders))
            rest = total - int(mine[0])
            tvm_bytes = np.array([planned_bytes(apply_order(mod, g, o)) for o in orders])
            rows.append({
                "model": name, "block": g.meta["name"], "nodes": n, "orders": len(orders),
                "mismatches": int(np.sum(tvm_bytes != mine + rest)),
                "distinct_planned": len(set(tvm_bytes.tolist())),
                "planned_min": int(tvm_bytes.min()), "planned_max": int(tvm_bytes.max()),
            })
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=200)
    p.add_argument("--orders", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--exact", type=int, default=0, metavar="N",
                   help="also compare with TVM on the zoo with N random orders per model")
    p.add_argument("--no-zoo", action="store_true", help="time the generated graph only")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    graph = generate("layered", args.nodes, seed=0)
    orders = priority_orders_batch(graph, rng.random((args.orders, args.nodes)))
    speed = []
    times = _time(graph, orders, args.repeat)
    speed.append({"graph": f"layered (generated), {graph.num_edges} edges",
                  "nodes": graph.num_nodes, "orders": len(orders),
                  "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)})
    print(speed[-1], flush=True)
    zoo_graphs = [] if args.no_zoo else _zoo_graphs()
    for name, _, graphs in zoo_graphs:
        g = max(graphs, key=lambda x: x.num_nodes)
        o = priority_orders_batch(g, rng.random((args.orders, g.num_nodes)))
        times = _time(g, o, args.repeat)
        speed.append({"graph": f"zoo {name} (extracted)", "nodes": g.num_nodes,
                      "orders": len(o), "median_s": statistics.median(times),
                      "min_s": min(times), "max_s": max(times)})
        print(speed[-1], flush=True)
    exact = _exactness(zoo_graphs, args.exact) if args.exact and zoo_graphs else []

    env = {"python": sys.version.split()[0], "platform": platform.platform(),
           "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "command": "benchmarks/planner_speed.py " + " ".join(argv or sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "planner_speed.json").write_text(
        json.dumps({"env": env, "repeat": args.repeat, "speed": speed, "exactness": exact},
                   indent=1))
    lines = [f"# Planner replica: {args.orders} orders per graph, median of {args.repeat} runs",
             "", f"Command: `{env['command']}`; {env['platform']}; {env['when']}.", "",
             "| graph | nodes | orders | median s | min s | max s |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['graph']} | {r['nodes']} | {r['orders']} | {r['median_s']:.4f} | "
              f"{r['min_s']:.4f} | {r['max_s']:.4f} |" for r in speed]
    if exact:
        lines += ["", "## Exactness against TVM's StaticPlanBlockMemory", "",
                  "Orders: program, 4 TopologicalSort, random. Planned bytes read by "
                  "`tvm_sched.relax.planned_bytes` on the reordered module.", "",
                  "| model | nodes | orders | mismatches | distinct planned | min bytes | "
                  "max bytes |", "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['model']} | {r['nodes']} | {r['orders']} | {r['mismatches']} | "
                  f"{r['distinct_planned']} | {r['planned_min']} | {r['planned_max']} |"
                  for r in exact]
    (args.out / "planner_speed.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
