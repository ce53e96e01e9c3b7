"""What ``tune`` checks before it works: the work dir (usable, not in use) and a memory budget
that some candidate can meet. Fakes stand in for the model, the runner and the builder: every
check here must fire before anything is proposed, built or measured (issue 15 items 2, 4, 6)."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from tvm_sched.errors import TuneInputError
from tvm_sched.tune import tuner as tuner_mod
from tvm_sched.tune.runner import Devices
from tvm_sched.tune.tuner import TuneConfig, tune
from tvm_sched.tune.workdir import LOCK_NAME, lock_work_dir


class NoWorkRunner(Devices):
    """Fails the test if the tuner gets as far as starting a device."""

    def prepare(self):
        raise AssertionError("the runner was started before the checks")


@pytest.fixture
def no_work(monkeypatch):
    """Proposing, building or measuring is an error in these tests."""

    def boom(*a, **k):
        raise AssertionError("work started before the checks")

    monkeypatch.setattr(tuner_mod, "propose", boom)
    monkeypatch.setattr(tuner_mod, "Builder", boom)


MODEL = SimpleNamespace(name="fake", hash="0" * 16, graphs=[], mod=None)


def test_a_file_as_work_dir_fails_before_any_work(tmp_path, no_work):
    path = tmp_path / "runs"
    path.write_text("not a directory")
    with pytest.raises(TuneInputError, match="is a file"):
        tune(MODEL, "llvm", NoWorkRunner(), path)
    with pytest.raises(TuneInputError, match="is a file"):
        tune(MODEL, "llvm", NoWorkRunner(), path / "sub")


def test_a_read_only_work_dir_fails_before_any_work(tmp_path, no_work, monkeypatch):
    # root ignores permission bits, so a read-only file system is simulated where it shows
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if str(p).startswith(
        str(tmp_path)) and mode & os.W_OK else real(p, mode, **k))
    with pytest.raises(TuneInputError, match="not writable"):
        tune(MODEL, "llvm", NoWorkRunner(), tmp_path)
    with pytest.raises(TuneInputError, match="cannot be created in"):
        tune(MODEL, "llvm", NoWorkRunner(), tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_work_dir_in_use_by_another_run_fails_before_any_work(tmp_path, no_work):
    with lock_work_dir(tmp_path):
        with pytest.raises(TuneInputError, match="in use by another tvm-sched tune run"):
            tune(MODEL, "llvm", NoWorkRunner(), tmp_path)


def test_the_lock_holds_across_processes_and_dies_with_its_holder(tmp_path):
    code = ("import sys, time\nfrom tvm_sched.tune.workdir import lock_work_dir\n"
            "with lock_work_dir(sys.argv[1]):\n    print('held', flush=True)\n"
            "    sys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TuneInputError, match="in use"), lock_work_dir(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    with lock_work_dir(tmp_path) as work:  # a killed holder leaves no stale lock
        assert (work / LOCK_NAME).exists()


def test_an_unsatisfiable_memory_budget_fails_before_building(tmp_path, monkeypatch):
    """``--memory-budget 0.5x`` used to measure everything, then exit 1 with "no candidate
    was measured successfully" although no record had an error."""

    def cand(name, planned, baseline=False):
        return SimpleNamespace(name=name, baseline=baseline, proxy={"planned": planned,
                                                                     "cache_miss": 1})

    class Ready(Devices):
        def prepare(self):
            pass

    monkeypatch.setattr(tuner_mod, "propose", lambda *a, **k: [cand("tvm", 1000, True),
                                                                cand("a", 800)])
    monkeypatch.setattr(tuner_mod, "planned_bytes", lambda mod: 1000)

    def no_build(*a, **k):
        raise AssertionError("built although no candidate fits the budget")

    monkeypatch.setattr(tuner_mod, "Builder", no_build)
    cfg = TuneConfig(memory_budget="0.5x", solvers=("lpmf",))
    with pytest.raises(TuneInputError, match=r"no candidate fits the memory budget of 500 B.*"
                                             r"fewest planned bytes .* 800 B"):
        tune(MODEL, "llvm", Ready(), tmp_path / "w", cfg)
    assert not (tmp_path / "w").exists()  # nothing written


@pytest.mark.parametrize("kw, message", [
    (dict(cache_bytes=-1024), "cache"), (dict(timeout=0), "timeout"),
    (dict(timeout=float("nan")), "timeout"), (dict(repeats=0), "repeats"),
    (dict(min_repeat_ms=-1), "min_repeat_ms"), (dict(solver_budget=float("inf")), "solver"),
    (dict(memory_budget="-5"), "memory budget"), (dict(seed=-1), "seed"),
    (dict(number=0), "number"), (dict(objective="speed"), "objective"),
])
def test_bad_config_is_a_tune_input_error_before_any_work(kw, message, tmp_path, no_work):
    with pytest.raises(TuneInputError, match=message):
        tune(MODEL, "llvm", NoWorkRunner(), tmp_path, TuneConfig(**kw))
