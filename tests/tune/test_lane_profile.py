"""Kernel durations on the device: the one-lane plan run one kernel at a time on the data each
kernel really receives (``LaneRunner.profile`` + ``tvm_sched.runtime.time_step``); a device lost
while profiling is reopened once and then named, with the kernel that was running."""

from __future__ import annotations

import json
import os
import signal
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tvm_sched.errors import DeviceUnavailableError, MeasureError
from tvm_sched.runtime import rpc
from tvm_sched.runtime.cores import num_cores
from tvm_sched.runtime.plan import LanePlan, Step, TensorSpec
from tvm_sched.tune.lane_runner import LaneRunner


def _plan() -> LanePlan:
    """Three steps on one lane; steps 0 and 2 call the same kernel ``k_add``."""
    t = [TensorSpec("param", (4,), "float32", index=0)] + [
        TensorSpec("arena", (4,), "float32", offset=64 * i, node=i) for i in range(3)]
    steps = (Step(0, "a", 0, (0, 1)), Step(1, "b", 1, (1, 2)), Step(2, "c", 0, (2, 3)))
    return LanePlan(kernels=("k_add", "k_mul"), tensors=tuple(t), steps=steps,
                    lanes=((0, 1, 2),), waits=((), (), ()), outputs=(3,), num_input=1,
                    num_params=1, arena_bytes=192)


class _Device:
    """A fake session: ``lane_step`` returns a time per position; ``die_at`` makes position p of
    the first session raise (a lost session) and ``fail_at`` raise on a live one."""

    def __init__(self, times, *, die_at=None, fail_at=None, log=None):
        self.times, self.die_at, self.fail_at = times, die_at, fail_at
        self.log = [] if log is None else log
        self.alive = True

    def cpu(self, i):
        return "cpu"

    def get_function(self, name):
        assert name == rpc.TIME_STEP

        def step(path, p):
            self.log.append(("step", p))
            if p == self.die_at:
                self.alive = False
                raise RuntimeError("RPCCode::kShutdown")
            if p == self.fail_at:
                raise RuntimeError("kernel raised")
            return self.times[p]

        return step


class _BatchDevice(_Device):
    """A fake session that also offers ``time_steps``: ``batch_die`` makes the first batch lose
    the session, ``batch_fail`` makes every batch raise on a live one."""

    def __init__(self, times, *, batch_die=False, batch_fail=False, **kw):
        super().__init__(times, **kw)
        self.batch_die, self.batch_fail = batch_die, batch_fail

    def get_function(self, name):
        if name != rpc.TIME_STEPS:
            return super().get_function(name)

        def steps(path, repeat):
            self.log.append(("steps", repeat))
            if self.batch_die:
                self.alive = False
                raise RuntimeError("RPCCode::kShutdown")
            if self.batch_fail:
                raise RuntimeError("kernel raised")
            return json.dumps([[t * (1 + r) for t in self.times] for r in range(repeat)])

        return steps


def _runner(dev: _Device, *, reopen=None):
    r = LaneRunner("fake", dev, SimpleNamespace(), [np.zeros(4, "float32")], timeout=5.0,
                   reopen=reopen)
    r.upload = lambda path: Path(path).name

    def lane_outputs(name, count):
        r.sess.log.append(("run", name))
        return [np.zeros(4, "float32")]

    def alive():
        if not r.sess.alive:
            raise DeviceUnavailableError("device fake was lost: gone")

    r.lane_outputs = lane_outputs
    r._alive = alive
    return r


def test_each_run_steps_through_the_lane_after_the_inputs_are_set():
    dev = _Device([0.001, 0.004, 0.003])
    r = _runner(dev)
    got = r.profile(Path("/x/one.tar"), _plan(), repeat=2)
    # one whole run on the real inputs first, then every position in lane order, twice
    assert dev.log == [("run", "one.tar")] + [("step", p) for p in (0, 1, 2)] * 2
    assert got == {"k_add": pytest.approx(0.002), "k_mul": pytest.approx(0.004)}
    r.close()


def test_a_device_with_time_steps_runs_the_lane_back_to_back_in_one_call():
    dev = _BatchDevice([0.001, 0.004, 0.003])
    r = _runner(dev)
    got = r.profile(Path("/x/one.tar"), _plan(), repeat=3)
    assert dev.log == [("run", "one.tar"), ("steps", 3)]  # no round trip per kernel
    # per position the median of its runs (x1, x2, x3), then per kernel over its positions
    assert got == {"k_add": pytest.approx(0.004), "k_mul": pytest.approx(0.008)}
    r.close()


def test_a_kernel_failing_in_the_batch_is_named_by_the_step_by_step_profile():
    dev = _BatchDevice([0.001] * 3, batch_fail=True, fail_at=1)
    r = _runner(dev, reopen=lambda: pytest.fail("not lost"))
    with pytest.raises(MeasureError, match=r"kernel k_mul \(step 1, b\)"):
        r.profile(Path("/x/one.tar"), _plan(), repeat=2)
    assert ("steps", 2) in dev.log and ("step", 1) in dev.log and r.reconnects == 0
    r.close()


def test_a_device_lost_in_the_batch_is_reopened_and_profiled_step_by_step():
    log = []
    first = _BatchDevice([0.001, 0.002, 0.003], batch_die=True, log=log)
    second = _BatchDevice([0.001, 0.002, 0.003], batch_die=True, log=log)
    r = _runner(first, reopen=lambda: second)
    got = r.profile(Path("/x/one.tar"), _plan(), repeat=1)
    assert r.reconnects == 1 and r.sess is second
    assert log == [("run", "one.tar"), ("steps", 1),
                   ("run", "one.tar"), ("step", 0), ("step", 1), ("step", 2)]
    assert got["k_mul"] == pytest.approx(0.002)
    r.close()


def test_a_device_lost_in_the_batch_and_again_names_the_kernel():
    r = _runner(_BatchDevice([0.001] * 3, batch_die=True),
                reopen=lambda: _BatchDevice([0.001] * 3, die_at=2))
    with pytest.raises(DeviceUnavailableError, match=r"lost while running kernel k_add "
                       r"\(step 2, c\)"):
        r.profile(Path("/x/one.tar"), _plan(), repeat=1)
    r.close()


def test_without_reopen_a_device_lost_in_the_batch_names_the_plan():
    r = _runner(_BatchDevice([0.001] * 3, batch_die=True))
    with pytest.raises(DeviceUnavailableError, match="one-lane plan's kernels back to back"):
        r.profile(Path("/x/one.tar"), _plan(), repeat=1)
    r.close()


def test_a_device_lost_while_profiling_is_reopened_once_and_profiled_again():
    log = []
    first = _Device([0.001, 0.002, 0.003], die_at=1, log=log)
    second = _Device([0.001, 0.002, 0.003], log=log)
    r = _runner(first, reopen=lambda: second)
    got = r.profile(Path("/x/one.tar"), _plan(), repeat=1)
    assert r.reconnects == 1 and r.sess is second
    assert log == [("run", "one.tar"), ("step", 0), ("step", 1),  # lost at position 1
                   ("run", "one.tar"), ("step", 0), ("step", 1), ("step", 2)]
    assert got["k_mul"] == pytest.approx(0.002)
    r.close()


def test_a_device_lost_twice_names_the_kernel_that_was_running():
    r = _runner(_Device([0.001] * 3, die_at=1),
                reopen=lambda: _Device([0.001] * 3, die_at=1))
    with pytest.raises(DeviceUnavailableError, match=r"lost while running kernel k_mul "
                       r"\(step 1, b\) of the one-lane plan"):
        r.profile(Path("/x/one.tar"), _plan(), repeat=1)
    assert r.reconnects == 1
    r.close()


def test_without_reopen_a_lost_device_is_an_error_at_once():
    r = _runner(_Device([0.001] * 3, die_at=2))
    with pytest.raises(DeviceUnavailableError, match="kernel k_add"):
        r.profile(Path("/x/one.tar"), _plan(), repeat=1)
    r.close()


def test_a_kernel_failing_on_a_live_device_is_a_measure_error_naming_it():
    r = _runner(_Device([0.001] * 3, fail_at=2), reopen=lambda: pytest.fail("not lost"))
    with pytest.raises(MeasureError, match=r"kernel k_add \(step 2, c\)") as info:
        r.profile(Path("/x/one.tar"), _plan(), repeat=1)
    assert not isinstance(info.value, DeviceUnavailableError) and r.reconnects == 0
    r.close()


# --------------------------------------------------------------------------------------------
# on a real device: a take on input ids (garbage until the inputs are set) and one on indices
# computed inside the block, whose arena bytes are reused later
_TAKE_MODEL = textwrap.dedent('''
    """Two embedding lookups: on input ids (valid only once the inputs are set) and on an
    argmax made in the block, whose arena bytes later steps reuse."""
    import numpy as np
    from tvm.script import ir as I, relax as R

    @I.ir_module
    class Module:
        @R.function
        def main(x: R.Tensor((8, 32), "float32"), ids: R.Tensor((4096,), "int64"),
                 table: R.Tensor((32, 64), "float32")):
            with R.dataflow():
                idx = R.argmax(x, axis=1)
                e0 = R.take(table, idx, axis=0)
                emb = R.take(table, ids, axis=0)
                e = R.add(e0, R.sum(emb, axis=0, keepdims=True))
                f = R.nn.relu(e)
                g = R.matmul(f, R.permute_dims(table))
                h = R.nn.softmax(g, axis=1)
                k = R.matmul(h, table)
                m = R.add(k, e)
                n = R.nn.relu(m)
                o = R.matmul(n, R.permute_dims(table))
                p = R.nn.softmax(o, axis=1)
                q = R.sum(p, axis=0)
                R.output(q)
            return q

    mod = Module
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((8, 32)).astype("float32"),
              rng.integers(0, 32, 4096).astype("int64"),
              rng.standard_normal((32, 64)).astype("float32")]
''')


@pytest.fixture(scope="module")
def take_model(tmp_path_factory):
    from tvm_sched.tune import load_model

    path = tmp_path_factory.mktemp("take") / "take_model.py"
    path.write_text(_TAKE_MODEL)
    return load_model(relax_file=str(path))


def _config(**kw):
    from tvm_sched.tune.tuner import TuneConfig

    base = dict(lanes=2, solvers=("list", "random-list"), solver_budget=0.3, samples=16,
                per_solver=2, top_k=2, repeats=3, min_repeat_ms=0.5)
    base.update(kw)
    return TuneConfig(**base)


def _index_bytes_reused(model) -> bool:
    """The one-lane plan puts the argmax's indices in the arena, and a later step writes
    over their bytes (the situation that made profiling on the arena after a run crash)."""
    from tvm_sched.runtime.builder import LaneKernels
    from tvm_sched.schedule import Schedule

    k = LaneKernels(model.mod, "llvm")
    n = k.graph.num_nodes
    plan = k.plan(Schedule(order=tuple(range(n)), lane=(0,) * n))
    idx = next(i for i, t in enumerate(plan.tensors) if t.dtype == "int64" and t.kind == "arena")
    lo, hi = plan.tensors[idx].offset, plan.tensors[idx].offset + plan.tensors[idx].nbytes
    first = next(k for k, st in enumerate(plan.steps) if idx in st.outputs)
    return plan.tensors[idx].kind == "arena" and any(
        plan.tensors[o].kind == "arena" and plan.tensors[o].offset < hi
        and plan.tensors[o].offset + plan.tensors[o].nbytes > lo
        for st in plan.steps[first + 1:] for o in st.outputs)


@pytest.mark.integration
@pytest.mark.rpc
def test_a_take_on_indices_made_in_the_block_profiles_and_tunes(take_model, tmp_path):
    from tvm_sched.tune import tune
    from tvm_sched.tune.devices import EmbeddedDevices

    assert _index_bytes_reused(take_model)  # the test is about this situation
    with EmbeddedDevices(lifetime=300) as runner:
        res = tune(take_model, "llvm", runner, tmp_path, _config())
    assert res.info["reconnects"] == 0  # the server never died
    bad = [(r.candidate, r.error) for r in res.records if r.error]
    assert not bad, bad
    times = json.loads((tmp_path / "lane_state.json").read_text())["kernel_times"]
    assert "take" in times and all(0 < v < 0.1 for v in times.values())


@pytest.mark.integration
@pytest.mark.rpc
def test_a_server_killed_while_profiling_is_restarted_and_the_run_finishes(
        take_model, tmp_path, monkeypatch):
    from tvm_sched.tune import tune
    from tvm_sched.tune.devices import EmbeddedDevices

    killed = []
    original = LaneRunner._profile_once

    def profile_once(self, path, plan, repeat, at, batched=False):
        if killed:
            assert not batched  # after the loss: step by step
            return original(self, path, plan, repeat, at, batched)
        real = self.sess

        class KillAtStep3:  # the session, but the server dies in the batch (or at position 3)
            def __getattr__(self, name):
                return getattr(real, name)

            def get_function(self, name):
                fn = real.get_function(name)

                def step(path, p):
                    if p == 3 and not killed:
                        killed.append(runner.server.pid)
                        os.killpg(runner.server.pid, signal.SIGKILL)
                    return fn(path, p)

                def steps(path, repeat):  # the server dies during the back-to-back runs
                    killed.append(runner.server.pid)
                    os.killpg(runner.server.pid, signal.SIGKILL)
                    return fn(path, repeat)

                return {rpc.TIME_STEP: step, rpc.TIME_STEPS: steps}.get(name, fn)

        self.sess = KillAtStep3()
        try:
            return original(self, path, plan, repeat, at, batched)
        finally:
            if self.sess.__class__ is KillAtStep3:
                self.sess = real

    monkeypatch.setattr(LaneRunner, "_profile_once", profile_once)
    with EmbeddedDevices(lifetime=300) as runner:
        res = tune(take_model, "llvm", runner, tmp_path, _config())
        assert killed and runner.server.pid != killed[0]  # restarted
    assert res.info["reconnects"] == 1
    assert res.best is not None and not [r for r in res.records if r.error]
    times = json.loads((tmp_path / "lane_state.json").read_text())["kernel_times"]
    assert times and all(v > 0 for v in times.values())


@pytest.mark.integration
@pytest.mark.rpc
def test_a_bert_with_token_ids_and_a_padding_mask_tunes_over_lanes(tmp_path):
    # transformers-style: int64 ids, token types and a mask as inputs; embedding takes
    from tvm_sched.tune import load_model, tune
    from tvm_sched.tune.devices import EmbeddedDevices

    model = load_model(model="bert")
    assert all(x.dtype == np.int64 for x in model.inputs)
    with EmbeddedDevices(lifetime=300) as runner:
        res = tune(model, "llvm", runner, tmp_path,
                   _config(lanes=min(2, num_cores())))
    assert res.info["reconnects"] == 0
    bad = [(r.candidate, r.error) for r in res.records if r.error]
    assert not bad, bad
    assert res.best is not None and (tmp_path / "best_lanes.tar").exists()
