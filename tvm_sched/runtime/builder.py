"""``build``: a Relax module (+ a lane schedule, or a lane count and a solver) -> a ``LaneModule``.

Contract
--------
1. The module is fused if it is not already (:func:`tvm_sched.relax.frontend.prepare`).
2. A MetaSchedule database (TVM's JSON database, or its work directory), when given, is applied
   to the kernels first (``relax.transform.MetaScheduleApplyDatabase`` under the target), so the
   lanes run tuned kernels; without one they run TVM's default kernels.
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
from tvm_sched.runtime.engine_python import usable_cores
from tvm_sched.runtime.lower import main_graph, module_constants, plan_module
from tvm_sched.runtime.module import LaneModule
from tvm_sched.schedule import Schedule

__all__ = ["build", "apply_database", "compile_kernels"]

log = logging.getLogger(__name__)


def apply_database(mod: tvm.IRModule, target: tvm.target.Target, database) -> tvm.IRModule:
    """``mod`` with the kernels of a MetaSchedule ``database`` (an object or a work directory)."""
    from tvm.s_tir import meta_schedule as ms

    if isinstance(database, str) or hasattr(database, "__fspath__"):
        database = ms.database.JSONDatabase(work_dir=str(database), allow_missing=False)
    with target, database:
        return relax.transform.MetaScheduleApplyDatabase()(mod)


def compile_kernels(mod: tvm.IRModule, target: tvm.target.Target):
    """``tvm.compile(mod, target)``: the executable (its ``mod`` holds the kernels)."""
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
        its lanes are the lanes. Excludes ``lanes``/``solver``.
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

    Raises
    ------
    InvalidScheduleError
        Both ``schedule`` and ``lanes`` given, lanes x threads exceed the cores, a schedule that
        does not fit the graph.
    ExtractionError
        ``main`` holds a binding the runtime cannot run (named).
    """
    t_start = time.perf_counter()
    target = target if isinstance(target, tvm.target.Target) else tvm.target.Target(target)
    if target.kind.name not in ("llvm", "c"):
        raise InvalidScheduleError(f"the lane runtime runs CPU kernels; target {target} is not "
                                   "supported")
    if schedule is not None and lanes is not None and lanes != schedule.num_lanes:
        raise InvalidScheduleError("give a schedule or a lane count, not both")
    m = schedule.num_lanes if schedule is not None else (lanes or 1)
    if m < 1:
        raise InvalidScheduleError(f"lanes must be >= 1, got {m}")
    cores = len(usable_cores())
    if not allow_oversubscribe and m * threads_per_lane > cores:
        raise InvalidScheduleError(
            f"{m} lanes x {threads_per_lane} thread(s) need {m * threads_per_lane} cores; this "
            f"process may use {cores} (pass allow_oversubscribe=True to run anyway)")
    if not is_fused(mod):
        mod = prepare(mod)
    if database is not None:
        mod = apply_database(mod, target, database)
    graph = main_graph(mod)
    exe = compile_kernels(mod, target)
    meta: dict[str, Any] = {}
    if schedule is None and m > 1:
        if kernel_times is None:
            from tvm_sched.relax.profile import profile_kernels

            kernel_times = profile_kernels(mod, target)
        graph = main_graph(mod, kernel_times=kernel_times)
        t0 = time.perf_counter()
        schedule = _schedule(graph, m, solver, budget, seed)
        meta["solver"] = solver
        meta["solve_s"] = time.perf_counter() - t0
    elif kernel_times is not None:
        graph = main_graph(mod, kernel_times=kernel_times)
    if kernel_times is not None:
        from tvm_sched.cost import make_objective

        sched = schedule or Schedule(order=tuple(range(graph.num_nodes)))
        meta["predicted_makespan_s"] = make_objective("makespan", lanes=m).evaluate(graph, sched)
        meta["sum_durations_s"] = float(np.sum(graph.duration))
    try:
        from tvm_sched.relax.memory import planned_bytes

        meta["tvm_planned_bytes"] = int(planned_bytes(mod))
    except Exception as err:  # noqa: BLE001 - a figure, not a requirement
        log.warning("TVM's planned bytes unavailable: %s", err)
    plan = plan_module(mod, schedule, graph=graph, threads_per_lane=threads_per_lane, meta=meta)
    weights = _main_params(exe, mod, params)
    bound = {plan.num_input + i: w for i, w in enumerate(weights)}
    if weights and plan.num_input + len(weights) != plan.num_params:
        raise InvalidScheduleError(f"{len(weights)} weights for {plan.num_params - plan.num_input}"
                                   " weight parameters of main")
    lane_mod = LaneModule(plan, exe.mod, device, bound=bound, constants=module_constants(mod),
                          engine=engine, pin=pin, allow_oversubscribe=allow_oversubscribe,
                          exporter=exe.export_library)
    lane_mod.executable = exe
    lane_mod.fused = mod
    log.info("lane module built in %.2f s: %s", time.perf_counter() - t_start, plan.summary())
    return lane_mod
