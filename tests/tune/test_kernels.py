"""Kernel tuning (issue 22): the device target, the CPU name read over RPC, MetaSchedule on a
tiny model resumed from its database, the RPC runners (embedded server, tracker) and the CLI's
``--kernel-trials``.

The target and facts tests are fast; every test that tunes is in the slow tier and tunes a
module of one kernel (a matmul with its ReLU epilogue) with a handful of trials, except the CLI
test, which tunes the smallest zoo model.
"""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tvm

from tvm_sched.errors import TuneInputError
from tvm_sched.tune.kernels import (
    database_dir,
    device_facts,
    device_target,
    trials_done,
    tune_kernels,
)

LLVM = tvm.target.Target("llvm")
HOST_CPU = str(tvm.target.codegen.llvm_get_system_cpu())


def _records(path: Path) -> int:
    """Tuning records with a measured time in a JSON database directory (a failed measurement
    is recorded too, with 1e10 s: counting those hid an evaluator that failed on every RPC
    measurement)."""
    from tvm_sched.tune.kernels import valid_records

    return valid_records(Path(path))[0]


# --------------------------------------------------------------------------------------------
# device_target (fast)
def test_target_gets_the_device_cpu_and_the_thread_count():
    dt = device_target(LLVM, "skylake-avx512", 3)
    attrs = dict(dt.target.export())
    assert str(attrs["mcpu"]) == "skylake-avx512"
    assert int(attrs["num-cores"]) == 3
    assert (dt.cpu, dt.threads, dt.source) == ("skylake-avx512", 3, "device")


def test_the_targets_own_mcpu_wins_over_the_device():
    dt = device_target(tvm.target.Target({"kind": "llvm", "mcpu": "znver3"}), "skylake-avx512", 2)
    attrs = dict(dt.target.export())
    assert str(attrs["mcpu"]) == "znver3"
    assert int(attrs["num-cores"]) == 2
    assert (dt.cpu, dt.source) == ("znver3", "target")


def test_no_cpu_anywhere_is_generic_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="tvm_sched.tune.kernels"):
        dt = device_target(LLVM, None, 1)
    assert dt.source == "generic" and dt.cpu is None
    assert not dict(dt.target.export()).get("mcpu")
    assert int(dict(dt.target.export())["num-cores"]) == 1
    assert any("generic" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_a_device_cpu_gives_no_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="tvm_sched.tune.kernels"):
        device_target(LLVM, HOST_CPU, 1)
    assert not caplog.records


@pytest.mark.parametrize("threads", [0, -2])
def test_fewer_than_one_thread_is_an_input_error(threads):
    with pytest.raises(TuneInputError, match="at least one thread"):
        device_target(LLVM, HOST_CPU, threads)


def test_the_database_is_per_model_target_and_threads(tmp_path):
    one = device_target(LLVM, HOST_CPU, 1).target
    two = device_target(LLVM, HOST_CPU, 2).target
    a = database_dir(tmp_path, "m", one)
    assert a == database_dir(tmp_path, "m", one)
    assert a.parent == tmp_path / "kernels" and a.name.startswith("1t-")
    assert database_dir(tmp_path, "m", two).name.startswith("2t-")
    assert database_dir(tmp_path, "other", one) != a
    assert trials_done(a) == 0  # nothing there yet


def test_negative_trials_is_an_input_error_and_zero_tunes_nothing(tmp_path):
    target = device_target(LLVM, HOST_CPU, 1).target
    mod = tvm.IRModule()
    with pytest.raises(TuneInputError, match="--kernel-trials must be >= 0"):
        tune_kernels(mod, target, tmp_path, -1, model_hash="m")
    done = tune_kernels(mod, target, tmp_path, 0, model_hash="m")
    assert done.database is None and done.trials_now == 0
    assert not (tmp_path / "kernels").exists()


# --------------------------------------------------------------------------------------------
# the CPU name read over RPC
def test_facts_over_a_local_session():
    from tvm import rpc

    from tvm_sched.runtime import rpc as lane_rpc
    from tvm_sched.runtime.cores import num_cores

    lane_rpc.register()
    assert device_facts(rpc.LocalSession()) == (HOST_CPU, num_cores())


@pytest.mark.integration
@pytest.mark.rpc
def test_facts_over_the_embedded_server():
    from tvm_sched.runtime.cores import num_cores
    from tvm_sched.tune.devices import create_devices

    runner = create_devices("embedded")
    try:
        runner.prepare()
        [(name, session)] = runner.open()
        cpu, cores = device_facts(session)
        del session
    finally:
        runner.close()
    assert name == "embedded"
    assert cpu == HOST_CPU
    assert cores == num_cores()


# --------------------------------------------------------------------------------------------
# tuning a one-kernel model
@pytest.fixture(scope="module")
def tiny():
    """A model of one kernel: relu(x @ w + b) (no weight transform, so one MetaSchedule task)."""
    import torch

    from tvm_sched.relax.frontend import from_torch, prepare

    class MatmulRelu(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.w = torch.nn.Parameter(torch.randn(64, 32, generator=g))
            self.b = torch.nn.Parameter(torch.randn(32, generator=g))

        def forward(self, x):
            return torch.relu(x @ self.w + self.b)

    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    imported = from_torch(MatmulRelu(), (x,), name="matmul-relu")
    return imported, prepare(imported.mod)


def _tune(tiny, work, trials, runner, threads=1):
    _, mod = tiny
    target = device_target(LLVM, HOST_CPU, threads).target
    return tune_kernels(mod, target, work, trials, model_hash="matmul-relu", runner=runner,
                        timeout=30)


@pytest.fixture
def unnamed_handler():
    """A handler without a name on MetaSchedule's logger (as pytest attaches to every
    non-propagating logger): MetaSchedule's ``create_loggers`` failed on it."""
    lg = logging.getLogger("tvm.s_tir.meta_schedule")
    handler = logging.NullHandler()
    lg.addHandler(handler)
    try:
        yield handler
    finally:
        lg.removeHandler(handler)


@pytest.mark.integration
@pytest.mark.slow
def test_tuning_in_process_resumes_and_the_tuned_build_matches(tiny, tmp_path,
                                                               unnamed_handler):
    from tvm_sched.runtime.builder import LaneKernels
    from tvm_sched.tune.devices import InProcessDevices

    first = _tune(tiny, tmp_path, 8, InProcessDevices())
    assert first.tasks == 1 and first.trials_before == 0 and first.trials_now >= 8
    assert first.path == database_dir(tmp_path, "matmul-relu", first.target)
    assert first.database == first.path
    done = json.loads((first.path / "done.json").read_text())
    assert done["trials"] == 8 and done["tasks"] == 1
    records = _records(first.path)
    assert records > 0 and trials_done(first.path) >= 8

    # the same budget again: nothing is tuned, nothing is added
    again = _tune(tiny, tmp_path, 8, InProcessDevices())
    assert again.trials_now == 0 and again.trials_before == trials_done(first.path)
    assert again.seconds < 1.0
    assert _records(first.path) == records and again.database == first.path

    # a larger budget tunes only the difference
    before = trials_done(first.path)
    more = _tune(tiny, tmp_path, before + 4, InProcessDevices())
    assert more.trials_before == before
    assert 0 < more.trials_now <= 4
    assert _records(first.path) > records
    assert trials_done(first.path) >= before + 4
    # the tuning seconds of every run add up in done.json
    assert again.seconds_total == pytest.approx(first.seconds, abs=0.05)
    assert more.seconds_total == pytest.approx(first.seconds + more.seconds, abs=0.05)
    assert json.loads((first.path / "done.json").read_text())["seconds_total"] == \
        pytest.approx(more.seconds_total)

    # tuning left the logger's own handlers where they were
    assert unnamed_handler in logging.getLogger("tvm.s_tir.meta_schedule").handlers

    # the database applies: the kernel is the tuned one (a schedule of its own) ...
    from tvm_sched.runtime.builder import apply_database

    imported, mod = tiny
    applied = apply_database(mod, first.target, first.path)
    kernels = [applied[gv] for gv in applied.get_global_vars()
               if gv.name_hint in _callees(applied, "main")
               and isinstance(applied[gv], tvm.tirx.PrimFunc)]
    assert kernels and all(k.attrs.get("tirx.is_scheduled") for k in kernels)
    assert not any(f.attrs is not None and f.attrs.get("tirx.is_scheduled")
                   for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc))
    # ... whose weight is packed once, at load: main calls no layout rewrite, the chained
    # main_transform_params does
    prepacks = {gv.name_hint for gv in applied.get_global_vars()
                if gv.name_hint.endswith("_weight_prepack")}
    assert prepacks, "the tuned matmul reads its weight in a layout of its own"
    assert not prepacks & _callees(applied, "main")
    assert prepacks <= _callees(applied, "main_transform_params")
    # ... and it computes what the untuned one does
    tuned = LaneKernels(mod, first.target, params=imported.params, database=first.path)
    plain = LaneKernels(mod, first.target, params=imported.params)
    got, want = tuned.reference(*imported.inputs), plain.reference(*imported.inputs)
    assert len(got) == len(want) == 1
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[0], imported.reference[0], rtol=1e-5, atol=1e-4)


def _callees(mod, name: str) -> set[str]:
    """The names of the functions ``mod[name]`` calls, directly or through Relax functions."""
    from tvm import relax

    found, todo, calls = set(), [name], []

    def visit(expr):
        if isinstance(expr, relax.Call):
            calls.append(expr)

    while todo:
        calls.clear()
        relax.analysis.post_order_visit(mod[todo.pop()].body, visit)
        for call in list(calls):
            for part in [call.op, *call.args]:
                if isinstance(part, tvm.ir.GlobalVar) and part.name_hint not in found:
                    found.add(part.name_hint)
                    if isinstance(mod[part], relax.Function):
                        todo.append(part.name_hint)
    return found


@pytest.fixture(scope="module")
def three():
    """A model of three kernels of very different cost: a large and a small matmul, each with
    its epilogue, and a softmax."""
    import torch

    from tvm_sched.relax.frontend import from_torch, prepare

    class Three(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.big = torch.nn.Parameter(torch.randn(256, 256, generator=g))
            self.small = torch.nn.Parameter(torch.randn(256, 8, generator=g))

        def forward(self, x):
            return torch.softmax(torch.relu(x @ self.big) @ self.small, dim=-1)

    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(1))
    return prepare(from_torch(Three(), (x,), name="three").mod)


def test_the_heaviest_kernels_are_tuned_first(three):
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    from tvm_sched.tune.kernels import _heaviest_first

    target = device_target(LLVM, HOST_CPU, 1).target
    tasks = ms.relax_integration.extract_tasks(three, target)
    assert len(tasks) == 3
    order = [t.task_name for t in _heaviest_first(tasks)]
    assert "matmul" in order[0] and "softmax" not in order[0]
    flops = [float(t.weight) * float(estimate_tir_flops(t.dispatched[0]))
             for t in _heaviest_first(tasks)]
    assert flops == sorted(flops, reverse=True) and flops[0] > 10 * flops[-1]


@pytest.mark.parametrize("todo,tasks", [(1, 1), (2, 3), (60, 53), (160, 53), (200, 14),
                                        (360, 14), (5000, 17), (10**6, 3)])
def test_a_round_for_every_kernel_then_about_four_rounds_each(todo, tasks):
    from tvm_sched.tune.kernels import ROUNDS_PER_KERNEL, trials_per_round

    per = trials_per_round(todo, tasks)
    assert 1 <= per <= 64
    if todo >= tasks:  # the first round reaches every kernel ...
        assert per * tasks <= todo
    if todo >= 4 * ROUNDS_PER_KERNEL * tasks and per < 64:  # ... and leaves rounds to steer
        assert todo // (per * tasks) >= ROUNDS_PER_KERNEL - 1


@pytest.mark.integration
@pytest.mark.slow
def test_a_budget_of_one_trial_per_kernel_tunes_every_kernel(three, tmp_path, caplog):
    """The budget is spread over every kernel before any gets a second round (a round of 64 on
    the first task once left most of a model's kernels untuned)."""
    from tvm_sched.tune.devices import InProcessDevices

    target = device_target(LLVM, HOST_CPU, 1).target
    result = tune_kernels(three, target, tmp_path, 3, model_hash="three",
                          runner=InProcessDevices(), timeout=30)
    assert result.tasks == 3
    measured = set()
    with (result.path / "database_tuning_record.json").open() as f:
        for line in f:
            workload, (_, secs, *_rest) = json.loads(line)
            if secs and all(float(s) < 1e9 for s in secs):
                measured.add(workload)
    assert len(measured) == 3
    # a budget below one trial per kernel says which stay untuned
    with caplog.at_level(logging.WARNING, logger="tvm_sched.tune.kernels"):
        tune_kernels(three, target, tmp_path / "less", 2, model_hash="three",
                     runner=InProcessDevices(), timeout=30)
    assert "the 1 lightest stay untuned" in caplog.text


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.rpc
def test_tuning_on_the_embedded_server(tiny, tmp_path):
    from tvm_sched.tune.devices import EmbeddedDevices

    runner = EmbeddedDevices(lifetime=300)
    try:
        runner.prepare()
        sessions = runner.open()  # the address; the session is let go (one client at a time)
        del sessions
        gc.collect()
        result = _tune(tiny, tmp_path, 4, runner)
    finally:
        runner.close()
    assert result.trials_now >= 4
    assert _records(result.path) > 0
    assert (result.path / "done.json").exists()


@pytest.fixture
def tracker():
    pytest.importorskip("tornado")  # the tracker needs the rpc extra
    from tvm.rpc.tracker import Tracker

    tr = Tracker(host="127.0.0.1", port=9190, port_end=9390, silent=True)
    try:
        yield tr
    finally:
        tr.terminate()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.rpc
def test_tuning_through_a_tracker(tiny, tmp_path, tracker):
    from tvm_sched.tune import TrackerDevices
    from tvm_sched.tune.server import EmbeddedServer

    server = EmbeddedServer(tracker=("127.0.0.1", tracker.port), key="kernel-test",
                            lifetime=300).start()
    try:
        runner = TrackerDevices(("127.0.0.1", tracker.port), "kernel-test", wait=60)
        result = _tune(tiny, tmp_path, 4, runner)
    finally:
        server.stop()
    assert result.trials_now >= 4
    assert _records(result.path) > 0
    assert (result.path / "done.json").exists()


def test_a_runner_kernel_tuning_cannot_measure_on_is_an_input_error():
    from tvm_sched.tune.kernels import measure_runner

    class PaperRunner:  # no host, no port, not in-process
        pass

    with pytest.raises(TuneInputError, match="cannot measure on a PaperRunner"):
        measure_runner(PaperRunner(), 1)


# --------------------------------------------------------------------------------------------
# the command line
def _kernel_records(work: Path) -> dict[str, int]:
    return {d.name: _records(d) for d in sorted((work / "kernels").iterdir())}


@pytest.mark.integration
@pytest.mark.slow
def test_cli_tunes_kernels_once_and_resumes(tmp_path, capsys):
    from tvm_sched.cli import main

    work = tmp_path / "w"
    argv = ["tune", "--model", "inception", "--lanes", "2", "--kernel-trials", "8",
            "--in-process", "--repeats", "2", "--min-repeat-ms", "1", "--solver-budget", "0.5",
            "--samples", "16", "--solvers", "list", "--quiet", "--work-dir", str(work)]
    assert main(argv) == 0, capsys.readouterr()
    first_out = capsys.readouterr().out
    first = json.loads((work / "summary.json").read_text())
    records = _kernel_records(work)
    assert records and all(n > 0 for n in records.values())
    tuning = _find(first, "kernel_tuning")
    assert tuning and all(d["trials"] == 8 and d["trials_now"] >= 8
                          for d in tuning["databases"].values())
    assert tuning["cpu"] == HOST_CPU

    assert main(argv) == 0, capsys.readouterr()
    second_out = capsys.readouterr().out
    second = json.loads((work / "summary.json").read_text())
    assert _kernel_records(work) == records  # nothing tuned twice
    tuning = _find(second, "kernel_tuning")
    assert all(d["trials_now"] == 0 and d["trials_before"] >= 8
               for d in tuning["databases"].values())
    # the printed kernels line says what ran (rich wraps long lines: compare words)
    first_out, second_out = " ".join(first_out.split()), " ".join(second_out.split())
    assert "Kernels tuned on the device for CPU" in first_out
    assert "(0 run now" not in first_out
    assert "Kernels tuned on the device for CPU" in second_out
    assert second_out.count("(0 run now") == len(records)


def _find(tree, key):
    """The value of ``key`` anywhere in a JSON tree, or None."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            found = _find(item, key)
            if found is not None:
                return found
    return None


def test_cli_negative_kernel_trials_is_one_line_exit_2(tmp_path, capsys):
    from tvm_sched.cli import main

    work = tmp_path / "w"
    rc = main(["tune", "--model", "inception", "--lanes", "2", "--kernel-trials", "-1",
               "--work-dir", str(work)])
    err = capsys.readouterr().err
    assert rc == 2 and "--kernel-trials" in err and len(err.strip().splitlines()) == 1, err
    assert not work.exists()


def test_kernels_that_run_once_at_load_are_not_tuned():
    """BatchNorm folded into the weights is computed by ``main_transform_params`` once per
    load: its kernels are not tasks, every kernel ``main`` calls still is, and the module
    itself is left as it was."""
    import torch
    from tvm.s_tir import meta_schedule as ms

    from tvm_sched.relax.frontend import from_torch, prepare
    from tvm_sched.tune.kernels import per_call_part

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                torch.nn.ReLU()).eval()
    mod = prepare(from_torch(model, (torch.randn(1, 3, 8, 8),), name="cbr").mod)
    target = device_target(LLVM, HOST_CPU, 1).target
    everything = ms.relax_integration.extract_tasks(mod, target)
    per_call = ms.relax_integration.extract_tasks(per_call_part(mod), target)
    assert len(per_call) == 1 and per_call[0].task_name.startswith("fused_conv2d")
    assert len(everything) > len(per_call)  # the weight arithmetic's kernels
    assert "main_transform_params" in [gv.name_hint for gv in mod.get_global_vars()]
    plain = per_call_part(mod)
    assert per_call_part(plain) is plain  # nothing to drop: the same module


def test_the_single_device_runner_returns_only_measured_batches():
    """MetaSchedule searches and builds the next task while a batch is measured; on one device
    (this machine) :func:`kernels._exclusive` makes ``run`` return only once every measurement
    of the batch is done, so nothing shares the cores with a kernel being timed."""
    import concurrent.futures as cf
    import time

    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.runner import PyRunnerFuture, RunnerInput, RunnerResult

    from tvm_sched.tune import kernels

    @derived_object
    class _Late(PyRunnerFuture):
        def __init__(self, fut):
            super().__init__()
            self.fut = fut

        def done(self):
            return self.fut.done()

        def result(self):
            return RunnerResult([self.fut.result()], None)

    pool = cf.ThreadPoolExecutor(2)

    class _Async:
        def run(self, inputs):
            return [_Late(pool.submit(lambda i=i: time.sleep(0.2 + 0.1 * i) or 1e-3))
                    for i, _ in enumerate(inputs)]

    inputs = [RunnerInput(f"a{i}.so", "llvm", []) for i in range(3)]
    assert not any(f.done() for f in _Async().run(inputs))  # the plain runner returns at once
    t0 = time.monotonic()
    futures = kernels._exclusive(_Async()).run(inputs)
    assert time.monotonic() - t0 >= 0.4
    assert len(futures) == 3 and all(f.done() for f in futures)
    assert [[float(x) for x in f.result().run_secs] for f in futures] == [[pytest.approx(1e-3)]] * 3
    pool.shutdown()


# --------------------------------------------------------------------------------------------
# the lanes' database starts from the VM kernels' fastest schedules
def _traces(path: Path, target=None) -> list[str]:
    """The traces (as JSON text) of a database's measured records, fastest first, optionally
    only those timed for ``target``'s thread count."""
    from tvm.s_tir import meta_schedule as ms

    from tvm_sched.tune.kernels import target_threads

    db = ms.database.JSONDatabase(work_dir=str(path), allow_missing=False)
    out = []
    for rec in db.get_all_tuning_records():
        secs = [float(s) for s in (rec.run_secs or [])]
        if not secs or max(secs) >= 1e9:
            continue
        if target is not None and target_threads(rec.target) != target_threads(target):
            continue
        out.append((sum(secs) / len(secs), str(rec.trace.as_json())))
    return [t for _, t in sorted(out)]


@pytest.mark.integration
@pytest.mark.slow
def test_the_lane_database_starts_from_the_vm_kernels_fastest_schedules(tiny, tmp_path):
    from tvm_sched.tune.devices import InProcessDevices
    from tvm_sched.tune.kernels import SEEDS_PER_KERNEL, prepare_kernels

    _, mod = tiny
    ks = prepare_kernels(mod, LLVM, HOST_CPU, {2, 1}, work=tmp_path, trials=8, lane_trials=5,
                         model_hash="matmul-relu", runner=InProcessDevices(), timeout=30)
    vm, lane = ks.tunings[2], ks.tunings[1]
    assert vm.trials == 8 and vm.seeded == 0  # the anchor's own search
    assert lane.trials == 5 and lane.seeded == SEEDS_PER_KERNEL == 2
    assert lane.trials_now >= 5
    # the VM's two fastest schedules are in the lanes' database, timed with one thread
    best_vm = _traces(vm.path)[:SEEDS_PER_KERNEL]
    lane_traces = _traces(lane.path, lane.target)
    assert len(best_vm) == 2 and set(best_vm) <= set(lane_traces)
    assert len(lane_traces) == len(_traces(lane.path))  # nothing timed for another count
    assert ks.describe()["databases"]["1"]["seeded"] == 2

    # resumed: nothing tuned, nothing seeded again
    again = prepare_kernels(mod, LLVM, HOST_CPU, {2, 1}, work=tmp_path, trials=8,
                            lane_trials=5, model_hash="matmul-relu", runner=InProcessDevices())
    assert again.tunings[1].trials_now == again.tunings[2].trials_now == 0
    assert again.tunings[1].seeded == 0


@pytest.mark.integration
@pytest.mark.slow
def test_a_source_without_records_seeds_nothing(tiny, tmp_path):
    from tvm_sched.tune.devices import InProcessDevices

    _, mod = tiny
    target = device_target(LLVM, HOST_CPU, 1).target
    empty = tmp_path / "nothing-here"
    done = tune_kernels(mod, target, tmp_path, 2, model_hash="matmul-relu",
                        runner=InProcessDevices(), timeout=30, start_from=empty)
    assert done.seeded == 0 and done.trials_now >= 2 and _records(done.path) > 0


@pytest.mark.parametrize("bad", [-1, True, 2.5])
def test_lane_kernel_trials_must_be_a_count(bad):
    from tvm_sched.tune import TuneConfig

    with pytest.raises(TuneInputError, match="--lane-kernel-trials must be an integer >= 0"):
        TuneConfig(lanes=2, lane_kernel_trials=bad).check()
