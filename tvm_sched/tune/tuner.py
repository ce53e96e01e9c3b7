"""The tuning loop: propose -> :func:`~tvm_sched.tune.objective.search` (rank by proxy -> top k
+ baselines -> skip what the database has -> build -> measure -> tell -> pick) -> export.

Objectives:

- ``latency``: the lowest median measured latency;
- ``memory``: the fewest bytes planned by TVM's static planner (measurement still checks the
  outputs and reports the latency);
- ``latency`` under a memory budget (``memory_budget`` set): the lowest latency among the
  candidates whose planned bytes fit the budget;
- ``lanes`` set (``"auto"`` or M): lane schedules for the lane runtime against the Relax VM,
  :func:`tvm_sched.tune.lanes.tune_lanes` (returns a
  :class:`~tvm_sched.tune.result.TuneResult` with ``lanes`` set).

The objective's rules (ranking proxy, pick, proxy correlation) come from one object,
:func:`tvm_sched.tune.objective.objective_for`; the decision rules of the VM-order objectives
are :mod:`tvm_sched.tune.pick`. The loop is :func:`~tvm_sched.tune.objective.search` with the
VM-order builder and runner adapters (:class:`~tvm_sched.tune.builder.OrderBuilder`,
:class:`~tvm_sched.tune.runner.OrderRunner`) and the database passed in; TVM's order (the
candidate ``tvm``, ``kind == "vm"``) is the anchor of every batch, measured again when an
earlier run recorded it. Every kind runs the one stage sequence of
:mod:`tvm_sched.tune.stages` (devices, kernels, profile, propose, plan, search, export,
report); the VM-order kind skips kernels (built in plan, after the memory budget is checked) and
profile (its proxies need no kernel durations).

Ranking before measuring uses the proxies of :mod:`tvm_sched.tune.candidates`: cache-miss bytes
for latency (ties by planned bytes), planned bytes for memory. How well each proxy ranks the
measured latencies is reported as a Spearman rank correlation.

The work dir is checked (a directory, writable) before anything else and locked for the whole
run (:mod:`tvm_sched.tune.workdir`): a second run on it fails at once instead of measuring the
same candidates again. Every measurement goes to the database in ``work_dir`` as a
:class:`~tvm_sched.tune.record.TuneRecord` as it completes, keyed by the full target string
(:func:`~tvm_sched.tune.model.target_key`: ``"llvm"`` and ``tvm.target.Target("llvm")`` share
records); the final module (``best.so``, exported library), its orders (``best_order.json``),
``report.md``, ``plot.png`` and ``summary.json`` are replaced atomically at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tvm

from tvm_sched.errors import TuneInputError
from tvm_sched.relax.memory import planned_bytes
from tvm_sched.solvers import check_solver_names
from tvm_sched.tune.builder import Builder, OrderBuilder
from tvm_sched.tune.candidates import Candidate, default_cache_bytes, propose, tvm_orders
from tvm_sched.tune.database import Database
from tvm_sched.tune.kernels import target_threads
from tvm_sched.tune.lanes import LANE_SOLVERS
from tvm_sched.tune.measure import compare_outputs
from tvm_sched.tune.model import TuneModel, check_target, target_key
from tvm_sched.tune.objective import objective_for, search
from tvm_sched.tune.pick import parse_memory_budget
from tvm_sched.tune.record import MeasureResult, TuneRecord
from tvm_sched.tune.report import write_report
from tvm_sched.tune.result import TuneResult
from tvm_sched.tune.runner import Devices, OrderRunner
from tvm_sched.tune.stages import Stages, run_stages
from tvm_sched.tune.workdir import atomic_path, atomic_write, check_work_dir, lock_work_dir

__all__ = ["TuneConfig", "TuneResult", "tune", "OBJECTIVES", "parse_memory_budget"]

log = logging.getLogger(__name__)

OBJECTIVES = ("latency", "memory")
DEFAULT_SOLVERS = ("lpmf", "list", "random-list", "gaus")


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _check_trials(flag: str, value) -> None:
    """A trial budget must be an integer >= 0 (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TuneInputError(f"{flag} must be an integer >= 0, got {value!r}")


@dataclass
class TuneConfig:
    """Options of a tuning run (the CLI's flags)."""

    objective: str = "latency"
    #: Bytes, or a string "<ratio>x" relative to TVM's order (e.g. "0.9x"); latency only.
    memory_budget: int | str | None = None
    #: Registered solver names; ``None``: the defaults of the run's kind
    #: (:data:`DEFAULT_SOLVERS` for VM orders, :data:`~tvm_sched.tune.lanes.LANE_SOLVERS` for
    #: lanes; :meth:`solver_names`).
    solvers: Sequence[str] | None = None
    candidates: int = 64
    top_k: int = 8
    solver_budget: float = 2.0
    cache_bytes: int | None = None
    repeats: int = 10
    number: int = 1
    min_repeat_ms: float = 10.0
    timeout: float = 120.0
    seed: int = 0
    fast_build: bool = True
    export: bool = True
    #: Latency: keep TVM's order unless the fastest candidate beats it beyond noise.
    keep_default_within_noise: bool = True
    #: Build with the arena planner (``tvm_sched.relax.PlanArena``): the memory objective and
    #: ``memory_budget`` then count what the arena pipeline allocates.
    arena: bool = True
    #: Lanes: ``None`` tunes the VM's operator order (the objectives above); ``"auto"`` (the
    #: device's cores) or ``M`` tunes lane schedules on the lane runtime
    #: (:mod:`tvm_sched.tune.lanes`); ``memory_budget`` then bounds the plans' arena bytes.
    lanes: int | str | None = None
    #: Lanes: the sample budget every makespan solver gets (orders drawn, where it draws).
    samples: int = 256
    #: Lanes: schedules each solver hands in (its best first).
    per_solver: int = 2
    #: MetaSchedule trials per thread count the kernels run with (0: TVM's untuned kernels);
    #: the databases stay in the work dir, so a resumed run tunes nothing again
    #: (:mod:`tvm_sched.tune.kernels`).
    kernel_trials: int = 0
    #: Lanes: MetaSchedule trials of the lanes' thread count when it is not the VM's (None:
    #: ``kernel_trials``); that search starts from the VM kernels' fastest schedules.
    lane_kernel_trials: int | None = None
    #: Lanes: the anchors measured beside the Relax VM in the same rounds, by name
    #: (:data:`tvm_sched.tune.anchors.ANCHORS`: PyTorch eager, ONNX Runtime); never picked.
    anchors: Sequence[str] = ()

    def solver_names(self) -> tuple[str, ...]:
        """The solvers a run uses: ``solvers``, or the defaults of its kind when ``None``.

        Returns
        -------
        tuple of str
            ``solvers`` as given; else :data:`~tvm_sched.tune.lanes.LANE_SOLVERS` with
            ``lanes``, :data:`DEFAULT_SOLVERS` without.
        """
        if self.solvers is not None:
            return tuple(self.solvers)
        return LANE_SOLVERS if self.lanes is not None else DEFAULT_SOLVERS

    def check(self) -> None:
        """Reject options no run can use, before any work.

        Solver names are looked up in the registry without importing any solver (a solver
        whose package is missing is skipped, with a warning, when the run proposes).

        Raises
        ------
        TuneInputError
            The first bad option, named as on the command line.
        UnknownSolverError
            A name in ``solvers`` is not a registered solver.
        """
        if self.solvers is not None:
            if isinstance(self.solvers, str) or not self.solvers:
                raise TuneInputError(f"--solvers must name at least one solver (a sequence of "
                                     f"names), got {self.solvers!r}")
            check_solver_names(self.solvers)
        if self.objective not in OBJECTIVES:
            raise TuneInputError(f"objective must be one of {', '.join(OBJECTIVES)}, "
                                 f"got {self.objective!r}")
        if self.memory_budget is not None and self.objective != "latency":
            raise TuneInputError("--memory-budget goes with --objective latency")
        parse_memory_budget(self.memory_budget, 1)  # the form and the sign; the size later
        if self.candidates < 1 or self.top_k < 0 or self.repeats < 1:
            raise TuneInputError("candidates and repeats must be >= 1, top-k >= 0")
        if self.number < 1:
            raise TuneInputError(f"number must be >= 1, got {self.number}")
        if not _finite(self.solver_budget) or self.solver_budget < 0:
            raise TuneInputError(f"--solver-budget must be finite and >= 0 seconds, got "
                                 f"{self.solver_budget!r}")
        if not _finite(self.min_repeat_ms) or self.min_repeat_ms < 0:
            raise TuneInputError(f"--min-repeat-ms (min_repeat_ms) must be finite and >= 0, got "
                                 f"{self.min_repeat_ms!r}")
        if not _finite(self.timeout) or self.timeout <= 0:
            raise TuneInputError(f"--timeout must be finite and > 0 seconds, got "
                                 f"{self.timeout!r}")
        if self.cache_bytes is not None and self.cache_bytes <= 0:
            raise TuneInputError(f"the cache size (--cache-kib) must be > 0, got "
                                 f"{self.cache_bytes} bytes")
        _check_trials("--kernel-trials", self.kernel_trials)
        if self.lane_kernel_trials is not None:
            _check_trials("--lane-kernel-trials", self.lane_kernel_trials)
        from tvm_sched.tune.anchors import ANCHORS

        unknown = [a for a in self.anchors if a not in ANCHORS]
        if unknown:
            raise TuneInputError(f"unknown anchor(s) {', '.join(map(repr, unknown))}; known: "
                                 f"{', '.join(ANCHORS)}")
        if self.seed < 0:
            raise TuneInputError(f"--seed must be >= 0, got {self.seed}")
        if self.lanes is not None:
            if self.objective != "latency":
                raise TuneInputError("--lanes tunes latency; it does not go with "
                                     f"--objective {self.objective}")
            if not (isinstance(self.lanes, str) and self.lanes.strip().lower() == "auto"):
                try:
                    ok = int(self.lanes) >= 1 and not isinstance(self.lanes, bool)
                except (TypeError, ValueError):
                    ok = False
                if not ok:
                    raise TuneInputError(f"--lanes must be 'auto' or an integer >= 1, got "
                                         f"{self.lanes!r}")
            if self.samples < 1 or self.per_solver < 1:
                raise TuneInputError(f"--samples and --per-solver must be >= 1, got "
                                     f"{self.samples} and {self.per_solver}")


def _reference(builder: Builder, model: TuneModel) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``main``'s arguments (inputs + transformed params) and outputs in TVM's order, locally."""
    from tvm import relax

    from tvm_sched.relax.frontend import flatten_values as _flatten

    built = builder.build(tvm_orders(model))
    if built.error:
        raise TuneInputError(f"{model.name}: the module does not build in its own order: "
                             f"{built.error}")
    exe = built.executable
    if built.needs_kernels:
        exe.mod.import_module(builder.kernels)
    dev = tvm.cpu()
    vm = relax.VirtualMachine(exe, dev)
    params = [tvm.runtime.tensor(p, dev) for p in model.params]
    names = [gv.name_hint for gv in model.mod.get_global_vars()]
    if "main_transform_params" in names:
        params = _flatten(vm["main_transform_params"](params))
    args = [tvm.runtime.tensor(x, dev) for x in model.inputs] + list(params)
    vm.set_input("main", *args)
    vm.invoke_stateful("main")
    outs = [o.numpy() for o in _flatten(vm.get_outputs("main"))]
    return [a.numpy() for a in args], outs


def tune(model: TuneModel, target: str | tvm.target.Target, runner: Devices, work_dir: str | Path,
         config: TuneConfig | None = None, *, progress: Callable | None = None,
         lock: bool = True) -> TuneResult:
    """Tune ``model``'s operator order for ``target`` on ``runner``'s devices (with
    ``config.lanes``: its lane schedules, see :mod:`tvm_sched.tune.lanes`; the result then
    has ``lanes`` set). Records are keyed by the full target string
    (:func:`~tvm_sched.tune.model.target_key`), whether ``target`` is a string or a
    ``tvm.target.Target``.

    ``progress(stage, done, total, text)`` is called as work proceeds (the CLI draws bars).
    ``lock=False`` when the caller already holds :func:`~tvm_sched.tune.workdir.lock_work_dir`
    on ``work_dir`` (the command line takes it before importing the model).

    Parameters
    ----------
    model
        The model to tune.
    target
        TVM target, as a string or a ``tvm.target.Target``.
    runner
        Where the candidates are measured.
    work_dir
        Directory of the records, artifacts and report (created if missing).
    config
        The tuning options; default ``TuneConfig()``.
    progress
        Called as ``progress(stage, done, total, text)``.
    lock
        Take the work dir's lock here (false when the caller holds it).

    Returns
    -------
    TuneResult
        The measured candidates, the pick and the baseline (``lanes`` set with
        ``config.lanes``).

    Raises
    ------
    TuneInputError
        Bad options or target; a work dir that is a file, read-only, or in use by another run
        (checked before anything is proposed, built or measured); a memory budget that no
        proposed order meets (checked before building); a model that does not build in its own
        order.
    UnknownSolverError
        A name in ``config.solvers`` is not a registered solver (checked before any work).
    DeviceUnavailableError
        Devices were lost and could not be reopened (records so far are kept).
    """
    cfg = config or TuneConfig()
    cfg.check()
    cfg = replace(cfg, solvers=cfg.solver_names())
    if not isinstance(target, tvm.target.Target):
        target = check_target(target)
    # the full target string: targets that differ in any attribute do not share records
    key_target = target_key(target)
    if cfg.kernel_trials:  # other kernels, other timings: records and state apart
        key_target = f"{key_target} kernel-trials={cfg.kernel_trials}"
        if cfg.lane_kernel_trials is not None and cfg.lanes is not None:
            key_target = f"{key_target} lane-kernel-trials={cfg.lane_kernel_trials}"
    check_work_dir(work_dir)
    with lock_work_dir(work_dir) if lock else contextlib.nullcontext(Path(work_dir)) as work:
        if cfg.lanes is not None:
            from tvm_sched.tune.lanes import tune_lanes

            return tune_lanes(model, target, key_target, runner, work, cfg, progress)
        return _tune(model, target, key_target, runner, work, cfg, progress)


def _device_kernels(model: TuneModel, target: tvm.target.Target, runner: Devices, work: Path,
                    cfg: TuneConfig, prog: Callable) -> tuple:
    """The VM-order path's kernels: the target for the device's CPU and cores (asked over one
    session, let go before tuning: a TVM RPC server serves one client at a time) and, with
    ``cfg.kernel_trials``, ``model`` with the kernels tuned for every core applied.

    Returns
    -------
    (target, model, info)
        ``info``: the kernel set's description (:meth:`KernelSet.describe`) and the seconds.
    """
    from tvm_sched.runtime.builder import apply_database
    from tvm_sched.runtime.cores import num_cores
    from tvm_sched.tune.kernels import device_facts, prepare_kernels

    t0 = time.perf_counter()
    devices = runner.open()
    cpu, cores = device_facts(devices[0][1]) if devices else (None, None)
    devices.clear()
    cores = cores or num_cores()
    ks = prepare_kernels(model.mod, target, cpu, {cores}, work=work, trials=cfg.kernel_trials,
                         model_hash=model.hash, runner=runner, seed=cfg.seed,
                         timeout=cfg.timeout, progress=prog)
    db = ks.database(cores)
    if db is not None:
        model = replace(model, mod=apply_database(model.mod, ks.target(cores), str(db)))
    return ks.target(cores), model, dict(ks.describe(), seconds=time.perf_counter() - t0)


def _propose_orders(model: TuneModel, cfg: TuneConfig, cache_bytes: int, prog):
    """Stage *propose* of the order objective: the solvers' orders and the memory budget
    (checked: some order fits); returns (pool, budget, TVM's planned bytes)."""
    prog("propose", 0, len(cfg.solvers), "proposing candidates")
    done_solvers = []

    def solver_done(name):
        done_solvers.append(name)
        prog("propose", len(done_solvers), len(cfg.solvers), name)

    pool = propose(model, solvers=cfg.solvers, candidates=cfg.candidates, seed=cfg.seed,
                   budget=cfg.solver_budget, cache_bytes=cache_bytes, progress=solver_done,
                   arena=cfg.arena)
    tvm_planned = planned_bytes(model.mod)
    budget = parse_memory_budget(cfg.memory_budget, tvm_planned)
    if budget is not None:
        least = min((c.proxy["planned"] for c in pool), default=None)
        if least is None or least > budget:
            raise TuneInputError(
                f"no candidate fits the memory budget of {budget:,} B: the fewest planned bytes "
                f"among the {len(pool)} proposed orders is {least or 0:,} B (TVM's order "
                f"{tvm_planned:,} B); raise --memory-budget")
    return pool, budget, tvm_planned


def _build_kernels(model: TuneModel, target: tvm.target.Target, runner: Devices, work: Path,
                   cfg: TuneConfig, prog):
    """Stage *kernels*: the kernels tuned for the device (:func:`_device_kernels`) and built
    once; returns (builder, main's arguments, model, target, kernel info): the model and the
    target as the device's kernels need them."""
    target, model, kernel_info = _device_kernels(model, target, runner, work, cfg, prog)
    builder = Builder(model, target, fast=cfg.fast_build, arena=cfg.arena)
    prog("build", 0, 1, "kernels")
    builder.build_kernels()
    args, reference = _reference(builder, model)
    prog("build", 1, 1, "kernels")
    if model.reference:
        log.info("TVM vs %s reference: max abs diff %.3g", model.name,
                 compare_outputs(reference, model.reference, float("inf"))[0])
    return builder, args, model, target, kernel_info


def _export_order(builder: Builder, model: TuneModel, best: TuneRecord, work: Path) -> None:
    """Stage *export* of the order objective: ``best.so`` and ``best_order.json``."""
    final = builder.build([tuple(o) for o in best.order_facts.orders])
    if final.error:
        raise RuntimeError(f"the pick no longer builds: {final.error}")
    if final.needs_kernels:
        final.executable.mod.import_module(builder.kernels)
    with atomic_path(work / "best.so") as tmp:
        final.executable.export_library(str(tmp))
    atomic_write(work / "best_order.json", json.dumps(
        {"model": model.name, "model_hash": model.hash, "candidate": best.candidate,
         "orders": best.order_facts.orders}, indent=1))


def _search_orders(objective, pool: Sequence[Candidate], builder: Builder, order_runner,
                   db: Database, model: TuneModel, key_target: str, device_key: str,
                   cfg: TuneConfig, budget: int | None, cache_bytes: int, prog):
    """Stage *search* of the order objective: :func:`~tvm_sched.tune.objective.search` with
    the VM-order builder, ``order_runner`` and ``db`` (rank, build and measure what the
    database lacks, tell, pick); returns its outcome."""
    order_builder = OrderBuilder(builder)

    def make_record(c: Candidate, m: MeasureResult) -> TuneRecord:
        b = order_builder.built[c.hash]
        return TuneRecord.make_order(
            c, m, model=model.name, model_hash=model.hash, target=key_target,
            device_key=device_key, planned_bytes=b.allocated_bytes if b.error is None else None,
            build_s=b.seconds, fast_build=b.needs_kernels, cache_bytes=cache_bytes)

    out = search(objective, pool, builder=order_builder, runner=order_runner, database=db,
                 key=lambda c: c.record_key(model.hash, key_target, device_key),
                 make_record=make_record, budget=budget, top_k=cfg.top_k, progress=prog)
    log.info("%d candidates (%d baselines), %d measured now", len(out.chosen),
             sum(c.baseline for c in out.chosen), out.measured_now)
    return out


def _order_info(out, pool: Sequence[Candidate], builder: Builder, order_runner, db: Database,
                model: TuneModel, key_target: str, device_key: str, cfg: TuneConfig,
                facts: dict) -> dict:
    """The ``info`` of the order objective's :class:`~tvm_sched.tune.result.TuneResult`;
    ``facts``: ``cache_bytes``, ``tvm_planned`` and ``kernel_tuning``."""
    best, fastest = out.best, out.fastest
    return {"target": key_target, "device_key": device_key,
            "candidates_proposed": len(pool), "candidates_chosen": len(out.chosen),
            "cache_bytes": facts["cache_bytes"], "tvm_planned": facts["tvm_planned"],
            "kernel_build_fast": builder.kernels is not None,
            "full_compiles": builder.fallbacks, "reconnects": order_runner.reconnects,
            "records_skipped": db.skipped, "model_hash": model.hash, "nodes": model.num_nodes,
            "kernel_tuning": facts["kernel_tuning"],
            "host": platform.node(), "solvers": list(cfg.solvers),
            "top_k": cfg.top_k, "repeats": cfg.repeats,
            "fastest": fastest.candidate if fastest else None,
            "kept_default_within_noise": bool(best and fastest and best is not fastest
                                              and best.kind == "vm")}


class _OrderRun:
    """The VM-order kind of :func:`~tvm_sched.tune.stages.run_stages`: one method per stage it
    runs, the reason for each it skips; the state passes between them on ``self``."""

    kernels = ("VM orders build their kernels in plan, once the proposals meet the memory "
               "budget (a budget no order meets fails before any build)")
    profile = "VM orders are ranked by proxies that need no kernel durations"

    def __init__(self, model: TuneModel, target: tvm.target.Target, key_target: str,
                 runner: Devices, work: Path, cfg: TuneConfig, st: Stages):
        self.model, self.target, self.key_target = model, target, key_target
        self.runner, self.work, self.cfg, self.st = runner, work, cfg, st
        self.t_start = time.perf_counter()
        self.result: TuneResult | None = None

    def devices(self) -> None:
        # the sessions are opened per search round, by the runner; the source starts now (the
        # embedded server imports TVM meanwhile)
        self.runner.prepare()

    def propose(self) -> None:
        cfg, st = self.cfg, self.st
        self.cache_bytes = cfg.cache_bytes or default_cache_bytes()
        with st.timed("propose"):
            self.pool, self.budget, self.tvm_planned = _propose_orders(
                self.model, cfg, self.cache_bytes, st.prog)
            self.objective = objective_for(cfg.objective,
                                           keep_default=cfg.keep_default_within_noise)

    def plan(self) -> None:
        cfg, st = self.cfg, self.st
        with st.timed("build"):
            self.builder, args, self.model, self.target, self.kernel_info = _build_kernels(
                self.model, self.target, self.runner, self.work, cfg, st.prog)
            st.secs["kernels_tuning"] = self.kernel_info["seconds"]
        self.order_runner = OrderRunner(
            self.runner, kernels=self.builder.kernels, args=args,
            device_type=self.target.get_target_device_type(), repeats=cfg.repeats,
            number=cfg.number, min_repeat_ms=cfg.min_repeat_ms, timeout=cfg.timeout,
            threads=target_threads(self.target))

    def search(self) -> None:
        cfg, st, model = self.cfg, self.st, self.model
        db = Database(self.work / "records.jsonl", canonical_target=target_key)
        out = _search_orders(self.objective, self.pool, self.builder, self.order_runner, db,
                             model, self.key_target, self.runner.key, cfg, self.budget,
                             self.cache_bytes, st.prog)
        st.secs["build"] += out.seconds["build"]
        st.secs["kernels"] = self.builder.kernel_seconds
        st.secs["measure"] = out.seconds["measure"]
        info = _order_info(out, self.pool, self.builder, self.order_runner, db, model,
                           self.key_target, self.runner.key, cfg,
                           {"cache_bytes": self.cache_bytes, "tvm_planned": self.tvm_planned,
                            "kernel_tuning": self.kernel_info})
        base = next((r for r in out.records if r.kind == "vm"), None)
        self.result = TuneResult(model.name, cfg.objective, out.records, out.best, base,
                                 out.spearman, self.work, st.secs, self.budget,
                                 out.measured_now, info=info)

    def export(self) -> None:
        best = self.result.best
        if best is not None and self.cfg.export:
            with self.st.timed("export"):
                _export_order(self.builder, self.model, best, self.work)

    def report(self) -> None:
        self.st.secs["total"] = time.perf_counter() - self.t_start
        write_report(self.result)

    def close(self) -> None:
        pass


def _tune(model: TuneModel, target: tvm.target.Target, key_target: str, runner: Devices,
          work: Path, cfg: TuneConfig, progress: Callable | None) -> TuneResult:
    """:func:`tune` for VM orders, with the work dir checked and locked: the one stage sequence
    (:func:`~tvm_sched.tune.stages.run_stages`) over the VM-order kind."""
    st = Stages(progress)
    return run_stages(_OrderRun(model, target, key_target, runner, work, cfg, st), st)
