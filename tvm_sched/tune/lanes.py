"""Tuning for latency over lanes: solvers' lane schedules measured on the device pick the plan.

Contract (``tune(..., TuneConfig(lanes=...))`` and ``tvm-sched tune --lanes auto|M`` land here)
-------------------------------------------------------------------------------------------
1. The device session is opened first (the embedded server starts before anything slow) and
   asked what its cores offer now (:func:`~tvm_sched.runtime.cores.parallelism`, run by the
   tvm_sched RPC server): the lane count ``auto`` is the most threads
   that run at once with at least 75% parallel efficiency (all cores of a quiet machine, fewer
   when other processes hold cores); the report records these conditions.
2. The model is compiled once (:class:`tvm_sched.runtime.builder.LaneKernels`); that one kernel
   library serves the Relax VM and every lane plan.
3. Kernel durations are measured on the device before any solver runs: the one-lane plan is
   uploaded, run on the model's inputs, then run again one kernel at a time (``time_step``), so
   each kernel is timed on the data it really receives
   (:meth:`~tvm_sched.tune.lane_runner.LaneAdapter.profile`).
4. Every makespan solver proposes with the same sample budget (``samples``; ``top_k`` schedules
   each where the solver returns several) and the same time budget; the proxy is the predicted
   makespan on the measured durations. Under a memory budget only plans whose arena (planned
   under the plan's happens-before relation) fits are measured.
5. Measured in the same interleaved rounds, always: the Relax VM (the anchor), the executor at
   m = 1, list scheduling at m; plus the proposals' top k by the proxy
   (:class:`~tvm_sched.tune.objective.LaneObjective`, :func:`~tvm_sched.tune.objective.search`).
   Outputs are checked against the VM's outputs *on the device* before anything is timed.
   With several devices (a tracker's), candidates are dealt over them, each device's rounds
   anchored on its own VM run (:class:`~tvm_sched.tune.runner.InterleavedRunner` over a
   :class:`~tvm_sched.tune.lane_runner.LaneAdapter` per device); ``auto`` is then the fewest
   cores.
6. The pick: the fastest candidate that beats the VM beyond noise, else the VM. Written to the
   work dir: ``lane_records.jsonl`` (resume: nothing measured twice), ``best.so`` (the VM
   executable, as the latency objective writes it), ``best_lanes.tar``
   (``tvm_sched.runtime.load``-able; the pick, or the fastest lane plan when the VM is the
   pick), ``best_plan.json``, ``report.md``, ``pareto.png``, ``summary.json``
   (:mod:`tvm_sched.tune.report`).

The run is the one stage sequence of :mod:`tvm_sched.tune.stages` (devices, kernels, profile,
propose, plan, search, export, report) over the lane kind, each step above one stage; the
report's seconds keep their names (``connect``, ``kernels``, ``compile``, ``profile``,
``propose``, ``plan``, ``measure``, ``export``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tvm_sched.console import filtered_stderr
from tvm_sched.errors import DeviceUnavailableError, TuneInputError, one_line
from tvm_sched.runtime import rpc
from tvm_sched.runtime.cores import lanes_for, num_cores
from tvm_sched.tune import anchors
from tvm_sched.tune.candidate import CandidateBuilder, LaneCandidate
from tvm_sched.tune.database import Database
from tvm_sched.tune.kernels import device_facts, prepare_kernels, target_threads
from tvm_sched.tune.lane_runner import LaneAdapter, LaneRunner, SpreadRunner
from tvm_sched.tune.objective import LaneObjective, TuneRecord, search
from tvm_sched.tune.runner import InterleavedRunner
from tvm_sched.tune.stages import Stages, run_stages

__all__ = ["LANE_SOLVERS", "tune_lanes", "resolve_lanes", "LaneBuilder", "LaneRunner",
           "SpreadRunner", "propose_lanes"]

log = logging.getLogger(__name__)

#: Every makespan solver, in the order they propose.
LANE_SOLVERS = ("gflownet", "gaus", "cpsat", "list", "random-list")


def device_conditions(session) -> dict | None:
    """What the device's cores offer now, measured over the session
    (:func:`tvm_sched.runtime.cores.parallelism`), or None on a server without it.

    Parameters
    ----------
    session
        An open ``tvm.rpc`` session to the device.

    Returns
    -------
    dict or None
        The device's answer (cores, parallel efficiency per thread count, load), or ``None``.
    """
    try:
        fn = session.get_function(rpc.PARALLELISM)
    except Exception:  # noqa: BLE001 - TVM raises its own error kinds for a missing function
        fn = None
    return None if fn is None else json.loads(str(fn(20.0)))


def resolve_lanes(lanes: int | str, session, conditions: dict | None = None) -> int:
    """``"auto"`` -> the lanes the device really offers: the most threads that run at once with
    a parallel efficiency of at least 0.75 in ``conditions`` (:func:`device_conditions`; e.g. 1
    on two cores while a busy process holds one), else its cores; an int (or its text) as
    given, at most the device's cores.

    Parameters
    ----------
    lanes
        ``"auto"`` or a lane count (an int or its text).
    session
        An open ``tvm.rpc`` session to the device.
    conditions
        The device's :func:`device_conditions` (``None``: ``auto`` is its core count).

    Returns
    -------
    int
        The lanes, at least 1.

    Raises
    ------
    TuneInputError
        Not ``auto`` or an integer >= 1; ``auto`` on a server without
        ``tvm_sched.runtime.num_cores``;
        more lanes than the cores the device offers.
    """
    try:
        fn = session.get_function(rpc.NUM_CORES)
    except Exception:  # noqa: BLE001 - TVM raises its own error kinds for a missing function
        fn = None
    if isinstance(lanes, str) and lanes.strip().lower() == "auto":
        if fn is None:
            raise TuneInputError("--lanes auto needs the tvm_sched RPC server on the device "
                                 "(python -m tvm_sched.tune.server): this server does not offer "
                                 f"{rpc.NUM_CORES}")
        if conditions is not None:
            return lanes_for(conditions)
        return max(1, int(fn()))
    try:
        m = int(lanes)
    except (TypeError, ValueError):
        raise TuneInputError(f"--lanes must be 'auto' or an integer >= 1, got {lanes!r}") from None
    if m < 1 or isinstance(lanes, bool):
        raise TuneInputError(f"--lanes must be 'auto' or an integer >= 1, got {lanes!r}")
    cores = max(1, int(fn())) if fn is not None else None
    if cores is not None and m > cores:
        # a plan with more lanes than cores would be refused by runtime.load on the device
        raise TuneInputError(f"--lanes {m} asks for more lanes than the {cores} core(s) the "
                             f"device offers; use --lanes auto or at most {cores}")
    return m


def _require_lane_functions(name: str, session) -> None:
    """The device runs the tvm_sched RPC server (it registers the lane functions), or a
    :class:`TuneInputError` saying how to start one."""
    for func in (rpc.RUN_FUNC, rpc.TIME_RUNS, rpc.TIME_STEP):
        try:
            ok = session.get_function(func) is not None
        except Exception:  # noqa: BLE001 - TVM raises its own error kinds for a missing function
            ok = False
        if not ok:
            raise TuneInputError(f"device {name} does not offer {func}: --lanes needs the "
                                 "tvm_sched RPC server there (python -m tvm_sched.tune.server "
                                 "[--tracker HOST:PORT --key KEY])")


# --------------------------------------------------------------------------------------------
# building: one kernel library, a plan per candidate, exported once
@dataclasses.dataclass
class BuiltLane:
    """A built candidate: an exported lane module (``path``), the VM (``path`` None) or an error."""

    path: Path | None = None
    error: str | None = None
    seconds: float = 0.0


def _without_scope_warnings():
    """Drop TVM's per-function ``Warning: Scope Saving:`` / ``Scope Loaded:`` lines (hundreds of
    them, printed by the C++ executable writer on fd 2); every other line passes."""
    return filtered_stderr("Warning: Scope Saving", "Warning: Scope Loaded")


def _export(kernels, path: Path) -> Path:
    """``kernels``' executable exported to ``path`` unless the file is there already."""
    from tvm_sched.tune.workdir import atomic_path

    if not path.exists():
        with _without_scope_warnings(), atomic_path(path) as part:
            kernels.exe.export_library(str(part))
    return path


class LaneBuilder(CandidateBuilder):
    """Plans and exports lane candidates from one :class:`LaneKernels` compilation (and the
    Relax VM anchor from another when its kernels are tuned for a different thread count); the
    lane path's :class:`~tvm_sched.tune.candidate.CandidateBuilder`.

    Parameters
    ----------
    kernels
        The lane plans' :class:`~tvm_sched.runtime.builder.LaneKernels`.
    tmp
        A directory for the exported candidates (and the libraries not given a path).
    lib_path
        Where the lane plans' kernel library is (or is exported to, when missing).
    threads_per_lane
        Threads each lane runs its kernels with.
    vm_kernels
        The Relax VM's own compilation (``None``: the VM uses ``kernels``).
    vm_lib_path
        Where its library is (or is exported to), as ``lib_path``.
    """

    def __init__(self, kernels, tmp: Path, lib_path: Path | None = None, *,
                 threads_per_lane: int = 1, vm_kernels=None, vm_lib_path: Path | None = None):
        self.k = kernels
        self.tmp = Path(tmp)
        #: The kernel library of the lane plans: ``lib_path`` when given (kept, e.g. in the
        #: work dir for a resumed run), else in ``tmp``; exported unless it exists.
        self.lib_path = _export(kernels, Path(lib_path) if lib_path is not None
                                else self.tmp / "kernels.so")
        #: Threads each lane runs its kernels with (the kernels were tuned for as many).
        self.threads_per_lane = int(threads_per_lane)
        #: The Relax VM's kernels (the anchor, all cores; tuned for them) and their library:
        #: the lane plans' own when not given.
        self.vm_k = vm_kernels if vm_kernels is not None else kernels
        self.vm_lib_path = (self.lib_path if vm_kernels is None else _export(
            vm_kernels, Path(vm_lib_path) if vm_lib_path is not None
            else self.tmp / "vm_kernels.so"))
        #: Threads the Relax VM runs with on the device: its target's ``num-cores`` (the
        #: cores its kernels were built for), ``None`` when the target does not say.
        self.vm_threads = target_threads(self.vm_k.target)
        self._plans: dict[str, Any] = {}

    def schedule(self, c: LaneCandidate):
        """The schedule of a lane candidate.

        Parameters
        ----------
        c
            A candidate with ``kind="lanes"`` (its ``order`` and ``lane`` set).

        Returns
        -------
        tvm_sched.schedule.Schedule
            Its order and lane assignment.
        """
        from tvm_sched.schedule import Schedule

        return Schedule(order=tuple(c.order), lane=tuple(c.lane))

    def plan(self, c: LaneCandidate):
        """The lane plan of a candidate (made once per candidate hash, then kept).

        Parameters
        ----------
        c
            A candidate with ``kind="lanes"``.

        Returns
        -------
        tvm_sched.runtime.plan.LanePlan
            Its plan on the lane kernels, ``threads_per_lane`` threads per lane.
        """
        if c.hash not in self._plans:
            self._plans[c.hash] = self.k.plan(self.schedule(c),
                                              threads_per_lane=self.threads_per_lane,
                                              meta={"candidate": c.name, "source": c.source})
        return self._plans[c.hash]

    def export(self, c: LaneCandidate, path: Path) -> Path:
        """Write candidate ``c`` as a lane artifact (no engine is started for it).

        Parameters
        ----------
        c
            A candidate with ``kind="lanes"``.
        path
            The artifact to write.

        Returns
        -------
        Path
            The artifact written.
        """
        from tvm_sched.runtime.artifact import write_artifact

        plan = self.plan(c)
        plan.validate(num_consts=len(self.k.constants))
        arrays = {f"param_{self.k.num_input + i}": w for i, w in enumerate(self.k.weights)}
        arrays.update({f"const_{i}": x for i, x in enumerate(self.k.constants)})
        return write_artifact(path, plan, arrays, lambda p: shutil.copyfile(self.lib_path, p))

    def build(self, c: LaneCandidate) -> BuiltLane:
        """Export a lane candidate into ``tmp``; errors come back in the result, never raised.

        Parameters
        ----------
        c
            The candidate; the VM and the anchors need no build.

        Returns
        -------
        BuiltLane
            The artifact's path and the seconds it took, the error's first line, or neither
            (the VM, an anchor).
        """
        t0 = time.perf_counter()
        if c.kind in ("vm", "anchor"):  # nothing to build: the device has them
            return BuiltLane(None, None, 0.0)
        try:
            path = self.export(c, self.tmp / f"lane_{c.hash}.tar")
        except Exception as err:  # noqa: BLE001 - a plan that cannot be built is a result
            return BuiltLane(None, one_line(err, last=True, with_type=True),
                             time.perf_counter() - t0)
        return BuiltLane(path, None, time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# proposing
def propose_lanes(graph, lanes: int, solvers: Sequence[str], *, samples: int, per_solver: int,
                  budget: float, seed: int,
                  progress: Callable[[str], None] | None = None
                  ) -> tuple[list[LaneCandidate], dict[str, dict]]:
    """Every solver's schedules at ``lanes`` lanes (same samples, same time budget) by the shared
    generator (:func:`tvm_sched.solvers.portfolio.propose`), list scheduling always among them,
    plus the executor at m = 1; deduplicated (aliases kept). ``info`` per solver: seconds,
    proposals, or the error that skipped it.

    Parameters
    ----------
    graph
        The model's operator graph (kernel durations as node durations).
    lanes
        Lanes the solvers schedule for.
    solvers
        Solver names, run in this order (``list`` is added when missing).
    samples
        Each sampler's ``samples`` option.
    per_solver
        Schedules kept per solver (at least 1).
    budget
        Seconds per solver.
    seed
        Seed of every solve.
    progress
        Called with each solver's name once it is done.

    Returns
    -------
    tuple
        ``(pool, info)``: the candidates, the executor at m = 1 first, then the distinct
        proposals in solver order; and per solver name its ``info`` with ``in_budget``
        (``False`` for a ``list`` added here).
    """
    from tvm_sched.cost import make_objective
    from tvm_sched.schedule import Schedule
    from tvm_sched.solvers.portfolio import propose

    n = graph.num_nodes
    m1 = Schedule(order=tuple(range(n)), lane=(0,) * n)
    one = make_objective("makespan", lanes=1)
    pool = [LaneCandidate("executor m=1", "baseline", "lanes", 1, m1.order, m1.lane,
                          float(one.evaluate(graph, m1)), baseline=True)]
    names = [*solvers, "list"]  # propose runs a repeated name once
    # CP-SAT: a portfolio of workers no larger than the machine
    got = propose(graph, make_objective("makespan", lanes=lanes), names, budget=budget,
                  seed=seed, samples=samples, per_solver=max(1, per_solver),
                  options={"cpsat": {"num_workers": max(1, min(8, num_cores()))}},
                  progress=progress)
    for p in got:
        c = LaneCandidate(p.name, p.source, "lanes", lanes,
                          tuple(int(v) for v in p.schedule.order),
                          tuple(int(v) for v in p.schedule.lane), p.value,
                          baseline="list" in (p.name, *p.aliases), aliases=list(p.aliases))
        if c.hash == pool[0].hash:  # lanes=1: the executor's own schedule
            pool[0].aliases += [c.name, *c.aliases]
            pool[0].baseline = True
        else:
            pool.append(c)
    info = {name: dict(v, in_budget=name in solvers) for name, v in got.info.items()}
    return pool, info


# --------------------------------------------------------------------------------------------
# the run
def kernel_library_name(model_hash: str, target: str) -> str:
    """The work-dir file of a model's compiled kernels: one per model, target and TVM version.

    Parameters
    ----------
    model_hash
        Identifies the model.
    target
        The target text (with whatever else sets the kernels apart, e.g. the database).

    Returns
    -------
    str
        ``kernels-<digest>.so``.
    """
    import hashlib

    import tvm

    text = json.dumps([model_hash, target, tvm.__version__])
    return f"kernels-{hashlib.sha1(text.encode()).hexdigest()[:16]}.so"


def _check_budget(budget: int | None, vm: LaneCandidate, pool: Sequence[LaneCandidate]) -> None:
    """Something fits the memory budget (the VM or a proposed plan), or a
    :class:`TuneInputError` before anything is measured, as the VM-order path does."""
    if budget is None:
        return
    least = min([c.arena_bytes or 0 for c in pool] + [vm.arena_bytes or 0])
    if least > budget:
        raise TuneInputError(
            f"nothing fits the memory budget of {budget:,} B: the smallest arena among the "
            f"{len(pool)} proposed lane plans and the Relax VM ({vm.arena_bytes or 0:,} B) is "
            f"{least:,} B; raise --memory-budget")
    if (vm.arena_bytes or 0) > budget:
        log.warning("the Relax VM's %s B exceed the memory budget of %s B: the pick is the "
                    "fastest lane plan that fits", f"{vm.arena_bytes:,}", f"{budget:,}")


def _state_key(model_hash: str, key_target: str, device_key: str, lanes: int, cfg) -> dict:
    """What the kernel durations and proposals in ``lane_state.json`` were made for: a resumed
    run reuses them only for the same key."""
    return {"model_hash": model_hash, "target": key_target, "device_key": device_key,
            "lanes": lanes, "solvers": list(cfg.solvers), "samples": cfg.samples,
            "per_solver": cfg.per_solver, "solver_budget": cfg.solver_budget, "seed": cfg.seed}


def _load_state(path: Path, key: dict, graph) -> dict | None:
    """The kernel durations and proposals of an earlier run with the same ``key``, or None.

    A state file that cannot be read, or whose values do not fit ``graph`` (a duration that is
    not a finite number >= 0, a schedule that is not a valid one of the graph), is ignored with
    a warning naming the file: the durations are measured and the proposals made again, as a
    records line with such faults is skipped. The proposals come back read, as
    ``state["pool"]`` (:class:`LaneCandidate` objects).
    """
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("key") != json.loads(json.dumps(key)):
        return None
    try:
        state["pool"] = _read_pool(state, graph)
    except Exception as err:  # noqa: BLE001 - any fault: recompute, say which file and why
        log.warning("%s does not fit this model (%s); profiling and proposing again", path,
                    one_line(err, limit=160))
        return None
    return state


def _read_pool(state: dict, graph) -> list[LaneCandidate]:
    """The proposals of a lane state file; raise on the first value that does not fit
    ``graph``."""
    import math

    from tvm_sched.schedule import Schedule

    times = state["kernel_times"]
    for name, sec in dict(times).items():
        if not isinstance(sec, (int, float)) or not math.isfinite(sec) or sec < 0:
            raise ValueError(f"kernel {name!r} has duration {sec!r}")
    pool = []
    for c in state["pool"]:
        cand = LaneCandidate(**{**c, "order": tuple(c["order"]), "lane": tuple(c["lane"])})
        Schedule(order=cand.order, lane=cand.lane).validate(graph, lanes=cand.lanes)
        if cand.predicted is not None and not math.isfinite(float(cand.predicted)):
            raise ValueError(f"candidate {cand.name!r} has predicted makespan {cand.predicted}")
        pool.append(cand)
    dict(state["solver_info"])
    return pool


def _anchors(model, work: Path, wanted, prog) -> tuple[dict[str, dict], list[Path]]:
    """The anchor specs the run measures (``wanted``: names of
    :data:`tvm_sched.tune.anchors.ANCHORS`) and the files the devices need for them (the ONNX
    file, exported from a zoo model once into the work dir)."""
    if not wanted:
        return {}, []
    onnx = None
    if any(anchors.ANCHORS[n][0] == "ort" for n in wanted):
        prog("anchors", 0, 1, "ONNX export")
        onnx = anchors.export_onnx(model.source, work / f"anchor-{model.hash}.onnx")
        prog("anchors", 1, 1, "ONNX file" if onnx else "no ONNX file")
    specs = {n: s for n, s in anchors.anchor_specs(model.source, onnx).items() if n in wanted}
    used = any(s.get("framework") == "ort" for s in specs.values())
    return specs, [onnx] if used and onnx is not None else []


def _survey(devices, lanes_asked) -> tuple[dict, int, str | None, int]:
    """What the devices offer now (the report says under which conditions it measured), the
    lanes (``auto``: the fewest any device offers: a plan must fit every device it is timed
    on), LLVM's name for the first device's CPU and the fewest cores of any device. The
    sessions are only borrowed: none is kept here (a one-client server must be free again for
    kernel tuning)."""
    conditions = {name: device_conditions(s) for name, s in devices}
    lanes = min(resolve_lanes(lanes_asked, s, conditions[name]) for name, s in devices)
    for name, s in devices:
        _require_lane_functions(name, s)
    facts = [device_facts(s) for _, s in devices]
    cores = min(c or num_cores() for _, c in facts)
    return conditions, lanes, facts[0][0], cores


def _lane_kernels(model, kernel_set, threads: int, work: Path):
    """The compiled kernels for ``threads`` threads (tuned where ``kernel_set`` has a database)
    and the work-dir file of their library: an earlier run's library (same model, target,
    database and TVM) is loaded instead of compiled again."""
    from tvm_sched.runtime.builder import LaneKernels
    from tvm_sched.tune.kernels import trials_done

    target = kernel_set.target(threads)
    db = kernel_set.database(threads)
    cache = work / kernel_library_name(model.hash, f"{target} db={db} "
                                       f"trials={trials_done(db) if db else 0}")
    with _without_scope_warnings():
        exe = LaneKernels.load_executable(cache) if cache.exists() else None
    if exe is None:
        cache.unlink(missing_ok=True)  # a torn or stale file: exported again
    return LaneKernels(model.mod, target, params=model.params, exe=exe, database=db), cache


def _open_devices(runner, lanes_asked, prog) -> tuple[list, dict, int, str | None, int]:
    """Stage *connect*: the devices' sessions and what they offer (:func:`_survey`)."""
    prog("connect", 0, 1, "device")
    devices = runner.open()
    if not devices:
        raise DeviceUnavailableError("the runner offers no device")
    conditions, lanes, cpu, cores = _survey(devices, lanes_asked)
    prog("connect", 1, 1, f"{len(devices)} device(s): {lanes} lanes")
    return devices, conditions, lanes, cpu, cores


def _kernel_stage(model, target, runner, work: Path, cfg, devices, cpu, cores: int,
                  threads: int, prog):
    """Stage *kernels*: the kernels tuned (or not) for the VM's and the lanes' thread counts;
    returns the devices' sessions (opened again after tuning) and the
    :class:`~tvm_sched.tune.kernels.KernelSet`."""
    if cfg.kernel_trials <= 0:
        # untuned kernels do not depend on the thread count: one compilation serves all
        kernel_set = prepare_kernels(model.mod, target, cpu, {cores}, work=work, trials=0,
                                     model_hash=model.hash)
        kernel_set.tunings[threads] = kernel_set.tunings[cores]
        return devices, kernel_set
    # a TVM RPC server serves one client at a time: MetaSchedule's measurements open their own
    # sessions, so ours are let go while it tunes and opened again after
    devices.clear()
    kernel_set = prepare_kernels(model.mod, target, cpu, {cores, threads}, work=work,
                                 trials=cfg.kernel_trials, model_hash=model.hash, runner=runner,
                                 seed=cfg.seed, timeout=cfg.timeout, progress=prog,
                                 lane_trials=cfg.lane_kernel_trials)
    devices = runner.open()
    if not devices:
        raise DeviceUnavailableError("the runner offers no device after kernel tuning")
    return devices, kernel_set


def _compile_stage(model, kernel_set, cores: int, threads: int, work: Path, tmp: Path, prog):
    """Stage *compile*: the lanes' and the VM's kernel libraries (from the work dir when an
    earlier run compiled them) and the :class:`LaneBuilder` over them."""
    prog("build", 0, 1, "kernels")
    k_vm, vm_cached = _lane_kernels(model, kernel_set, cores, work)
    k, cached = ((k_vm, vm_cached) if kernel_set.tunings[threads] is kernel_set.tunings[cores]
                 else _lane_kernels(model, kernel_set, threads, work))
    builder = LaneBuilder(k, tmp, lib_path=cached, threads_per_lane=threads,
                          vm_kernels=None if k is k_vm else k_vm,
                          vm_lib_path=None if k is k_vm else vm_cached)
    prog("build", 1, 1, "kernels")
    return k, builder


def _profile_stage(dev: LaneAdapter, builder: LaneBuilder, k, saved: dict | None, prog) -> list:
    """Stage *profile*: the kernels' durations on the device (the one-lane plan, each kernel
    on its real inputs), or those of the resumed state; ``k``'s graph gets them."""
    if saved is not None:
        kernel_times = saved["kernel_times"]
    else:
        prog("profile", 0, 1, "kernels on the device")
        n = k.graph.num_nodes
        m1 = LaneCandidate("executor m=1", "baseline", "lanes", 1, tuple(range(n)), (0,) * n)
        kernel_times = dev.profile(builder.export(m1, builder.tmp / "profile.tar"),
                                   builder.plan(m1))
    k.profile(kernel_times)
    prog("profile", 1, 1, f"{len(kernel_times)} kernels")
    return kernel_times


def _propose_stage(graph, lanes: int, cfg, saved: dict | None, state: dict, work: Path,
                   prog) -> tuple[list[LaneCandidate], dict]:
    """Stage *propose*: every solver's lane schedules (:func:`propose_lanes`), or those of the
    resumed state; a new proposal is saved in ``lane_state.json`` with the kernel durations
    (``state``) it was made on."""
    from tvm_sched.tune.workdir import atomic_write

    if saved is not None:
        return saved["pool"], saved["solver_info"]
    solvers = list(cfg.solvers)
    proposed: list[str] = []

    def solver_done(name: str) -> None:
        proposed.append(name)
        prog("propose", len(proposed), len(dict.fromkeys([*solvers, "list"])), name)

    pool, solver_info = propose_lanes(
        graph, lanes, solvers, samples=cfg.samples, per_solver=max(1, cfg.per_solver),
        budget=cfg.solver_budget, seed=cfg.seed, progress=solver_done)
    atomic_write(work / "lane_state.json", json.dumps(
        {**state, "pool": [dataclasses.asdict(c) for c in pool], "solver_info": solver_info}))
    return pool, solver_info


def _plan_stage(builder: LaneBuilder, k, pool: Sequence[LaneCandidate], memory_budget):
    """Stage *plan*: each proposal's arena bytes, the VM anchor candidate and the memory
    budget (checked: something fits)."""
    from tvm_sched.tune.pick import parse_memory_budget

    tvm_bytes = k.tvm_planned_bytes
    for c in pool:
        c.arena_bytes = int(builder.plan(c).arena_bytes)
    vm = LaneCandidate("relax-vm", "baseline", "vm", 1, None, None,
                       float(np.sum(k.graph.duration)), tvm_bytes, baseline=True)
    budget = parse_memory_budget(memory_budget, tvm_bytes or 0)
    _check_budget(budget, vm, pool)
    return vm, budget


def _export_stage(out, builder: LaneBuilder, work: Path, export: bool):
    """Stage *export*: ``best.so`` (the VM), ``best_lanes.tar`` and ``best_plan.json`` (the
    pick, or the fastest lane plan when the VM is the pick); returns that lane plan's record."""
    from tvm_sched.tune.workdir import atomic_path, atomic_write

    best, fastest = out.best, out.fastest
    lane_pick = best if best is not None and best.kind == "lanes" else (
        fastest if fastest is not None and fastest.kind == "lanes" else None)
    if export:
        with atomic_path(work / "best.so") as p:
            shutil.copyfile(builder.vm_lib_path, p)
        if lane_pick is not None:
            cand = next(c for c in out.chosen if c.hash == lane_pick.order_hash)
            with atomic_path(work / "best_lanes.tar") as p:
                builder.export(cand, p)
            atomic_write(work / "best_plan.json", builder.plan(cand).to_json(indent=1))
    return lane_pick


def _lane_result(model, out, lanes: int, lane_pick, work: Path, seconds: dict, budget,
                 solver_info: dict, info: dict):
    """The run's :class:`~tvm_sched.tune.result.TuneResult` (``lanes`` set) from the search's
    outcome."""
    from tvm_sched.tune.result import TuneResult

    return TuneResult(
        model=model.name, objective="latency", lanes=lanes, records=out.records,
        best=out.best, baseline=next((r for r in out.records if r.kind == "vm"), None),
        fastest=out.fastest, lane_pick=lane_pick, spearman={"predicted": out.spearman},
        work_dir=work, seconds=seconds, memory_budget=budget, measured_now=out.measured_now,
        solver_info=solver_info, info=info)


class _LaneRun:
    """The lane kind of :func:`~tvm_sched.tune.stages.run_stages`: one method per stage; the
    state passes between them on ``self``; ``close`` lets the devices and files go."""

    def __init__(self, model, target, key_target: str, runner, work: Path, cfg, st: Stages):
        self.model, self.target, self.key_target = model, target, key_target
        self.runner, self.work, self.cfg, self.st = runner, work, cfg, st
        self.t_start = time.perf_counter()
        self.devs: list[LaneRunner] = []
        self.tmp_dir: tempfile.TemporaryDirectory | None = None
        self.result = None

    def devices(self) -> None:
        rpc.register()  # in-process sessions call these (and the anchors') in this process
        anchors.register()
        self.runner.prepare()
        with self.st.timed("connect"):
            self.sessions, self.conditions, self.lanes, self.cpu, self.cores = _open_devices(
                self.runner, self.cfg.lanes, self.st.prog)
        self.threads = max(1, self.cores // self.lanes)  # m lanes x t threads per lane

    def kernels(self) -> None:
        st, cfg, model = self.st, self.cfg, self.model
        with st.timed("kernels"):
            self.sessions, self.kernel_set = _kernel_stage(
                model, self.target, self.runner, self.work, cfg, self.sessions, self.cpu,
                self.cores, self.threads, st.prog)
        self.tmp_dir = tempfile.TemporaryDirectory(prefix="tvm_sched_lanes_tune_")
        with st.timed("compile"):
            self.k, self.builder = _compile_stage(model, self.kernel_set, self.cores,
                                                  self.threads, self.work,
                                                  Path(self.tmp_dir.name), st.prog)
        self.specs, files = _anchors(model, self.work, cfg.anchors, st.prog)
        runner = self.runner  # not self: the adapters must not keep this run (and its sessions)
        self.devs += [LaneRunner(name, se, self.builder, model.inputs, repeats=cfg.repeats,
                                 min_repeat_ms=cfg.min_repeat_ms, timeout=cfg.timeout,
                                 reopen=lambda name=name: runner.reopen(name),
                                 anchors=self.specs, upload=files)
                      for name, se in self.sessions]

    def profile(self) -> None:
        # kernel durations on the device, before any solver runs; the proposals made on them.
        # Both are kept in the work dir, so a resumed run re-measures and re-proposes nothing.
        self.state_key = _state_key(self.model.hash, self.key_target, self.runner.key,
                                    self.lanes, self.cfg)
        self.saved = _load_state(self.work / "lane_state.json", self.state_key, self.k.graph)
        with self.st.timed("profile"):
            self.kernel_times = _profile_stage(self.devs[0], self.builder, self.k, self.saved,
                                               self.st.prog)

    def propose(self) -> None:
        with self.st.timed("propose"):
            self.pool, self.solver_info = _propose_stage(
                self.k.graph, self.lanes, self.cfg, self.saved,
                {"key": self.state_key, "kernel_times": self.kernel_times}, self.work,
                self.st.prog)

    def plan(self) -> None:
        with self.st.timed("plan"):
            self.vm, self.budget = _plan_stage(self.builder, self.k, self.pool,
                                               self.cfg.memory_budget)

    def search(self) -> None:
        model, key_target, device_key = self.model, self.key_target, self.runner.key
        # PyTorch / ONNX Runtime in the same rounds; baselines (always measured), never picked
        anchor_cands = [LaneCandidate(a, "anchor", "anchor", 1, baseline=True)
                        for a in self.specs]
        self.db = Database(self.work / "lane_records.jsonl")
        with self.st.timed("measure"):
            self.out = search(
                LaneObjective(), [self.vm, *anchor_cands, *self.pool], builder=self.builder,
                runner=InterleavedRunner(self.devs, repeats=self.cfg.repeats),
                database=self.db, key=lambda c: c.record_key(model.hash, key_target, device_key),
                make_record=lambda c, m: TuneRecord.make(
                    c, m, model=model.name, model_hash=model.hash, target=key_target,
                    device_key=device_key),
                budget=self.budget, top_k=self.cfg.top_k, progress=self.st.prog)

    def export(self) -> None:
        with self.st.timed("export"):
            self.lane_pick = _export_stage(self.out, self.builder, self.work, self.cfg.export)

    def report(self) -> None:
        from tvm_sched.tune.report import write_lane_report

        cfg, k, st = self.cfg, self.k, self.st
        st.secs["total"] = time.perf_counter() - self.t_start
        self.result = _lane_result(self.model, self.out, self.lanes, self.lane_pick, self.work,
                                   st.secs, self.budget, self.solver_info, {
            "target": self.key_target, "device_key": self.runner.key,
            "device": ", ".join(d.name for d in self.devs),
            "nodes": int(k.graph.num_nodes), "kernels": len(self.kernel_times),
            "tvm_planned": self.vm.arena_bytes, "proposed": len(self.pool),
            "chosen": len(self.out.chosen), "samples": cfg.samples, "top_k": cfg.top_k,
            "repeats": cfg.repeats, "solver_budget": cfg.solver_budget,
            "sum_durations_s": float(np.sum(k.graph.duration)),
            "records_skipped": self.db.skipped, "model_hash": self.model.hash,
            "kernels_from_work_dir": k.compile_s < 1e-3,
            "cores": self.cores, "threads_per_lane": self.threads,
            "vm_pool_threads": sorted({d.vm_pool for d in self.devs if d.vm_pool}),
            "kernel_tuning": self.kernel_set.describe(),
            "reconnects": sum(d.reconnects for d in self.devs),
            "conditions": self.conditions})
        write_lane_report(self.result)

    def close(self) -> None:
        # a TVM RPC server serves one client at a time: the sessions go now, not at the next
        # garbage collection (a resumed run on the same server connects right after)
        for d in self.devs:
            d.close()
        self.devs, self.sessions = [], []
        # lane modules that in-process sessions loaded here: their engines' threads end now
        rpc.forget()
        anchors.forget()
        if self.tmp_dir is not None:
            self.tmp_dir.cleanup()


def tune_lanes(model, target, key_target: str, runner, work: Path, cfg,
               progress: Callable | None = None):
    """The lane objective end to end (see the module docstring); returns a
    :class:`~tvm_sched.tune.result.TuneResult` with ``lanes`` set.

    Parameters
    ----------
    model
        The :class:`~tvm_sched.tune.model.TuneModel`.
    target
        The user's target (the device targets are made from it).
    key_target
        The target text records and the proposal state are keyed by.
    runner
        The runner whose devices measure.
    work
        The work dir (locked by the caller).
    cfg
        The :class:`~tvm_sched.tune.tuner.TuneConfig` (``cfg.lanes`` set).
    progress
        ``progress(stage, done, total, text)`` as the run goes on.

    Returns
    -------
    TuneResult
        With ``lanes`` set: the records, the pick and the report's data (also written to the
        work dir).

    Raises
    ------
    DeviceUnavailableError
        The runner offers no device, or devices were lost and could not be reopened.
    TuneInputError
        Lanes that are not valid or more than a device offers, a device without the
        tvm_sched RPC server's lane functions, or a memory budget nothing fits.
    """
    st = Stages(progress)
    return run_stages(_LaneRun(model, target, key_target, runner, work, cfg, st), st)
