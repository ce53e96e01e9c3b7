"""Work-sharing queues: a lane plan's lanes cut where their order is not needed.

Why
---
With work sharing (the native engine's ``steal_us``), an idle thread runs another lane's next
step, but each lane's steps still run one after another. When a lane's thread loses its core in
the middle of a step -- another process on that core -- every later step of that lane waits
for it, even the steps that touch none of its bytes, and the free core idles. Most of a lane's
order is the solver's choice, not something the data or the arena needs: cutting each lane into
the runs of steps that must be ordered anyway lets a thread take any step whose data is ready
and whose bytes are free, on whichever core still runs.

How
---
:func:`required_before` is the plan's happens-before restricted to pairs of steps that touch
the same bytes: the writer of a tensor and every other step using it (reads, and writes of
other slices), and every use of an arena tensor and every writer of an arena tensor that shares
bytes with it. Each pair keeps the direction happens-before gives it, so the relation is a
sub-order of the plan's, and it contains every pair :meth:`LanePlan.validate` checks.

:func:`split_lanes` cuts each lane between consecutive steps that the transitive closure of
that relation does not order. Each piece (a *queue*) is a chain of the required order, so
running it in order adds no constraint of its own; its waits are the required pairs across
queues. The queue remembers its lane as its *owner*: the engine's thread for that lane runs its
own queues first, in the plan's order whenever they are ready, and other lanes' queues only
after their steps have waited ``steal_us`` -- so on a quiet machine the plan runs as planned.
The split plan is proven with :meth:`LanePlan.validate` like any other plan; a split that did
not pass would raise, never run.

Written here rather than taken from a library: it is a few lines over the plan's own
happens-before and tensor uses, which no graph library knows.
"""

from __future__ import annotations

from dataclasses import replace

from tvm_sched.runtime.plan import LanePlan
from tvm_sched.runtime.waits import ancestor_bits

__all__ = ["required_before", "split_lanes"]


def required_before(plan: LanePlan) -> list[set[int]]:
    """Per step, the steps that must finish before it starts for its data and its bytes
    (see the module docstring).

    Parameters
    ----------
    plan
        A valid plan.

    Returns
    -------
    list of set of int
        ``preds[s]``: steps ordered before ``s`` because they share bytes with it; every pair
        is in ``plan.happens_before()``.
    """
    hb = plan.happens_before()
    _, used, written = plan._uses()  # noqa: SLF001 -- the plan's own reading of its tensors
    preds: list[set[int]] = [set() for _ in plan.steps]

    def order(x: int, y: int) -> None:
        if x == y:
            return
        if hb[x, y]:
            preds[y].add(x)
        elif hb[y, x]:
            preds[x].add(y)

    for b, writers in written.items():
        for w in writers:
            for u in used.get(b, ()):
                order(w, u)
    arena = sorted((i for i in written if plan.tensors[i].kind == "arena"
                    and plan.tensors[i].nbytes > 0), key=lambda i: plan.tensors[i].offset)
    for k, p in enumerate(arena):
        end = plan.tensors[p].offset + plan.tensors[p].nbytes
        for q in arena[k + 1:]:
            if plan.tensors[q].offset >= end:
                break
            for x, y in ((p, q), (q, p)):
                for use in used.get(x, ()):
                    for w in written[y]:
                        order(use, w)
    return preds


def split_lanes(plan: LanePlan) -> tuple[LanePlan, list[int]]:
    """The plan with each lane cut into queues, and each queue's lane (see the module
    docstring).

    Parameters
    ----------
    plan
        A valid plan.

    Returns
    -------
    tuple
        ``(queues, owners)``: a plan whose lanes are the queues (lane 0's first, each lane's
        in its order; same steps, tensors and arena), proven with :meth:`LanePlan.validate`;
        and per queue the lane it came from.

    Raises
    ------
    InvalidScheduleError
        The split plan did not validate (a defect of this module, never run).

    Examples
    --------
    >>> from tvm_sched.runtime.plan import LanePlan, Step, TensorSpec
    >>> t = [TensorSpec("param", (4,), "float32", index=0)] + [
    ...     TensorSpec("extern", (4,), "float32") for _ in range(3)]
    >>> steps = (Step(0, "a", 0, (0, 1)), Step(1, "b", 0, (0, 2)), Step(2, "c", 0, (1, 3)))
    >>> plan = LanePlan(("k",), tuple(t), steps, ((0, 1, 2),), ((), (), ()), (2, 3), 1, 1, 0)
    >>> queues, owners = split_lanes(plan)
    >>> queues.lanes, queues.waits, owners
    (((0,), (1,), (2,)), ((), (), (0,)), [0, 0, 0])
    """
    preds = required_before(plan)
    # a sub-order of the plan's happens-before: the plan's serial order is topological for it
    reach = ancestor_bits(preds, plan.serial_order())
    queues: list[tuple[int, ...]] = []
    owners: list[int] = []
    for lane, chain in enumerate(plan.lanes):
        cur: list[int] = []
        for s in chain:
            if cur and not (reach[s] >> cur[-1]) & 1:
                queues.append(tuple(cur))
                owners.append(lane)
                cur = []
            cur.append(s)
        if cur:
            queues.append(tuple(cur))
            owners.append(lane)
    queue_of = [0] * len(plan.steps)
    for q, steps in enumerate(queues):
        for s in steps:
            queue_of[s] = q
    prev = {b: a for steps in queues for a, b in zip(steps, steps[1:], strict=False)}
    waits = []
    for v in range(len(plan.steps)):  # drop the waits another one (or the queue) implies
        near = set(preds[v]) | ({prev[v]} if v in prev else set())
        implied = 0
        for u in near:
            implied |= reach[u]
        waits.append(tuple(sorted(u for u in near if queue_of[u] != queue_of[v]
                                  and not (implied >> u) & 1)))
    split = replace(plan, lanes=tuple(queues), waits=tuple(waits))
    split.validate()
    return split, owners
