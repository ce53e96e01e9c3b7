"""``build``: a Relax module (+ a lane schedule, or a lane count and a solver) -> a ``LaneModule``.

Contract
--------
1. The module is fused if it is not already (:func:`tvm_sched.relax.frontend.prepare`).
2. A MetaSchedule database (TVM's JSON database, or its work directory), when given, is applied
   to the kernels first (:func:`apply_database`: ``relax.transform.MetaScheduleApplyDatabase``
   under the target, weights packed at load), so the lanes run tuned kernels; without one they
   run TVM's default kernels.
3. The module is compiled once (``tvm.compile``): its kernels serve the lanes, and its
   ``main_transform_params``, when present, turns the raw ``params`` into ``main``'s weights.
4. The schedule: the one given; else with ``lanes`` > 1 the ``solver``'s best makespan schedule
   on kernel durations measured by :func:`tvm_sched.relax.profile.profile_kernels`; else the
   module's own order on one lane.
5. The plan (:func:`tvm_sched.runtime.lower.plan_module`) with the arena planned under the
   plan's happens-before relation; its ``meta`` records TVM's planned bytes for the module in its
   own order (:func:`tvm_sched.relax.memory.planned_bytes`), the predicted makespan and the sum
   of kernel durations when they were measured.

Lanes x threads-per-lane must fit the cores this process may use unless
``allow_oversubscribe``; the check comes before any compilation.

:class:`LaneKernels` is steps 1-3 done once: many lane modules (schedules, lane counts, engines,
threads per lane) then share the compilation, and :meth:`LaneKernels.reference` runs the Relax
VM on the same kernels (the reference lanes must match bit for bit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import tvm
from tvm import relax

from tvm_sched.errors import InvalidScheduleError
from tvm_sched.relax.frontend import flatten_values, prepare
from tvm_sched.relax.passes import is_fused
from tvm_sched.relax.prepack import mark_layout_free, prepack
from tvm_sched.runtime.cores import check_cores
from tvm_sched.runtime.lower import main_graph, module_constants, plan_module
from tvm_sched.runtime.module import LaneModule
from tvm_sched.runtime.plan import LanePlan
from tvm_sched.schedule import Schedule

__all__ = ["build", "LaneKernels", "apply_database", "compile_kernels"]

log = logging.getLogger(__name__)


def apply_database(mod: tvm.IRModule, target: tvm.target.Target, database) -> tvm.IRModule:
    """``mod`` with the kernels of a MetaSchedule ``database`` (an object or a work directory).

    Parameters
    ----------
    mod
        A fused Relax module.
    target
        The target the database was tuned for.
    database
        A MetaSchedule database, or the path of a JSON database's work directory (which must
        exist).

    Returns
    -------
    tvm.IRModule
        ``mod`` after ``MetaScheduleApplyDatabase`` on its marked kernels (kernels without a
        record are kept), the weights the tuned kernels read packed by
        ``main_transform_params`` (:mod:`tvm_sched.relax.prepack`).
    """
    from tvm.s_tir import meta_schedule as ms

    if isinstance(database, str) or hasattr(database, "__fspath__"):
        database = ms.database.JSONDatabase(work_dir=str(database), allow_missing=False)
    with target, database:
        marked = relax.transform.MetaScheduleApplyDatabase()(mark_layout_free(mod))
        # a database tuned elsewhere on unmarked kernels (TVM's tune_relax) matches those only
        plain = relax.transform.MetaScheduleApplyDatabase()(mod)
    return prepack(marked) if _scheduled(marked) >= _scheduled(plain) else plain


def _scheduled(mod: tvm.IRModule) -> int:
    """Kernels of ``mod`` a database scheduled."""
    return sum(1 for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc)
               and f.attrs is not None and "tirx.is_scheduled" in f.attrs)


def compile_kernels(mod: tvm.IRModule, target: tvm.target.Target):
    """``tvm.compile(mod, target)``: the executable (its ``mod`` holds the kernels).

    Parameters
    ----------
    mod
        The fused module.
    target
        The CPU target.

    Returns
    -------
    relax.VMExecutable
        The compiled executable.
    """
    return tvm.compile(mod, target)


def _main_params(exe, mod: tvm.IRModule, params: Sequence | None) -> list[np.ndarray]:
    """``main``'s weights from the raw ``params`` (through ``main_transform_params``)."""
    if params is None:
        return []
    params = [np.asarray(p) for p in params]
    names = [gv.name_hint for gv in mod.get_global_vars()]
    if "main_transform_params" not in names:
        return params
    dev = tvm.cpu(0)
    vm = relax.VirtualMachine(exe, dev)
    out = vm["main_transform_params"]([tvm.runtime.tensor(p, dev) for p in params])
    return [o.numpy() for o in flatten_values(out)]


def _schedule(graph, lanes: int, solver: str, budget: float | None, seed: int) -> Schedule:
    from tvm_sched.cost import make_objective
    from tvm_sched.solvers import solve

    objective = make_objective("makespan", lanes=lanes)
    best = solve(graph, objective, solver=solver, budget=budget, seed=seed).best
    if best.lane is None:
        best = objective.complete(graph, best)
    return best


class LaneKernels:
    """A model compiled once: fused module, kernels, ``main``'s weights and constants.

    Many lane modules (schedules, lane counts, engines) share one compilation:
    :meth:`module` costs a plan and an allocation, no build.

    Parameters
    ----------
    mod, target, params, database
        As for :func:`build`.
    exe
        The executable of an earlier compilation of the same module for the same target (e.g.
        loaded back from its exported library, :meth:`load_executable`): the compilation is
        skipped. The caller vouches that it matches ``mod``, ``target`` and ``database``.

    Raises
    ------
    InvalidScheduleError
        A target other than ``llvm`` or ``c``, or ``params`` of the wrong count for ``main``.
    ExtractionError
        ``main`` holds a binding the runtime cannot run (named).
    """

    def __init__(self, mod: tvm.IRModule, target: str | tvm.target.Target = "llvm", *,
                 params: Sequence | None = None, database: Any = None, exe: Any = None):
        target = target if isinstance(target, tvm.target.Target) else tvm.target.Target(target)
        if target.kind.name not in ("llvm", "c"):
            raise InvalidScheduleError(f"the lane runtime runs CPU kernels; target {target} is "
                                       "not supported")
        self.target = target
        if not is_fused(mod):
            mod = prepare(mod)
        if database is not None:
            mod = apply_database(mod, target, database)
        self.mod = mod
        self.graph = main_graph(mod)
        t0 = time.perf_counter()
        self.exe = compile_kernels(mod, target) if exe is None else exe
        self.compile_s = time.perf_counter() - t0
        self.weights = _main_params(self.exe, mod, params)
        main = mod["main"]
        attrs = dict(main.attrs) if main.attrs is not None else {}
        self.num_input = int(attrs.get("num_input", len(main.params)))
        if self.weights and self.num_input + len(self.weights) != len(main.params):
            raise InvalidScheduleError(f"{len(self.weights)} weights for "
                                       f"{len(main.params) - self.num_input} weight parameters "
                                       "of main")
        self.constants = module_constants(mod)
        self.kernel_times: dict[str, float] | None = None
        self._vm = None
        self._tvm_bytes: int | None = None

    @staticmethod
    def load_executable(path) -> Any | None:
        """The executable exported to ``path`` (``exe.export_library``), or None when the file
        is missing or does not load (then the caller compiles again).

        Parameters
        ----------
        path
            The exported library (a string or a path; a path that exists but does not load is
            logged).

        Returns
        -------
        relax.VMExecutable or None
            The executable, for the ``exe`` argument.
        """
        try:
            return relax.VMExecutable(tvm.runtime.load_module(str(path)))
        except Exception as err:  # noqa: BLE001 - a stale or torn cache file is recompiled
            if hasattr(path, "exists") and path.exists():
                log.warning("%s does not load (%s); compiling again", path, err)
            return None

    @property
    def tvm_planned_bytes(self) -> int | None:
        """TVM's planned bytes for the module in its own order (None if unavailable)."""
        if self._tvm_bytes is None:
            try:
                from tvm_sched.relax.memory import planned_bytes

                self._tvm_bytes = int(planned_bytes(self.mod))
            except Exception as err:  # noqa: BLE001 - a figure, not a requirement
                log.warning("TVM's planned bytes unavailable: %s", err)
        return self._tvm_bytes

    def profile(self, kernel_times: dict[str, float] | None = None, *, repeat: int = 5):
        """Measure kernel durations (``profile_kernels``) or take ``kernel_times``; the graph's
        durations become them.

        Parameters
        ----------
        kernel_times
            Seconds per kernel name; ``None``: measured.
        repeat
            Repetitions of each measurement.

        Returns
        -------
        dict
            The kernel times now in use (also ``self.kernel_times``).
        """
        if kernel_times is None:
            from tvm_sched.relax.profile import profile_kernels

            kernel_times = profile_kernels(self.mod, self.target, repeat=repeat)
        self.kernel_times = dict(kernel_times)
        self.graph = main_graph(self.mod, kernel_times=self.kernel_times)
        return self.kernel_times

    def schedule(self, lanes: int, solver: str = "list", *, budget: float | None = 5.0,
                 seed: int = 0) -> Schedule:
        """The ``solver``'s best makespan schedule on ``lanes`` lanes (durations: measured if
        :meth:`profile` ran, else the roofline estimate).

        Parameters
        ----------
        lanes
            Number of lanes; 1 gives the module's own order without solving.
        solver
            A registered solver name.
        budget
            The solver's time budget in seconds.
        seed
            The solver's seed.

        Returns
        -------
        Schedule
            With lanes (completed by the makespan objective when the solver gave none).
        """
        if lanes == 1:
            return Schedule(order=tuple(range(self.graph.num_nodes)),
                            lane=(0,) * self.graph.num_nodes)
        return _schedule(self.graph, lanes, solver, budget, seed)

    def predicted_makespan(self, schedule: Schedule) -> float:
        """Makespan of ``schedule`` on the graph's durations (chain semantics).

        Parameters
        ----------
        schedule
            A lane schedule of the graph.

        Returns
        -------
        float
            Seconds.
        """
        from tvm_sched.cost import make_objective

        return float(make_objective("makespan", lanes=schedule.num_lanes)
                     .evaluate(self.graph, schedule))

    def plan(self, schedule: Schedule | None = None, *, threads_per_lane: int = 1,
             meta: dict | None = None):
        """The :class:`LanePlan` of ``schedule``, with the figures known so far in its meta.

        Parameters
        ----------
        schedule
            A lane schedule of the graph; ``None``: the module's order on one lane.
        threads_per_lane
            TVM CPU threads per lane.
        meta
            Further entries of the plan's meta.

        Returns
        -------
        LanePlan
            The plan; its meta has TVM's planned bytes and, after :meth:`profile`, the
            predicted makespan.
        """
        info: dict[str, Any] = {}
        if self.tvm_planned_bytes is not None:
            info["tvm_planned_bytes"] = self.tvm_planned_bytes
        if self.kernel_times is not None:
            sched = schedule or Schedule(order=tuple(range(self.graph.num_nodes)))
            info["predicted_makespan_s"] = self.predicted_makespan(sched)
            info["sum_durations_s"] = float(np.sum(self.graph.duration))
        info.update(meta or {})
        return plan_module(self.mod, schedule, graph=self.graph,
                           threads_per_lane=threads_per_lane, meta=info)

    def module(self, schedule: Schedule | LanePlan | None = None, *, threads_per_lane: int = 1,
               engine: str = "auto", pin: bool = True, allow_oversubscribe: bool = False,
               device="cpu", meta: dict | None = None, adaptive: bool = True,
               queues: bool | None = None) -> LaneModule:
        """A :class:`LaneModule` running ``schedule`` (default: the module's order, one lane),
        or a plan made before by :meth:`plan` (then ``threads_per_lane`` replaces the plan's);
        ``adaptive`` and ``queues`` as :class:`LaneModule`'s.

        Parameters
        ----------
        schedule
            A lane schedule, a plan, or ``None``.
        threads_per_lane
            TVM CPU threads per lane.
        engine, pin, allow_oversubscribe, device, adaptive, queues
            As for :class:`LaneModule`.
        meta
            Further entries of a new plan's meta.

        Returns
        -------
        LaneModule
            With ``kernels`` set to this object.

        Raises
        ------
        InvalidScheduleError
            Lanes times threads exceed the usable cores (without ``allow_oversubscribe``), or
            the schedule does not fit the graph.
        """
        if isinstance(schedule, LanePlan):
            plan = schedule.with_threads(threads_per_lane)
        else:
            plan = None
        m = plan.num_lanes if plan is not None else \
            (schedule.num_lanes if schedule is not None else 1)
        _check_cores(m, threads_per_lane, allow_oversubscribe)
        if plan is None:
            plan = self.plan(schedule, threads_per_lane=threads_per_lane, meta=meta)
        bound = {self.num_input + i: w for i, w in enumerate(self.weights)}
        lane_mod = LaneModule(plan, self.exe.mod, device, bound=bound, constants=self.constants,
                              engine=engine, pin=pin, allow_oversubscribe=allow_oversubscribe,
                              exporter=self.exe.export_library, adaptive=adaptive,
                              queues=queues)
        lane_mod.kernels = self
        return lane_mod

    def vm(self):
        """A Relax VM on the same executable (the reference the lanes must match)."""
        if self._vm is None:
            self._vm = relax.VirtualMachine(self.exe, tvm.cpu(0))
        return self._vm

    def vm_args(self, inputs: Sequence) -> list:
        """The VM arguments of ``main``: the inputs, then the bound weights, as CPU tensors.

        Parameters
        ----------
        inputs
            Array-likes, one per input of ``main``.

        Returns
        -------
        list of tvm.runtime.Tensor
            Inputs first, weights after.
        """
        dev = tvm.cpu(0)
        return [tvm.runtime.tensor(np.asarray(x), dev) for x in inputs] + \
            [tvm.runtime.tensor(w, dev) for w in self.weights]

    def reference(self, *inputs) -> list[np.ndarray]:
        """``main``'s outputs from the Relax VM on ``inputs`` (and the bound weights).

        Parameters
        ----------
        *inputs
            Array-likes, one per input of ``main``.

        Returns
        -------
        list of numpy.ndarray
            The outputs, flattened.
        """
        out = self.vm()["main"](*self.vm_args(inputs))
        return [o.numpy() for o in flatten_values(out)]


def _check_cores(m: int, threads_per_lane: int, allow_oversubscribe: bool) -> None:
    if m < 1:
        raise InvalidScheduleError(f"lanes must be >= 1, got {m}")
    check_cores(m, threads_per_lane, allow_oversubscribe)


def build(mod: tvm.IRModule, target: str | tvm.target.Target = "llvm",
          schedule: Schedule | None = None, *, lanes: int | None = None, solver: str = "list",
          params: Sequence | None = None, engine: str = "auto", threads_per_lane: int = 1,
          database: Any = None, budget: float | None = 5.0, seed: int = 0,
          kernel_times: dict[str, float] | None = None, pin: bool = True,
          allow_oversubscribe: bool = False, device="cpu") -> LaneModule:
    """Build a lane module (see the module docstring).

    Parameters
    ----------
    mod
        A Relax module whose ``main`` takes ``(*inputs, *weights)``; fused if it is not.
    target
        A CPU target (``"llvm"``, ``"llvm -mcpu=..."``).
    schedule
        A schedule of the nodes of ``main``'s graph (:func:`~tvm_sched.runtime.lower.main_graph`);
        its lanes are the lanes.
    lanes
        Number of lanes to schedule with ``solver`` (default 1: the module's own order).
    solver
        A solver name of :mod:`tvm_sched.solvers` for the makespan objective.
    params
        Raw weights (``main``'s parameters after the inputs, before ``main_transform_params``);
        bound now. ``None``: every parameter of ``main`` is an input of each call.
    engine
        ``"auto"`` (native when built), ``"native"`` or ``"python"``.
    threads_per_lane
        TVM CPU threads each lane's kernels use (tuned kernels can use several).
    database
        MetaSchedule database (object or JSON work directory) applied before building kernels.
    budget, seed
        Solver time budget (seconds) and seed.
    kernel_times
        Seconds per kernel name; default measured with ``profile_kernels`` when lanes > 1.
    pin, allow_oversubscribe
        Engine options: pin lanes to cores; allow more lane threads than usable cores.
    device
        ``"cpu"`` or a TVM CPU device.

    Returns
    -------
    LaneModule
        With ``kernels`` (the :class:`LaneKernels`) attached.

    Raises
    ------
    InvalidScheduleError
        A schedule and a different lane count, lanes x threads beyond the cores, a schedule
        that does not fit the graph, a non-CPU target.
    ExtractionError
        ``main`` holds a binding the runtime cannot run (named).
    """
    t_start = time.perf_counter()
    if schedule is not None and lanes is not None and lanes != schedule.num_lanes:
        raise InvalidScheduleError(f"the schedule has {schedule.num_lanes} lanes; lanes={lanes}")
    m = schedule.num_lanes if schedule is not None else (lanes or 1)
    _check_cores(m, threads_per_lane, allow_oversubscribe)
    kernels = LaneKernels(mod, target, params=params, database=database)
    meta: dict[str, Any] = {}
    if schedule is None and m > 1:
        kernels.profile(kernel_times)
        t0 = time.perf_counter()
        schedule = kernels.schedule(m, solver, budget=budget, seed=seed)
        meta.update(solver=solver, solve_s=time.perf_counter() - t0)
    elif kernel_times is not None:
        kernels.profile(kernel_times)
    lane_mod = kernels.module(schedule, threads_per_lane=threads_per_lane, engine=engine, pin=pin,
                              allow_oversubscribe=allow_oversubscribe, device=device, meta=meta)
    log.info("lane module built in %.2f s: %s", time.perf_counter() - t_start,
             lane_mod.plan.summary())
    return lane_mod
