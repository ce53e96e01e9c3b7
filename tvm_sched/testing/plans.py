"""Lane plans for tests, built without TVM through the planner path of
:func:`tvm_sched.runtime.lower.plan_module`, and a brute-force check of their arena.

Nothing here is imported by the library itself (the runtime tests and the hypothesis strategy
:func:`tvm_sched.testing.strategies.lane_plans` use it).
"""

from __future__ import annotations

import numpy as np

from tvm_sched.runtime.plan import LanePlan, Step, TensorSpec

__all__ = ["planned_plan", "unordered_overlaps"]


def planned_plan(graph, order, lane) -> LanePlan:
    """The plan of ``graph`` (one uint8 tensor of ``out_bytes`` per node, a step per node reading
    its predecessors' tensors, or the input) through the planner path of ``lower.plan_module``
    without TVM: lane waits, happens-before, the concurrent arena planner."""
    from tvm_sched.memory import plan_arena
    from tvm_sched.runtime.waits import happens_before, lane_waits
    from tvm_sched.schedule import Schedule

    sched = Schedule(order=tuple(int(v) for v in order), lane=tuple(lane))
    chains, waits = lane_waits(graph, sched, [True] * graph.num_nodes)
    hb = happens_before(graph, chains, waits, sched.order)
    arena = plan_arena(graph, list(sched.order), happens_before=hb, method="greedy")
    tensors = [TensorSpec("param", (4,), "uint8", index=0)]
    for v in range(graph.num_nodes):
        off = arena.offset_of(v)
        shape = (int(graph.out_bytes[v]),)
        tensors.append(TensorSpec("extern", shape, "uint8", node=v) if off is None else
                       TensorSpec("arena", shape, "uint8", offset=int(off), node=v))
    steps = tuple(Step(v, f"v{v}", 0, tuple(1 + u for u in graph.preds(v)) + (1 + v,)
                       if len(graph.preds(v)) else (0, 1 + v)) for v in range(graph.num_nodes))
    return LanePlan(kernels=("k",), tensors=tuple(tensors), steps=steps,
                    lanes=tuple(tuple(c) for c in chains),
                    waits=tuple(tuple(waits[v]) for v in range(graph.num_nodes)),
                    outputs=tuple(1 + v for v in range(graph.num_nodes) if graph.is_output[v]),
                    num_input=1, num_params=1, arena_bytes=-(-arena.arena_bytes // 64) * 64)


def unordered_overlaps(plan: LanePlan) -> list[tuple[int, int]]:
    """Brute force: pairs of used arena tensors sharing a byte where neither tensor's uses all
    happen before all of the other's (the outputs are read by a step after every step)."""
    n = len(plan.steps)
    hb = np.zeros((n + 1, n + 1), dtype=bool)
    hb[:n, :n] = plan.happens_before()
    hb[:n, n] = True
    uses: dict[int, set[int]] = {}
    for k, step in enumerate(plan.steps):
        for a in step.args:
            t = plan.tensors[a]
            uses.setdefault(t.index if t.kind == "view" else a, set()).add(k)
    for o in plan.outputs:
        uses.setdefault(o, set()).add(n)
    arena = [i for i in uses if plan.tensors[i].kind == "arena" and plan.tensors[i].nbytes]
    bad = []
    for a in arena:
        for b in arena:
            ta, tb = plan.tensors[a], plan.tensors[b]
            if a < b and ta.offset < tb.offset + tb.nbytes and tb.offset < ta.offset + ta.nbytes:
                before = all(hb[x, y] for x in uses[a] for y in uses[b])
                after = all(hb[y, x] for x in uses[a] for y in uses[b])
                if not (before or after):
                    bad.append((a, b))
    return bad
