"""The native lane engine (tvm_sched.runtime.native_engine): plan validation, ordering, errors,
lifetime, and multi-lane runs of real TVM kernels checked against sequential execution (race
stress).

Skipped as a whole only when the library was not built (``make`` builds it).
"""

from __future__ import annotations

import gc
import os
import threading

import numpy as np
import pytest

from tvm_sched.errors import CycleError, InvalidScheduleError
from tvm_sched.runtime import native_engine as native
from tvm_sched.runtime.engine_python import LaneError

pytestmark = pytest.mark.skipif(
    not native.available(),
    reason=f"native lane engine not built: {native.unavailable_reason()}")

NativeEngine = native.NativeEngine


def _noop(*_args):
    return None


def _tasks() -> int | None:
    """OS threads of this process (Linux), to see that lane threads are joined."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


# ---------------------------------------------------------------- validation (no TVM kernels)

@pytest.mark.parametrize("lanes, waits, match", [
    ([[0, 5]], [[], []], "lane 0 lists unknown step 5"),
    ([[0, -1]], [[], []], "unknown step -1"),
    ([[0, 1], [1]], [[], []], "step 1 is on lane 0 .* and on lane 1"),
    ([[0]], [[], []], "step 1 is on no lane"),
    ([[0], [1]], [[], [7]], "step 1 waits on unknown step 7"),
    ([[0, 1]], [[], [0]], "step 1 waits for step 0 on its own lane 0"),
    ([[0], [1]], [[]], "waits has 1 entries but there are 2 steps"),
])
def test_invalid_plans_are_named(lanes, waits, match):
    with pytest.raises(InvalidScheduleError, match=match):
        NativeEngine([_noop], [(0, []), (0, [])], lanes, waits)


def test_cycle_is_a_cycle_error_naming_its_steps():
    # lane 0: 0 -> 1, lane 1: 2 -> 3; 1 waits for 3 and 2 waits for 1: 1 -> 2 -> 3 -> 1.
    with pytest.raises(CycleError, match="cycle") as info:
        NativeEngine([_noop], [(0, [])] * 4, [[0, 1], [2, 3]], [[], [3], [1], []])
    assert sorted(info.value.cycle) == [1, 2, 3]
    assert "step 1 (lane 0)" in str(info.value) and "step 3 (lane 1)" in str(info.value)


def test_unknown_function_and_bad_settings():
    with pytest.raises(InvalidScheduleError, match="step 0 calls function 3 but there are 1"):
        NativeEngine([_noop], [(3, [])], [[0]], [[]])
    with pytest.raises(InvalidScheduleError, match="threads_per_lane"):
        NativeEngine([_noop], [(0, [])], [[0]], [[]], threads_per_lane=0)
    with pytest.raises(InvalidScheduleError, match="not a .func_index, args. pair"):
        NativeEngine([_noop], [0], [[0]], [[]])
    with pytest.raises(TypeError, match=r"funcs\[0\] is not callable"):
        NativeEngine([42], [(0, [])], [[0]], [[]])


def test_more_lanes_than_cores_needs_allow_oversubscribe():
    many = len(os.sched_getaffinity(0)) + 1
    steps = [(0, [])] * many
    lanes = [[k] for k in range(many)]
    waits = [[]] * many
    with pytest.raises(InvalidScheduleError, match="allow_oversubscribe"):
        NativeEngine([_noop], steps, lanes, waits)
    with NativeEngine([_noop], steps, lanes, waits, allow_oversubscribe=True) as engine:
        engine.run()
        assert engine.pinned_cores == [[]] * many  # too few cores for one each: nobody pinned


# ---------------------------------------------------------------- ordering with Python callables

def _recording_plan():
    """Two lanes; 1 waits for 0 and 4 waits for 3, 5 waits for 2 (a cross-lane chain)."""
    lanes = [[0, 1, 2], [3, 4, 5]]
    waits = [[], [3], [], [], [0], [2]]
    return lanes, waits


def test_lane_order_and_waits_are_respected():
    lanes, waits = _recording_plan()
    log: list[int] = []
    lock = threading.Lock()

    def record(step):
        with lock:
            log.append(step)

    with NativeEngine([record], [(0, [s]) for s in range(6)], lanes, waits) as engine:
        for _ in range(50):
            log.clear()
            engine.run()
            assert sorted(log) == list(range(6))
            at = {s: i for i, s in enumerate(log)}
            for lane in lanes:
                assert [at[s] for s in lane] == sorted(at[s] for s in lane)
            for s, ws in enumerate(waits):
                assert all(at[w] < at[s] for w in ws)


def test_kernel_error_stops_all_lanes_and_engine_stays_usable():
    fail = {"on": True}
    ran: list[int] = []

    def step(i):
        ran.append(i)
        if i == 1 and fail["on"]:
            raise KeyError("kernel exploded")

    # lane 0: 0, 1, 2; lane 1: 3 waits for 1 (fails), 4.
    lanes, waits = [[0, 1, 2], [3, 4]], [[], [], [], [1], []]
    names = [f"k{i}" for i in range(5)]
    with NativeEngine([step], [(0, [i]) for i in range(5)], lanes, waits,
                      step_names=names) as engine:
        for _ in range(3):  # fails the same way every time, no hang
            ran.clear()
            with pytest.raises(LaneError, match=r"step 1 \(k1\) on lane 0 failed: KeyError.*"
                                                "kernel exploded"):
                engine.run()
            assert 2 not in ran and 3 not in ran and 4 not in ran
        fail["on"] = False
        ran.clear()
        engine.run()
        assert sorted(ran) == [0, 1, 2, 3, 4]


def test_close_is_idempotent_and_joins_threads():
    before = _tasks()
    engine = NativeEngine([_noop], [(0, []), (0, [])], [[0], [1]], [[], []], pin=False)
    assert engine.pinned_cores == [[], []]
    engine.run()
    engine.close()
    engine.close()
    assert engine.closed
    with pytest.raises(RuntimeError, match="closed"):
        engine.run()
    if before is not None:
        assert _tasks() == before


def test_garbage_collection_joins_threads():
    before = _tasks()
    engine = NativeEngine([_noop], [(0, [])] * 3, [[0, 1], [2]], [[], [2], []])
    engine.run()
    if before is not None:
        assert _tasks() > before
    del engine
    gc.collect()
    if before is not None:
        assert _tasks() == before


def test_pinning_uses_disjoint_allowed_cores():
    allowed = sorted(os.sched_getaffinity(0))
    lanes = min(2, len(allowed))
    with NativeEngine([_noop], [(0, [])] * lanes, [[k] for k in range(lanes)],
                      [[]] * lanes) as engine:
        pinned = engine.pinned_cores
    flat = [c for cores in pinned for c in cores]
    assert len(flat) == len(set(flat))
    assert set(flat) <= set(allowed)
    assert all(len(c) <= 1 for c in pinned)


def test_empty_plan_and_empty_lanes():
    with NativeEngine([], [], [], []) as engine:
        engine.run()
    with NativeEngine([_noop], [(0, [])], [[], [0]], [[]]) as engine:
        engine.run()
        assert engine.num_waits == 0


# ---------------------------------------------------------------- real TVM kernels

N = 1024


@pytest.fixture(scope="module")
def kernels():
    """add(a, b, c): c = a + b and mul(a, b, c): c = a * b on float32[N], built with te."""
    import tvm
    from tvm import te

    def build(name, op):
        a = te.placeholder((N,), "float32", name="a")
        b = te.placeholder((N,), "float32", name="b")
        c = te.compute((N,), lambda i: op(a[i], b[i]), name="c")
        func = te.create_prim_func([a, b, c]).with_attr("global_symbol", name)
        return tvm.compile(tvm.IRModule({name: func}), target="llvm")[name]

    return tvm, [build("add", lambda x, y: x + y), build("mul", lambda x, y: x * y)]


def _random_dag(rng, num_nodes, num_inputs=2):
    """Node v computes op(v) of two earlier values (inputs or nodes): a fork/diamond DAG."""
    nodes = []
    for v in range(num_nodes):
        pool = num_inputs + v
        # mostly recent values (long diamonds), sometimes the inputs (forks)
        a = int(rng.integers(max(0, pool - 4), pool))
        b = int(rng.integers(0, pool))
        nodes.append((int(rng.integers(2)), a, b))
    return nodes


def _reference(nodes, inputs):
    values = list(inputs)
    for op, a, b in nodes:
        values.append(values[a] + values[b] if op == 0 else values[a] * values[b])
    return values[len(inputs):]


def _random_lanes(rng, nodes, num_inputs, num_lanes):
    """A random topological order, random lanes; waits on every cross-lane data edge."""
    n = len(nodes)
    preds = [sorted({x - num_inputs for x in (a, b) if x >= num_inputs}) for _, a, b in nodes]
    succs = [[] for _ in range(n)]
    for v, ps in enumerate(preds):
        for u in ps:
            succs[u].append(v)
    indeg = [len(p) for p in preds]
    ready = [v for v in range(n) if indeg[v] == 0]
    order = []
    while ready:
        v = ready.pop(int(rng.integers(len(ready))))
        order.append(v)
        for w in succs[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    lane = rng.integers(0, num_lanes, n)
    lanes = [[v for v in order if lane[v] == k] for k in range(num_lanes)]
    waits = [[u for u in preds[v] if lane[u] != lane[v]] for v in range(n)]
    return lanes, waits


def _tensors(tvm, nodes, rng, num_inputs=2):
    dev = tvm.cpu()
    inputs = [rng.uniform(0.5, 1.5, N).astype("float32") for _ in range(num_inputs)]
    values = [tvm.runtime.tensor(x, dev) for x in inputs]
    values += [tvm.runtime.empty((N,), "float32", dev) for _ in nodes]
    steps = [(op, [values[a], values[b], values[num_inputs + v]])
             for v, (op, a, b) in enumerate(nodes)]
    return inputs, values[num_inputs:], steps


@pytest.mark.integration
def test_two_lanes_match_sequential_execution(kernels):
    tvm, funcs = kernels
    rng = np.random.default_rng(0)
    nodes = _random_dag(rng, 12)
    inputs, outputs, steps = _tensors(tvm, nodes, rng)
    for f, args in steps:  # sequential execution, in program order
        funcs[f](*args)
    sequential = [t.numpy().copy() for t in outputs]
    for ref, got in zip(_reference(nodes, inputs), sequential, strict=True):
        np.testing.assert_array_equal(got, ref)
    lanes, waits = _random_lanes(rng, nodes, 2, 2)
    with NativeEngine(funcs, steps, lanes, waits, threads_per_lane=1) as engine:
        assert engine.pools_configured
        for t in outputs:
            t.copyfrom(np.full(N, np.nan, "float32"))
        engine.run()
    for ref, got in zip(sequential, outputs, strict=True):
        np.testing.assert_array_equal(got.numpy(), ref)


@pytest.mark.integration
def test_race_stress_random_lane_schedules_on_poisoned_buffers(kernels):
    """Hundreds of runs of random valid schedules; outputs poisoned (NaN) before every run."""
    tvm, funcs = kernels
    rng = np.random.default_rng(1)
    poison = np.full(N, np.nan, "float32")
    runs = 0
    for trial in range(40):
        nodes = _random_dag(rng, int(rng.integers(6, 24)))
        inputs, outputs, steps = _tensors(tvm, nodes, rng)
        expected = _reference(nodes, inputs)
        num_lanes = int(rng.integers(1, 5))
        lanes, waits = _random_lanes(rng, nodes, 2, num_lanes)
        # up to 4 lanes on any machine: oversubscription adds preemption to the interleavings
        with NativeEngine(funcs, steps, lanes, waits, allow_oversubscribe=True,
                          spin_us=float(rng.choice([0.0, 50.0]))) as engine:
            for _ in range(8):
                for t in outputs:
                    t.copyfrom(poison)
                engine.run()
                runs += 1
                for v, (ref, got) in enumerate(zip(expected, outputs, strict=True)):
                    np.testing.assert_array_equal(got.numpy(), ref,
                                                  err_msg=f"trial {trial}, node {v}")
    assert runs == 320


@pytest.mark.integration
def test_kernel_shape_error_is_a_lane_error(kernels):
    tvm, funcs = kernels
    dev = tvm.cpu()
    x = tvm.runtime.tensor(np.ones(N, "float32"), dev)
    y = tvm.runtime.empty((N,), "float32", dev)
    wrong = tvm.runtime.empty((N + 1,), "float32", dev)
    # lane 0: good, bad; lane 1: waits for the bad step, then more work.
    steps = [(0, [x, x, y]), (1, [x, x, wrong]), (0, [y, x, y]), (0, [x, y, y])]
    engine = NativeEngine(funcs, steps, [[0, 1], [2, 3]], [[], [], [1], []],
                          step_names=["ok", "bad_shape", "after", "more"])
    for _ in range(2):
        with pytest.raises(LaneError, match=r"step 1 \(bad_shape\) on lane 0 failed: "
                                            r"ValueError: .*shape"):
            engine.run()
    engine.close()


@pytest.mark.integration
@pytest.mark.parametrize("threads_per_lane", [1, 2])
def test_each_lane_sizes_its_own_tvm_thread_pool(kernels, threads_per_lane):
    tvm, _ = kernels
    num_threads = tvm.get_global_func("runtime.NumThreads")
    seen: list[int] = []

    def probe():
        seen.append(int(num_threads()))  # runs on the lane's thread: that thread's pool

    with NativeEngine([probe], [(0, [])], [[0]], [[]], threads_per_lane=threads_per_lane,
                      allow_oversubscribe=True) as engine:
        engine.run()
        assert engine.pools_configured
    assert seen == [threads_per_lane]


def test_run_or_close_from_inside_a_lane_is_refused():
    box: dict = {}
    errors: list[str] = []

    def reenter():
        for verb in ("run", "close"):
            try:
                getattr(box["engine"], verb)()
            except RuntimeError as err:
                errors.append(str(err))

    with NativeEngine([reenter], [(0, [])], [[0]], [[]]) as engine:
        box["engine"] = engine
        engine.run()
        assert len(errors) == 2
        assert all("own lanes" in e for e in errors)
        engine.run()  # still usable
