"""Work-sharing queues (runtime/queues): the cut keeps every order the data and the arena need,
adds none, and the native engine runs queues owned by fewer threads correctly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from tvm_sched.errors import InvalidScheduleError
from tvm_sched.runtime.plan import LanePlan, Step, TensorSpec
from tvm_sched.runtime.queues import required_before, split_lanes
from tvm_sched.testing.plans import unordered_overlaps
from tvm_sched.testing.strategies import lane_plans


def _check_split(plan: LanePlan) -> tuple[LanePlan, list[int]]:
    split, owners = split_lanes(plan)
    assert len(owners) == split.num_lanes
    # each lane is its queues, in order
    for k, lane in enumerate(plan.lanes):
        assert sum((split.lanes[q] for q in range(split.num_lanes) if owners[q] == k), ()) == lane
    assert sorted(s for q in split.lanes for s in q) == list(range(len(plan.steps)))
    # no order is added: the queues' happens-before is inside the plan's ...
    hb, cut = plan.happens_before(), split.happens_before()
    assert not (cut & ~hb).any()
    # ... and the arena stays safe under it (brute force, independent of validate)
    assert unordered_overlaps(split) == []
    for v, preds in enumerate(required_before(plan)):
        assert all(hb[u, v] for u in preds)
    return split, owners


@settings(max_examples=150, deadline=None)
@given(lane_plans(max_nodes=12))
def test_queues_keep_the_needed_order_and_add_none(plan):
    _check_split(plan)


def _toy(lanes, waits, reuse: bool) -> LanePlan:
    """a, b read the input; c reads a. With ``reuse``, b's output reuses a's bytes after c."""
    tensors = (TensorSpec("param", (16,), "float32", index=0),
               TensorSpec("arena", (16,), "float32", offset=0, node=0),
               TensorSpec("arena", (16,), "float32", offset=0 if reuse else 64, node=1),
               TensorSpec("extern", (16,), "float32", node=2))
    steps = (Step(0, "a", 0, (0, 1)), Step(1, "c", 0, (1, 3)), Step(2, "b", 0, (0, 2)))
    return LanePlan(("k",), tensors, steps, lanes, waits, (2, 3), 1, 1, 128)


def test_a_lane_is_cut_only_where_no_bytes_order_it():
    free, _ = _check_split(_toy(((0, 1, 2),), ((), (), ()), reuse=False))
    assert free.lanes == ((0, 1), (2,))  # b touches nothing a or c touch
    reused, _ = _check_split(_toy(((0, 1, 2),), ((), (), ()), reuse=True))
    assert reused.lanes == ((0, 1, 2),)  # b overwrites a's bytes: after c, which reads them
    two, owners = _check_split(_toy(((0, 2), (1,)), ((), (0,), (1,)), reuse=True))
    assert owners == [0, 1] and two.lanes == ((0, 2), (1,))  # b overwrites a: stays after it
    assert two.waits == ((), (0,), (1,))  # and waits for c on the other lane: the reuse
    free2, owners = _check_split(_toy(((0, 2), (1,)), ((), (0,), ()), reuse=False))
    assert owners == [0, 0, 1] and free2.lanes == ((0,), (2,), (1,))


# -- the native engine with owners ---------------------------------------------------------

def _native():
    from tvm_sched.runtime import native_engine

    if not native_engine.available():
        pytest.skip(f"native engine not built: {native_engine.unavailable_reason()}")
    return native_engine


def test_owners_are_checked():
    native = _native()
    with pytest.raises(InvalidScheduleError, match="owners"):
        native.NativeEngine([lambda: None], [(0, [])], [[0], []], [[]], owners=[0])
    with pytest.raises(InvalidScheduleError, match="owners"):
        native.NativeEngine([lambda: None], [(0, [])], [[0], []], [[]], owners=[0, 2])


@pytest.mark.integration
@pytest.mark.parametrize("steal_us", [-1.0, 0.0, 20.0])
def test_race_stress_queues_owned_by_fewer_threads(steal_us):
    """Random DAGs on up to 6 queues run by 1-2 threads, outputs poisoned before every run."""
    import tvm
    from tvm import te

    native = _native()
    n = 256
    a = te.placeholder((n,), "float32", name="a")
    b = te.placeholder((n,), "float32", name="b")
    c = te.compute((n,), lambda i: a[i] * 0.5 + b[i], name="c")
    func = te.create_prim_func([a, b, c]).with_attr("global_symbol", "f")
    kernel = tvm.compile(tvm.IRModule({"f": func}), target="llvm")["f"]
    rng = np.random.default_rng(7)
    dev = tvm.cpu()
    for trial in range(12):
        size = int(rng.integers(6, 30))
        src = [(int(rng.integers(max(0, v - 3), v + 1)), int(rng.integers(0, v + 1)))
               for v in range(size)]  # value v + 1 from two of values 0..v (0: the input)
        x = rng.uniform(-1, 1, n).astype("float32")
        ref = [x]
        for p, q in src:
            ref.append(ref[p] * np.float32(0.5) + ref[q])
        vals = [tvm.runtime.tensor(x, dev)] + [tvm.runtime.empty((n,), "float32", dev)
                                               for _ in range(size)]
        steps = [(0, [vals[p], vals[q], vals[v + 1]]) for v, (p, q) in enumerate(src)]
        num_queues = int(rng.integers(1, 7))
        queue = rng.integers(0, num_queues, size)
        lanes = [[v for v in range(size) if queue[v] == k] for k in range(num_queues)]
        waits = [[u - 1 for u in set(src[v]) if u > 0 and queue[u - 1] != queue[v]]
                 for v in range(size)]
        threads = min(int(rng.integers(1, 3)), num_queues)
        owners = [k % threads for k in range(num_queues)]
        with native.NativeEngine([kernel], steps, lanes, waits, owners=owners,
                                 steal_us=steal_us, allow_oversubscribe=True) as engine:
            assert engine.num_threads == threads
            for _ in range(10):
                for t in vals[1:]:
                    t.copyfrom(np.full(n, np.nan, "float32"))
                engine.run()
                for v in range(size):
                    np.testing.assert_allclose(vals[v + 1].numpy(), ref[v + 1], rtol=1e-6,
                                               err_msg=f"trial {trial}, value {v + 1}")


# -- real models ---------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("name", ["darts", "inception"])
def test_zoo_plans_cut_into_queues_give_the_same_outputs(compiled, name):
    kernels, inputs, ref = compiled(name)
    sched = kernels.schedule(2, "list", budget=0.5)
    plan = kernels.plan(sched)
    split, _ = _check_split(plan)
    assert split.num_lanes > plan.num_lanes  # these models have independent branches
    for queues in (True, False):
        with kernels.module(plan, engine="auto", adaptive=False, queues=queues,
                            allow_oversubscribe=True) as lm:
            cut = lm.queues is not None and len(lm.queues[0]) > 2
            assert cut == (queues and lm.engine_kind == "native")
            assert lm.mode == ("queues" if cut else "lanes")
            for _ in range(3):
                lm.poison()
                for got, want in zip(lm(*inputs), ref, strict=True):
                    assert np.array_equal(got, want)
