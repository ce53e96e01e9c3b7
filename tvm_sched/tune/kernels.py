"""Kernel tuning with TVM's MetaSchedule, measured on the tuner's own devices.

Contract
--------
:func:`device_target` turns the user's target into the one kernels are built for: the device's
own CPU (``mcpu``: LLVM's name for it, asked over the session with
``target.llvm_get_system_cpu``) and the threads the kernels will run with (``num-cores``).
A target the device cannot name a CPU for stays generic, and :class:`DeviceTarget` says so
(the report prints it): without ``mcpu`` LLVM emits generic x86-64 code, a silent ~1.7× loss.

:func:`tune_kernels` tunes the module's fused TIR kernels with MetaSchedule (tasks from
``relax_integration.extract_tasks``, the gradient task scheduler, evolutionary search, the
xgboost cost model) into a JSON database under the work dir, one database per model, target
and thread count (:func:`database_dir`). It is resumable: every measured trial is in the
database as soon as it completes, a finished tuning writes ``done.json``, and a later run with
the same or a smaller budget tunes nothing; a larger budget tunes only the difference (the
search starts from the records already there). ``trials == 0`` tunes nothing (the untuned
kernels). The database is applied by :class:`tvm_sched.runtime.builder.LaneKernels`
(``database=``), so the exported ``best.so`` / ``best_lanes.tar`` carry the tuned kernels and
load without it. The kernels are tuned with their weights *layout free*
(:mod:`tvm_sched.relax.prepack`): a schedule may read a weight in a layout of its own, packed
once at load by ``main_transform_params``.

Measurement runs on the same device(s) as the rest of the run, through MetaSchedule's own
runners: ``RPCRunner`` against the tvm_sched server (embedded or ``--rpc-server``; a session
factory connects straight to it) or the RPC tracker (TVM's distributed engine: a farm of
devices measures in parallel, one worker per free device), ``LocalRunner`` for the in-process
runner. Each measurement first sizes the device's thread pool to the kernels' thread count
(``runtime.config_threadpool``), so kernels are timed with the threads they will run with. On
one device (embedded server, ``--rpc-server``, in-process) the runner returns only once its
batch is measured (:func:`_exclusive`): MetaSchedule would otherwise search and build the next
task while the kernel is timed, on the same cores when the device is this machine (a farm
behind a tracker keeps the overlap: its devices are other machines).

Builder: MetaSchedule's ``LocalBuilder`` starts a fresh process pool for every batch (each
worker imports TVM again: ~23 s per batch on two cores, more than the builds). Kernels are
therefore built by :func:`PersistentBuilder`, a small ``PyBuilder`` (the C++ task scheduler
calls it, which is what TVM's ``derived_object`` exists for) over one TVM ``PopenPoolExecutor``
kept for the whole tuning: the workers import TVM once, and a build that runs past its time
limit (LLVM on a heavily unrolled candidate can take minutes) is a failed candidate, its worker
replaced. Building in the tuner's own process was tried first and hung for minutes on such a
candidate, with nothing to stop it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tvm

from tvm_sched.console import filtered_stderr
from tvm_sched.errors import MeasureError, TuneInputError, one_line
from tvm_sched.relax.prepack import mark_layout_free

__all__ = ["DeviceTarget", "KernelTuning", "device_target", "database_dir", "tune_kernels",
           "trials_per_round", "per_call_part", "PersistentBuilder", "measure_runner",
           "trials_done", "target_threads"]

log = logging.getLogger(__name__)

#: What a database's kernels are tuned as, in its directory's name: kernels whose weights are
#: layout free (:mod:`tvm_sched.relax.prepack`). A record matches only kernels marked the same,
#: so a database from before the marks (unmarked kernels) is not reused.
KERNEL_FORM = "layout-free"

#: Population of the evolutionary search (TVM's default 512 costs minutes of cost-model
#: scoring per round on two cores; 64 found the same kernels on the zoo models).
POPULATION = 64


# --------------------------------------------------------------------------------------------
# the target
@dataclass(frozen=True)
class DeviceTarget:
    """A target for the device's own CPU and a thread count.

    Attributes
    ----------
    target
        The target kernels are built and tuned for.
    cpu
        LLVM's name for the device's CPU (``mcpu``), or None when the device did not say and
        the target given has none (then the code is generic).
    threads
        Threads the kernels run with (``num-cores``).
    source
        Where ``cpu`` came from: ``"target"`` (given), ``"device"`` (asked) or ``"generic"``.
    """

    target: tvm.target.Target
    cpu: str | None
    threads: int
    source: str


def _device_cpu(session) -> str | None:
    """LLVM's name for the CPU on the other end of ``session``, or None."""
    try:
        fn = session.get_function("target.llvm_get_system_cpu")
        return str(fn()) if fn is not None else None
    except Exception:  # noqa: BLE001 - a runtime-only server has no LLVM: no name
        return None


def device_target(target: tvm.target.Target, cpu: str | None, threads: int) -> DeviceTarget:
    """``target`` for a device whose CPU LLVM calls ``cpu``: ``mcpu`` = ``cpu`` (unless the
    target sets one) and ``num-cores`` = ``threads``.

    Parameters
    ----------
    target
        The user's target (an LLVM CPU target).
    cpu
        The device's CPU (:func:`device_facts`), or None when it did not say.
    threads
        Threads the kernels will run with.

    Returns
    -------
    DeviceTarget
        ``source == "generic"`` when neither the target nor the device names a CPU.

    Raises
    ------
    TuneInputError
        ``threads`` < 1.
    """
    if threads < 1:
        raise TuneInputError(f"kernels need at least one thread, got {threads}")
    attrs = dict(target.export())
    if target.kind.name != "llvm":
        return DeviceTarget(target, None, threads, "generic")
    given = str(attrs.get("mcpu") or "") or None
    cpu = given or cpu
    spec: dict[str, Any] = {"kind": "llvm", "num-cores": int(threads)}
    for key in ("mtriple", "mattr", "mabi", "opt-level", "fast-math", "tag"):
        if attrs.get(key) not in (None, "", [], 0) and key != "tag":
            spec[key] = attrs[key]
    if cpu:
        spec["mcpu"] = cpu
    source = "target" if given else ("device" if cpu else "generic")
    if source == "generic":
        log.warning("the device did not name its CPU and the target has no mcpu: kernels are "
                    "generic x86-64 code (often ~1.7x slower); give --target with mcpu")
    return DeviceTarget(tvm.target.Target(spec), cpu, int(threads), source)


# --------------------------------------------------------------------------------------------
# where the records go
def target_threads(target: tvm.target.Target | None) -> int | None:
    """The threads a target's kernels are built for: its ``num-cores`` (:func:`device_target`
    sets it), ``None`` when it has none.

    Parameters
    ----------
    target
        A target, or ``None``.

    Returns
    -------
    int or None
    """
    cores = target.attrs.get("num-cores") if target is not None else None
    return int(cores) if cores else None


def database_dir(work: Path, model_hash: str, target: tvm.target.Target) -> Path:
    """The JSON database of one model, target (CPU and thread count included) and TVM version
    under ``work/kernels``.

    Parameters
    ----------
    work
        The tuning work dir.
    model_hash
        Identifies the model.
    target
        The device target (:func:`device_target`); its ``num-cores`` starts the name.

    Returns
    -------
    Path
        ``work/kernels/<threads>t-<digest>`` (not created here).
    """
    text = json.dumps([model_hash, str(target), tvm.__version__, KERNEL_FORM])
    threads = target_threads(target) or 0
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    return Path(work) / "kernels" / f"{threads}t-{digest}"


def _database(path: Path):
    from tvm.s_tir import meta_schedule as ms

    path.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(work_dir=str(path), allow_missing=True)


def valid_records(path: Path) -> tuple[int, int]:
    """Records with a measured time, and all records, of a database directory (a failed
    measurement is recorded too, with MetaSchedule's 1e10 s).

    Parameters
    ----------
    path
        The database directory.

    Returns
    -------
    (int, int)
        Measured records, records.
    """
    good = total = 0
    records = Path(path) / "database_tuning_record.json"
    if records.exists():
        with records.open() as f:
            for line in f:
                if not line.strip():
                    continue
                total += 1
                try:
                    secs = json.loads(line)[1][1]
                except (ValueError, IndexError, TypeError):
                    continue
                good += bool(secs) and all(float(s) < 1e9 for s in secs)
    return good, total


def trials_done(path: Path) -> int:
    """Trials a database directory holds: the budget of a finished tuning (``done.json``) or,
    for an interrupted one, the records committed so far.

    Parameters
    ----------
    path
        A database directory (:func:`database_dir`); it need not exist.

    Returns
    -------
    int
        The larger of the two counts; 0 for a missing or empty directory.
    """
    done = 0
    try:
        done = int(json.loads((Path(path) / "done.json").read_text())["trials"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    records = Path(path) / "database_tuning_record.json"
    if records.exists():
        with records.open("rb") as f:
            done = max(done, sum(1 for line in f if line.strip()))
    return done


# --------------------------------------------------------------------------------------------
# builder and runner
def _build_one(mod, target):
    import tvm.s_tir.tensor_intrin  # noqa: F401 - registers the intrinsics schedules use
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock
    from tvm.support.tar import tar

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    built = tvm.tirx.build(mod, target=target) if hasattr(tvm, "tirx") and hasattr(
        tvm.tirx, "build") else tvm.compile(mod, target=target)
    path = os.path.join(tempfile.mkdtemp(prefix="tvm_sched_ms_"), "kernel." + tar.output_format)
    built.export_library(path, fcompile=tar)
    return path


def _make_builder(on_batch: Callable[[int], None] | None, workers: int, timeout: float):
    import concurrent.futures as cf

    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.support.popen_pool import PopenPoolExecutor

    @derived_object
    class _PersistentBuilder(PyBuilder):
        def __init__(self):
            super().__init__()
            self.pool = None

        def build(self, build_inputs):
            if self.pool is None:
                self.pool = PopenPoolExecutor(max_workers=workers, timeout=timeout)
            futs = [self.pool.submit(_build_one, inp.mod, inp.target) for inp in build_inputs]
            results = []
            for fut in futs:
                try:
                    results.append(BuilderResult(fut.result(), None))
                except (TimeoutError, cf.TimeoutError):
                    results.append(BuilderResult(None, f"build timed out after {timeout:.0f} s"))
                except Exception as err:  # noqa: BLE001 - a candidate that fails is a result
                    results.append(BuilderResult(None, one_line(err, limit=300)))
            if on_batch is not None:
                on_batch(len(build_inputs))
            return results

    return _PersistentBuilder()


def PersistentBuilder(on_batch: Callable[[int], None] | None = None, *,  # noqa: N802
                      workers: int = 2, timeout: float = 60.0):
    """A MetaSchedule builder whose worker processes live for the whole tuning (see the module
    docstring); a build over ``timeout`` seconds (LLVM on a heavily unrolled candidate) is a
    failed candidate and its worker is replaced; ``on_batch(n)`` after each batch of ``n``.

    Parameters
    ----------
    on_batch
        Called with the number of candidates after each batch is built (None: nothing).
    workers
        Worker processes building at once (started with the first batch).
    timeout
        Seconds one build may take.

    Returns
    -------
    tvm.s_tir.meta_schedule.builder.PyBuilder
        The builder; a build that fails or times out is a ``BuilderResult`` with its error,
        never raised.
    """
    return _make_builder(on_batch, workers, timeout)


def _threads_then_evaluate(threads, session, rt_mod, device, evaluator_config, repeated_args):
    """RPCRunner's evaluator: the device's thread pool sized to ``threads``, then MetaSchedule's
    own timing."""
    from tvm.s_tir.meta_schedule.runner.utils import run_evaluator_common

    from tvm_sched.runtime import rpc

    try:  # an int crosses the wire; the CPU list runtime.config_threadpool needs does not
        fn = session.get_function(rpc.CONFIG_THREADS)
    except Exception:  # noqa: BLE001 - a plain TVM server: its pool as it comes
        fn = None
    if fn is not None:
        fn(int(threads))
    return run_evaluator_common(rt_mod, device, evaluator_config, repeated_args)


def _uncap_pool() -> None:
    """LocalRunner's worker initializer: TVM caps each thread's pool at ``TVM_NUM_THREADS`` when
    the thread first runs a kernel, and the worker inherits that from the tuner's process (a
    script that set it to 1 would tune "2-thread" kernels on one thread); the cap becomes every
    usable core, :func:`_threads_then_evaluate_local` sizes the pool."""
    import os

    from tvm_sched.runtime.cores import num_cores

    os.environ["TVM_NUM_THREADS"] = str(num_cores())


def _threads_then_evaluate_local(threads, rt_mod, device, evaluator_config, repeated_args):
    """LocalRunner's evaluator: this worker's thread pool sized, then MetaSchedule's timing."""
    from tvm.s_tir.meta_schedule.runner.utils import run_evaluator_common

    from tvm_sched.runtime.rpc import config_threads

    config_threads(threads)
    return run_evaluator_common(rt_mod, device, evaluator_config, repeated_args)


def _connect(host: str, port: int, key: str, timeout: float, _rpc_config):
    """RPCRunner's session factory for one server (no tracker in between)."""
    from tvm import rpc

    return rpc.connect(host, port, key="" if key in ("local", f"{host}:{port}") else key,
                       session_timeout=timeout)


def _exclusive(inner):
    """``inner`` (a MetaSchedule runner) whose ``run`` returns only once its measurements are
    done.

    MetaSchedule's task scheduler sends a batch to the runner and, while those measurements
    run, searches and builds the next task's candidates. When the device is the machine that
    tunes (the embedded server, an in-process runner), that search and those builds take cores
    from the kernel being timed: on two cores, the bench resnet's VM ran 3.80 ms on kernels
    tuned for 2 threads that way, 2.26 ms on kernels tuned with this wrapper (same 320
    trials). Waiting costs the overlap and makes every timing one taken with nothing else
    running.
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.runner import PyRunner

    @derived_object
    class _ExclusiveRunner(PyRunner):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def run(self, runner_inputs):
            futures = self.inner.run(runner_inputs)
            for f in futures:
                f.result()  # the results are kept: the scheduler's own result() returns them
            return futures

    return _ExclusiveRunner()


def measure_runner(runner, threads: int, *, timeout: float = 60.0, number: int = 3,
                   repeat: int = 1, min_repeat_ms: float = 40.0, workers: int | None = None):
    """MetaSchedule's runner for the devices of a tvm_sched ``runner`` (see the module
    docstring).

    Parameters
    ----------
    runner
        A :class:`tvm_sched.tune.devices.base.Devices` (embedded, server, tracker or in-process).
    threads
        Threads each kernel is timed with.
    timeout
        Seconds a measurement may take.
    number, repeat, min_repeat_ms
        MetaSchedule's evaluator settings.
    workers
        Parallel measurements (tracker: the free devices; otherwise 1).

    Returns
    -------
    tvm.s_tir.meta_schedule.runner.Runner

    Raises
    ------
    TuneInputError
        A runner kind kernel tuning cannot measure on.
    """
    from tvm.s_tir.meta_schedule import runner as msr

    evaluator = msr.EvaluatorConfig(number=number, repeat=repeat,
                                    min_repeat_ms=int(min_repeat_ms),
                                    enable_cpu_cache_flush=False)
    from tvm_sched.tune.devices import InProcessDevices, TrackerDevices

    if isinstance(runner, InProcessDevices):
        return _exclusive(msr.LocalRunner(
            timeout_sec=timeout, evaluator_config=evaluator, initializer=_uncap_pool,
            f_run_evaluator=functools.partial(_threads_then_evaluate_local, threads)))
    f_eval = functools.partial(_threads_then_evaluate, threads)
    if isinstance(runner, TrackerDevices):
        config = msr.RPCConfig(tracker_host=runner.host, tracker_port=runner.port,
                               tracker_key=runner.key, session_priority=1,
                               session_timeout_sec=int(timeout))
        return msr.RPCRunner(config, evaluator, f_run_evaluator=f_eval,
                             max_workers=max(1, workers or 1))
    if hasattr(runner, "host") and getattr(runner, "port", None) is not None:
        # RPCConfig insists on tracker fields; the session factory connects to the server
        config = msr.RPCConfig(tracker_host=runner.host, tracker_port=int(runner.port),
                               tracker_key="server", session_priority=1,
                               session_timeout_sec=int(timeout))
        return _exclusive(msr.RPCRunner(config, evaluator, max_workers=1, f_run_evaluator=f_eval,
                                        f_create_session=functools.partial(
                                            _connect, runner.host, int(runner.port),
                                            runner.key, int(timeout))))
    raise TuneInputError(f"kernel tuning cannot measure on a {type(runner).__name__}: use the "
                         "embedded server, --rpc-server or --rpc-tracker")


# --------------------------------------------------------------------------------------------
# seeding one thread count's search with another's schedules
#: Schedules per kernel taken from the database of another thread count (its fastest first).
SEEDS_PER_KERNEL = 2


def seed_from(tasks, source: Path, target: tvm.target.Target, database, builder, runner,
              per_task: int = SEEDS_PER_KERNEL) -> int:
    """Measure, for ``target``, the ``per_task`` fastest schedules the database at ``source``
    (the same model's kernels tuned for another thread count) holds for each task, and commit
    them to ``database``: real trials of this thread count, timed with its threads.

    A kernel's best schedule for t threads is most of a good one for another thread count (the
    tiles, the vectorized and unrolled loops; the parallel loop runs on whatever pool it gets),
    so the evolutionary search of this thread count, which starts from the database's fastest
    records, begins from schedules another search took hundreds of trials to find instead of
    random ones. Schedules that fail to build or run here are committed as failed (MetaSchedule's
    1e10 s), as its own failed trials are. Measured on the bench resnet (znver4, 1-thread VM on
    each database, interleaved): 320 seeded trials 6.18 ms, 320 unseeded 6.23 ms; 96 seeded
    trials (100 s) 6.57-6.76 ms against 6.03-6.23 ms for 320 unseeded (238 s). So it is no gain at
    the same budget, and a smaller budget for the lanes costs their kernels 3-9%.

    Parameters
    ----------
    tasks
        MetaSchedule's extracted tasks (``task.dispatched[0]`` is the kernel's module).
    source
        A database directory of another thread count (:func:`database_dir`).
    target
        This thread count's device target.
    database
        This thread count's database (MetaSchedule ``Database``).
    builder, runner
        MetaSchedule's builder and runner of this tuning.
    per_task
        Schedules per task (fewer where the source has fewer).

    Returns
    -------
    int
        Schedules measured (0 when the source holds none of these kernels).
    """
    from tvm.s_tir import Schedule
    from tvm.s_tir import meta_schedule as ms

    if per_task < 1 or not (Path(source) / "database_tuning_record.json").exists():
        return 0
    src = ms.database.JSONDatabase(work_dir=str(source), allow_missing=False)
    picked = []  # (kernel module, record, scheduled module)
    for task in tasks:
        mod = task.dispatched[0]
        if not src.has_workload(mod):
            continue
        for rec in src.get_top_k(src.commit_workload(mod), per_task):
            sch = Schedule(mod)
            try:
                rec.trace.apply_to_schedule(sch, remove_postproc=False)
            except Exception:  # noqa: BLE001 - a trace that no longer applies is no seed
                continue
            picked.append((mod, rec, sch.mod))
    if not picked:
        return 0
    built = builder.build([ms.builder.BuilderInput(m, target) for _, _, m in picked])
    ran = [i for i, b in enumerate(built) if b.error_msg is None]
    futures = runner.run([ms.runner.RunnerInput(built[i].artifact_path, "cpu",
                                                picked[i][1].args_info) for i in ran])
    secs = {i: [1e10] for i in range(len(picked))}
    for i, fut in zip(ran, futures, strict=True):
        res = fut.result()
        if res.error_msg is None and res.run_secs:
            secs[i] = [float(x) for x in res.run_secs]
    for i, (mod, rec, _) in enumerate(picked):
        database.commit_tuning_record(ms.database.TuningRecord(
            rec.trace, database.commit_workload(mod), secs[i], target, rec.args_info))
    for b in built:
        if b.artifact_path:
            shutil.rmtree(os.path.dirname(b.artifact_path), ignore_errors=True)
    return len(picked)


# --------------------------------------------------------------------------------------------
# tuning
@dataclass
class KernelTuning:
    """What :func:`tune_kernels` did for one database.

    Attributes
    ----------
    path
        The database directory (None when nothing is tuned: ``trials == 0``).
    target
        The target the kernels are tuned and built for.
    trials
        The budget asked for.
    tasks
        Kernels (MetaSchedule tasks) of the module.
    trials_before, trials_now
        Trials the database held before this run, and trials run now.
    seeded
        Of ``trials_now``, the schedules of another thread count's database measured first
        (:func:`seed_from`).
    seconds
        Wall seconds of this run's tuning.
    seconds_total
        Wall seconds of every run that tuned this database (``done.json``; a database from
        before this was recorded counts this run only).
    """

    path: Path | None
    target: tvm.target.Target
    trials: int
    tasks: int = 0
    trials_before: int = 0
    trials_now: int = 0
    seconds: float = 0.0
    info: dict = field(default_factory=dict)
    seconds_total: float = 0.0
    seeded: int = 0

    @property
    def database(self) -> Path | None:
        """The database to apply, or None for the untuned kernels."""
        return self.path if self.trials > 0 and self.path is not None else None


def tune_kernels(mod: tvm.IRModule, target: tvm.target.Target, work: Path, trials: int, *,
                 model_hash: str, runner=None, seed: int = 0, timeout: float = 60.0,
                 workers: int | None = None, start_from: Path | None = None,
                 progress: Callable[[str, int, int, str], None] | None = None) -> KernelTuning:
    """Tune the fused TIR kernels of ``mod`` for ``target`` with ``trials`` MetaSchedule trials,
    resuming the database of an earlier run (see the module docstring).

    Parameters
    ----------
    mod
        The fused module (``main`` calls its TIR kernels).
    target
        The device target (:func:`device_target`); its ``num-cores`` is the thread count.
    work
        The tuning work dir; the database goes under ``work/kernels``.
    trials
        Trials in all (0: nothing is tuned).
    model_hash
        Identifies the model in the database directory name.
    runner
        The tvm_sched runner whose devices measure (:func:`measure_runner`).
    seed
        Seed of the search.
    timeout
        Seconds one measurement may take.
    workers
        Parallel measurements (a tracker's free devices).
    start_from
        The database of the same model's kernels tuned for another thread count: a new
        database's first trials measure its fastest schedules (:func:`seed_from`) and the
        search starts from them (None, an in-process ``"local"`` runner or a resumed database:
        no seeding).
    progress
        ``progress("kernels", done, total, text)`` as batches complete.

    Returns
    -------
    KernelTuning

    Raises
    ------
    TuneInputError
        ``trials`` < 0, or a runner kernel tuning cannot measure on.
    """
    if trials < 0:
        raise TuneInputError(f"--kernel-trials must be >= 0, got {trials}")
    if trials == 0:
        return KernelTuning(None, target, 0)
    from tvm.s_tir import meta_schedule as ms

    prog = progress or (lambda *a: None)
    path = database_dir(work, model_hash, target)
    before = trials_done(path)
    tasks = ms.relax_integration.extract_tasks(per_call_part(mark_layout_free(mod)), target)
    result = KernelTuning(path, target, trials, len(tasks), before,
                          seconds_total=_seconds_so_far(path))
    threads = target_threads(target) or 1
    if before >= trials or not tasks:
        prog("kernels", 1, 1, f"{len(tasks)} kernels, {before} trials in the database "
             "(nothing to tune)")
        _database(path)  # an empty database still applies (nothing in it)
        return result
    todo = trials - before
    # the gradient scheduler starts with one round per task, in task order, so every task gets
    # a measured schedule when the budget allows a round each (a round of 64 would spend a small
    # budget on the first few tasks and leave the rest as untuned single-threaded loops), and
    # the heaviest tasks come first for when it does not
    tasks = _heaviest_first(tasks)
    if todo < len(tasks):
        log.warning("%d kernel trials cannot tune each of the %d kernels once: the %d lightest "
                    "stay untuned (--kernel-trials %d tunes every kernel)", todo, len(tasks),
                    len(tasks) - todo, before + len(tasks))
    done = [0]

    def on_batch(n: int) -> None:
        done[0] += n
        prog("kernels", min(done[0], todo), todo,
             f"{threads} thread(s): {before + done[0]}/{trials} trials, {len(tasks)} kernels")

    prog("kernels", 0, todo, f"{threads} thread(s): {len(tasks)} kernels, {before}/{trials} "
         "trials in the database")
    t0 = time.perf_counter()
    # MetaSchedule logs every round at INFO, and its C++ side warns on fd 2 for every task
    # about rules the CPU has none of
    with _quiet_meta_schedule(), filtered_stderr("Unknown schedule rule",
                                                 "s_tir.meta_schedule.cpu.meta_schedule"):
        ms_runner = (measure_runner(runner, threads, timeout=timeout, workers=workers)
                     if runner is not None else "local")
        builder = PersistentBuilder(on_batch, workers=min(4, os.cpu_count() or 1))
        database = _database(path)
        if start_from is not None and before == 0 and not isinstance(ms_runner, str):
            result.seeded = seed_from(tasks, start_from, target, database, builder, ms_runner,
                                      per_task=min(SEEDS_PER_KERNEL, todo // len(tasks)))
        if todo > result.seeded:
            strategy = ms.search_strategy.EvolutionarySearch(
                population_size=POPULATION, init_min_unmeasured=min(50, POPULATION))
            contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                tasks, str(path / "logs"), strategy=strategy,
                num_threads=max(1, os.cpu_count() or 1), seed=seed)
            rest = todo - result.seeded
            ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=str(path),
                          max_trials_global=rest, max_trials_per_task=rest,
                          num_trials_per_iter=trials_per_round(rest, len(tasks)),
                          builder=builder, runner=ms_runner, database=database,
                          cost_model="xgb", task_scheduler="gradient")
    result.seconds = time.perf_counter() - t0
    result.trials_now = done[0]
    good, total = valid_records(path)
    if total and not good:  # every measurement failed: say why instead of untuned kernels
        raise MeasureError(f"kernel tuning measured none of its {total} candidates "
                           f"successfully; MetaSchedule's logs: {path / 'logs'}")
    result.seconds_total += result.seconds
    (path / "done.json").write_text(json.dumps({"trials": trials, "tasks": len(tasks),
                                                "target": str(target),
                                                "seconds_total": result.seconds_total}))
    shutil.rmtree(path / "logs", ignore_errors=True) if not log.isEnabledFor(
        logging.DEBUG) else None
    return result


#: Rounds per kernel a budget aims at: the cost model learns from each round, and after the
#: first round of every kernel the gradient scheduler gives the later ones to the kernels whose
#: weighted latency still falls fastest.
ROUNDS_PER_KERNEL = 4


def per_call_part(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` without the functions that run once at load (``*_transform_params``) and the
    kernels only they call: the kernels worth tuning.

    ``LiftTransformParams`` moves weight-only work (BatchNorm folded into the weights, layout
    changes of weights) into ``main_transform_params``; its kernels run once per load, so trials
    spent on them are lost for the kernels every call runs (on the bench resnet they are 15 of
    28 tasks).

    Parameters
    ----------
    mod
        A fused module.

    Returns
    -------
    tvm.IRModule
        The same module when it has no such function, else a copy without them.
    """
    from tvm import relax

    once = [gv for gv in mod.get_global_vars() if gv.name_hint.endswith("transform_params")]
    if not once:
        return mod
    kept = tvm.IRModule({gv: f for gv, f in mod.functions.items() if gv not in once},
                        attrs=mod.attrs)
    entries = sorted(gv.name_hint for gv, f in kept.functions.items()
                     if isinstance(f, relax.Function))
    return relax.transform.DeadCodeElimination(entries)(kept)


def trials_per_round(todo: int, tasks: int) -> int:
    """MetaSchedule's ``num_trials_per_iter`` for ``todo`` trials over ``tasks`` kernels.

    A round of every kernel first (as many trials as the budget allows, up to 4 each), then
    rounds of about ``todo / (ROUNDS_PER_KERNEL * tasks)``: one round per kernel of all the
    trials (an earlier rule) left the gradient scheduler nothing to steer and the cost model
    one look at each kernel.

    Parameters
    ----------
    todo
        Trials this run.
    tasks
        Kernels (MetaSchedule tasks).

    Returns
    -------
    int
        Between 1 and 64.
    """
    tasks = max(1, tasks)
    first = min(4, todo // tasks)
    return int(max(1, min(64, max(first, todo // (ROUNDS_PER_KERNEL * tasks)))))


def _seconds_so_far(path: Path) -> float:
    """The tuning seconds ``done.json`` records for the database at ``path`` (0 without)."""
    try:
        return float(json.loads((path / "done.json").read_text()).get("seconds_total", 0.0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0.0


def _heaviest_first(tasks):
    """``tasks`` by weight x estimated FLOPs, heaviest first (ties keep their order)."""
    from tvm.s_tir.analysis import estimate_tir_flops

    def cost(task) -> float:
        try:
            return float(task.weight) * float(estimate_tir_flops(task.dispatched[0]))
        except Exception:  # noqa: BLE001 - a kernel FLOPs cannot be counted for sorts last
            return 0.0
    return sorted(tasks, key=cost, reverse=True)


class _quiet_meta_schedule:  # noqa: N801 - used as a context manager
    """MetaSchedule logs every round at INFO to the console; keep its loggers at WARNING.

    MetaSchedule's ``create_loggers`` lists its logger's handlers by name and fails on a
    handler without one (``AttributeError: 'NoneType' object has no attribute 'format'``):
    such handlers (pytest attaches its capture handler to every non-propagating logger, which
    MetaSchedule's becomes after a first tuning) are taken off while it tunes.
    """

    def __enter__(self):
        self.saved = {}
        for name in ("tvm.s_tir.meta_schedule", "tvm.meta_schedule"):
            lg = logging.getLogger(name)
            self.saved[name] = lg.level
            lg.setLevel(logging.WARNING)
        lg = logging.getLogger("tvm.s_tir.meta_schedule")
        self.unnamed = [h for h in lg.handlers if h.get_name() is None]
        for h in self.unnamed:
            lg.removeHandler(h)
        return self

    def __exit__(self, *exc):
        for name, level in self.saved.items():
            logging.getLogger(name).setLevel(level)
        for h in self.unnamed:
            logging.getLogger("tvm.s_tir.meta_schedule").addHandler(h)




# --------------------------------------------------------------------------------------------
# the stage the tuner runs
def device_facts(session) -> tuple[str | None, int | None]:
    """LLVM's name for the device's CPU and the cores its tvm_sched server may use (None where
    the server does not say).

    Parameters
    ----------
    session
        An open ``tvm.rpc`` session to the device.

    Returns
    -------
    tuple
        ``(cpu, cores)``; each None where the device does not say (no LLVM in its runtime, a
        plain TVM server).
    """
    cores = None
    try:
        from tvm_sched.runtime import rpc

        fn = session.get_function(rpc.NUM_CORES)
        cores = int(fn()) if fn is not None else None
    except Exception:  # noqa: BLE001 - a plain TVM server: no core count
        cores = None
    return _device_cpu(session), cores


@dataclass
class KernelSet:
    """The kernels of a run: for each thread count, its device target and tuning.

    Attributes
    ----------
    tunings
        :class:`KernelTuning` per thread count (``tunings[t].target`` is the target to build
        with, ``tunings[t].database`` the database to apply or None).
    cpu, cpu_source
        The device CPU (``mcpu``) and where it came from (see :class:`DeviceTarget`).
    """

    tunings: dict[int, KernelTuning]
    cpu: str | None
    cpu_source: str

    def target(self, threads: int) -> tvm.target.Target:
        """The build target of the kernels that run with ``threads`` threads.

        Parameters
        ----------
        threads
            A thread count of :attr:`tunings`.

        Returns
        -------
        tvm.target.Target
            The device target with ``num-cores`` = ``threads``.

        Raises
        ------
        KeyError
            When ``threads`` is not one of the prepared thread counts.
        """
        return self.tunings[threads].target

    def database(self, threads: int) -> Path | None:
        """The database of the kernels that run with ``threads`` threads (None: untuned).

        Parameters
        ----------
        threads
            A thread count of :attr:`tunings`.

        Returns
        -------
        Path or None
            :attr:`KernelTuning.database` of that thread count.

        Raises
        ------
        KeyError
            When ``threads`` is not one of the prepared thread counts.
        """
        return self.tunings[threads].database

    def describe(self) -> dict:
        """A JSON-able summary for reports and ``summary.json``.

        Returns
        -------
        dict
            ``cpu``, ``cpu_source`` and ``databases``: per thread count (as text), its target,
            trial counts, tasks, seconds (this run, every run) and database path (None when
            untuned).
        """
        return {"cpu": self.cpu, "cpu_source": self.cpu_source,
                "databases": {str(t): {"target": str(k.target), "trials": k.trials,
                                       "tasks": k.tasks, "trials_before": k.trials_before,
                                       "trials_now": k.trials_now, "seeded": k.seeded,
                                       "seconds": round(k.seconds, 1),
                                       "seconds_total": round(k.seconds_total, 1),
                                       "path": str(k.path) if k.path else None}
                              for t, k in sorted(self.tunings.items())}}


def prepare_kernels(mod: tvm.IRModule, target: tvm.target.Target, cpu: str | None, threads, *,
                    work: Path, trials: int, model_hash: str, runner=None, seed: int = 0,
                    timeout: float = 60.0, progress=None,
                    lane_trials: int | None = None) -> KernelSet:
    """The device targets for every thread count in ``threads`` and, with ``trials`` > 0, the
    kernels tuned for each (:func:`tune_kernels`; the largest thread count first: it is the
    anchor's, and a new database of a smaller count starts from its fastest schedules,
    :func:`seed_from`).

    The caller must not hold a session on a one-client server while this tunes (a TVM RPC
    server serves one client at a time; the measurements open their own).

    Parameters
    ----------
    mod, target
        The fused module and the user's target.
    cpu
        The device's CPU (:func:`device_facts`; None: the target's own ``mcpu`` or generic).
    threads
        Thread counts the kernels will run with.
    work, trials, model_hash, runner, seed, timeout, progress
        As for :func:`tune_kernels` (``trials``: the largest thread count's).
    lane_trials
        Trials of every smaller thread count (the lanes'); None: ``trials``. Ignored when
        ``trials`` is 0 (nothing is tuned).

    Returns
    -------
    KernelSet

    Raises
    ------
    TuneInputError
        As :func:`tune_kernels` and :func:`device_target`.
    """
    counts = sorted({int(t) for t in threads}, reverse=True)
    targets = {t: device_target(target, cpu, t) for t in counts}
    tunings = {}
    for t in counts:
        anchor = tunings.get(counts[0])
        n = trials if anchor is None or lane_trials is None or trials == 0 else lane_trials
        tunings[t] = tune_kernels(mod, targets[t].target, work, n, model_hash=model_hash,
                                  runner=runner, seed=seed, timeout=timeout, progress=progress,
                                  start_from=anchor.database if anchor is not None else None)
    first = targets[counts[0]]
    return KernelSet(tunings, first.cpu, first.source)
