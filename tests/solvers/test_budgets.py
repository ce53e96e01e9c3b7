"""The anytime contract of every solver: budgets, fixed work without one, lower-bound stops, Ctrl-C.

Wall-clock figures live in ``benchmarks/budgets.py``; these tests check the mechanism with fake
clocks, spent budgets and injected interrupts.
"""

from __future__ import annotations

import signal
import threading

import numpy as np
import pytest

from tvm_sched import cli
from tvm_sched.cost import ArenaMemory, Makespan, PeakMemory, PlannedMemory
from tvm_sched.graph import OpGraph
from tvm_sched.solvers import base, get_solver, registry, solver_names
from tvm_sched.solvers.base import Deadline, Pacer, Status
from tvm_sched.solvers.heuristics import RandomListSolver
from tvm_sched.testing.dags import random_dag

SMALL = {"gaus": dict(restarts=2, steps=10, rounds=2), "gumbel": dict(samples=4, rounds=2),
         "gflownet": dict(samples=16), "random": dict(samples=64),
         "random-list": dict(samples=64), "cpsat": dict(num_workers=1, time_limit_s=5.0)}


class _JumpClock:
    """A clock that advances ``step`` seconds every time it is read."""

    def __init__(self, step: float):
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_deadline_rejects_bad_budgets_and_reads_its_clock():
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="budget"):
            Deadline(bad)
    clock = _JumpClock(0.5)
    d = Deadline(1.0, clock=clock)
    assert not d.expired  # read at t = 1.0: 0.5 s elapsed
    assert d.expired
    assert Deadline(None, clock=clock).remaining == float("inf")


def test_pacer_sizes_batches_from_the_measured_rate():
    t = [0.0]
    d = Deadline(10.0, clock=lambda: t[0])
    p = Pacer(d, batch=1000, probe=8)
    assert p.next_size(5000) == 8
    t[0] += 0.08  # 10 ms per unit
    p.done(8)
    size = p.next_size(5000)
    assert size == int(0.5 * 9.92 / 0.01)  # half of the time left
    t[0] += size * 0.01
    p.done(size)
    assert p.next_size(3) == 3  # never more than is left to do
    t[0] = 10.0
    assert p.next_size(100) == 0
    # without a budget: fixed batches, whatever the clock says
    q = Pacer(Deadline(None, clock=_JumpClock(100.0)), batch=250)
    assert [q.next_size(k) for k in (1000, 100)] == [250, 100]


@pytest.mark.parametrize("name", ["random", "random-list", "gumbel", "gaus", "gflownet"])
def test_no_budget_means_fixed_work_not_a_hidden_clock(name, monkeypatch, one_thread):
    # the same seed gives the same schedules even when every clock read jumps by 100 s
    graph = random_dag(30, 0.12, seed=2)
    obj = Makespan(lanes=3)
    ref = get_solver(name, **SMALL[name]).solve(graph, obj, seed=4)
    monkeypatch.setattr(base, "_default_clock", _JumpClock(100.0))
    slow = get_solver(name, **SMALL[name]).solve(graph, obj, seed=4)
    assert slow.schedules == ref.schedules and slow.values == ref.values


def test_sampler_under_a_slow_clock_stops_after_few_batches(monkeypatch):
    graph = random_dag(60, 0.08, seed=1)
    monkeypatch.setattr(base, "_default_clock", _JumpClock(0.2))
    res = get_solver("random-list", samples=100_000).solve(graph, Makespan(lanes=4), budget=1.0)
    assert 1 <= res.info["batches"] <= 4
    assert res.info["samples"] < 1000  # a probe and a few paced batches, not 100,000


def test_spent_budget_still_returns_one_schedule_per_solver():
    graph = random_dag(40, 0.1, seed=5)
    for name in solver_names():
        res = get_solver(name, **SMALL.get(name, {})).solve(graph, Makespan(lanes=2), budget=0.0)
        assert len(res) >= 1, name
        res.best.validate(graph)


def test_samplers_stop_at_the_lower_bound():
    # independent equal tasks: any order meets the load bound, so one probe is enough
    graph = OpGraph(24, [], duration=[1.0] * 24)
    obj = Makespan(lanes=4)
    res = get_solver("random-list", samples=10_000).solve(graph, obj, budget=30.0)
    assert res.proven and res.info["samples"] == 8 and res.info["batches"] == 1
    res = get_solver("random-list", samples=10_000).solve(graph, obj)
    assert res.proven and res.info["samples"] == 250
    gaus = get_solver("gaus").solve(graph, obj, budget=30.0)
    assert gaus.proven and gaus.info["rounds"] == 0


def test_base_class_proves_nothing_from_an_absolute_tolerance():
    # a 7-us list schedule against a 6-us bound is not optimal (it used to be called so)
    graph = OpGraph(5, [], duration=[3e-6, 3e-6, 2e-6, 2e-6, 2e-6])
    res = get_solver("list").solve(graph, Makespan(lanes=2))
    assert res.value == pytest.approx(7e-6) and res.bound == pytest.approx(6e-6)
    assert res.status is Status.FEASIBLE and not res.proven


class _Interrupting(RandomListSolver):
    """Raises KeyboardInterrupt (as Ctrl-C would) when drawing its third batch."""

    name = "interrupting"
    calls = 0

    def priorities(self, graph, rng, size):
        type(self).calls += 1
        if type(self).calls == 3:
            raise KeyboardInterrupt
        return super().priorities(graph, rng, size)


def test_ctrl_c_returns_the_best_found_so_far_marked():
    graph = random_dag(40, 0.1, seed=3)
    _Interrupting.calls = 0
    res = _Interrupting(samples=1000, batch=100).solve(graph, Makespan(lanes=3))
    assert res.info["interrupted"] is True and res.status is Status.FEASIBLE
    assert res.info["samples"] == 200  # the two batches drawn before the interrupt
    assert res.value == Makespan(lanes=3).evaluate(graph, res.best)


def test_ctrl_c_before_any_incumbent_falls_back_to_a_priority_order():
    class Stop(RandomListSolver):
        def priorities(self, graph, rng, size):
            raise KeyboardInterrupt

    graph = random_dag(20, 0.2, seed=0)
    res = Stop().solve(graph, PeakMemory())
    assert res.info == {"interrupted": True, "fallback": "priority"}
    res.best.validate(graph)


def test_cli_solve_reports_an_interrupt_and_exits_130(tmp_path, monkeypatch, capsys):
    from tvm_sched.datasets.io import save_json

    path = tmp_path / "g.json"
    save_json(random_dag(30, 0.1, seed=1), path)
    _Interrupting.calls = 0
    monkeypatch.setitem(registry._REGISTRY, "interrupting", _Interrupting)
    code = cli.main(["solve", str(path), "--solver", "interrupting", "--lanes", "2",
                     "--objective", "makespan", "--option", "batch=50"])
    out, err = capsys.readouterr()
    assert code == 130
    assert "value " in out and "status FEASIBLE" in out
    assert "interrupted" in err


def test_cpsat_ctrl_c_stops_the_search_and_says_so(monkeypatch):
    # The interrupt is sent one second into the search itself (model building can take longer
    # than that on a loaded machine) and only while the search runs: a stray SIGINT would end
    # the whole pytest session.
    from tvm_sched.solvers.cpsat import common

    graph = random_dag(150, 0.04, seed=7)  # far from proven in the 60 s budget
    main = threading.main_thread().ident
    searching = threading.Event()
    timers = []

    def interrupt() -> None:
        if searching.is_set():
            signal.pthread_kill(main, signal.SIGINT)

    original = common._solve_interruptibly

    def search(*args, **kwargs):
        searching.set()
        timers.append(threading.Timer(1.0, interrupt))
        timers[-1].start()
        try:
            return original(*args, **kwargs)
        finally:
            searching.clear()

    monkeypatch.setattr(common, "_solve_interruptibly", search)
    try:
        res = get_solver("cpsat", num_workers=2).solve(graph, Makespan(lanes=4), budget=60.0)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C during the CP-SAT search escaped the solver")
    finally:
        for t in timers:
            t.cancel()
    assert timers, "the CP-SAT search never started"
    assert res.info["interrupted"] is True
    assert res.status is Status.FEASIBLE and len(res) == 1
    assert res.seconds < 30.0


@pytest.mark.parametrize("name", ["gaus", "gflownet", "random", "random-list", "gumbel", "cpsat",
                                  "lpmf", "list"])
def test_every_order_memory_objective_is_accepted(name, one_thread):
    graph = random_dag(20, 0.15, seed=8)
    for obj in (PeakMemory(), PlannedMemory(), ArenaMemory()):
        s = get_solver(name, **SMALL.get(name, {}))
        if name == "cpsat" and not s.supports(obj):
            continue  # CP-SAT has an exact model of the liveness peak only
        res = s.solve(graph, obj, seed=0, budget=5.0)
        assert res.value == obj.evaluate(graph, res.best)
        assert np.isfinite(res.value)


def test_tvm_sched_solve_cpsat_ctrl_c_exits_130_with_the_result(tmp_path):
    # issue 15 item 7: Ctrl-C in `solve --solver cpsat --budget 300` used to exit 0 as if done
    import subprocess
    import sys
    import time

    from tvm_sched.datasets.io import save_json

    path = save_json(random_dag(150, 0.04, seed=7), tmp_path / "g.json")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tvm_sched.cli", "solve", str(path), "--solver", "cpsat",
         "--lanes", "4", "--budget", "300", "--option", "num_workers=2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(6.0)  # imports, model building, then the search
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "status FEASIBLE" in out and "value " in out
    assert "interrupted" in err
