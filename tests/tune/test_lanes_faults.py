"""The lane path on bad situations a user meets: a memory budget nothing fits, a state file with
values that do not fit the model, more lanes than the device's cores, repeated in-process runs
(no thread left behind)."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from tvm_sched.errors import TuneInputError
from tvm_sched.tune.lanes import resolve_lanes


class _Session:
    def __init__(self, cores):
        self.cores = cores

    def get_function(self, name):
        if name != "tvm_sched.runtime.num_cores":
            raise AttributeError(name)
        return lambda: self.cores


def test_more_lanes_than_the_device_offers_is_refused_naming_its_cores():
    assert resolve_lanes(2, _Session(2)) == 2 and resolve_lanes("auto", _Session(2)) == 2
    with pytest.raises(TuneInputError, match=r"--lanes 999 asks for more lanes than the 2 "
                                             r"core\(s\)"):
        resolve_lanes(999, _Session(2))
    with pytest.raises(TuneInputError, match="--lanes 3"):
        resolve_lanes("3", _Session(2))


@pytest.fixture(scope="module")
def small_model():
    from tvm_sched.tune import load_model

    return load_model(model="inception")


def _config(**kw):
    from tvm_sched.tune.tuner import TuneConfig

    base = dict(lanes=1, solvers=("list",), solver_budget=0.2, samples=8, per_solver=1,
                top_k=1, repeats=2, min_repeat_ms=0.2)
    base.update(kw)
    return TuneConfig(**base)


@pytest.mark.integration
def test_a_memory_budget_nothing_fits_is_refused_before_measuring(small_model, tmp_path):
    from tvm_sched.tune import InProcessDevices, tune

    with pytest.raises(TuneInputError, match="nothing fits the memory budget of 9 B"):
        tune(small_model, "llvm", InProcessDevices(), tmp_path,
             _config(memory_budget=9))
    assert not (tmp_path / "lane_records.jsonl").exists()


@pytest.mark.integration
def test_the_cli_exits_2_on_a_memory_budget_nothing_fits(tmp_path, capsys):
    from tvm_sched.cli import main

    rc = main(["tune", "--model", "inception", "--lanes", "1", "--in-process", "--quiet",
               "--memory-budget", "0.0001x", "--solvers", "list", "--solver-budget", "0.2",
               "--work-dir", str(tmp_path / "w")])
    assert rc == 2
    assert "nothing fits the memory budget" in capsys.readouterr().err


def _threads() -> int:
    """OS threads of this process (the native engine's lanes are not Python threads)."""
    import os

    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux
        return threading.active_count()


@pytest.mark.integration
@pytest.mark.parametrize("fault", ["nan kernel time", "node twice", "broken edge"])
def test_a_state_file_that_does_not_fit_is_recomputed_with_a_warning(small_model, tmp_path,
                                                                      caplog, fault):
    from tvm_sched.tune import InProcessDevices, tune

    tune(small_model, "llvm", InProcessDevices(), tmp_path, _config())
    path = tmp_path / "lane_state.json"
    state = json.loads(path.read_text())
    good = json.loads(path.read_text())
    if fault == "nan kernel time":
        state["kernel_times"][next(iter(state["kernel_times"]))] = float("nan")
    else:
        cand = state["pool"][0]
        order = cand["order"]
        if fault == "node twice":
            order[1] = order[0]
        else:  # the last node first: every edge into it is broken
            order.insert(0, order.pop())
    path.write_text(json.dumps(state))
    (tmp_path / "lane_records.jsonl").unlink()
    with caplog.at_level(logging.WARNING, logger="tvm_sched.tune.lanes"):
        res = tune(small_model, "llvm", InProcessDevices(), tmp_path, _config())
    assert any(str(path) in r.getMessage() and "profiling and proposing again" in r.getMessage()
               for r in caplog.records)
    assert res.best is not None
    again = json.loads(path.read_text())  # written anew, valid
    assert again["pool"][0]["order"] == good["pool"][0]["order"]
    assert all(v == v and v > 0 for v in again["kernel_times"].values())


@pytest.mark.integration
def test_in_process_lane_tuning_leaves_no_lane_threads_behind(small_model, tmp_path):
    from tvm_sched.tune import InProcessDevices, tune

    counts = []
    for i in range(3):
        tune(small_model, "llvm", InProcessDevices(), tmp_path / str(i),
             _config(lanes="auto", top_k=2))
        counts.append(_threads())
    assert counts[2] <= counts[0], counts


def test_auto_takes_the_lanes_the_cores_offer_now():
    from tvm_sched.runtime.cores import lanes_for

    class Probed(_Session):
        def get_function(self, name):
            if name == "tvm_sched.runtime.parallelism":
                return lambda work_ms: json.dumps(self.probe)
            return super().get_function(name)

    from tvm_sched.tune.lanes import device_conditions

    quiet = Probed(4)
    quiet.probe = {"cores": 4, "efficiency": [1.0, 0.98, 0.95, 0.9], "load": 0.1}
    busy = Probed(4)
    busy.probe = {"cores": 4, "efficiency": [1.0, 0.9, 0.7, 0.55], "load": 2.0}
    for sess, want in ((quiet, 4), (busy, 2)):
        cond = device_conditions(sess)
        assert cond == sess.probe and lanes_for(cond) == want
        assert resolve_lanes("auto", sess, cond) == want
        assert resolve_lanes(3, sess, cond) == 3  # an explicit count is the user's choice
    assert device_conditions(_Session(2)) is None  # a server without the probe: its cores
    assert resolve_lanes("auto", _Session(2), None) == 2


def test_the_parallelism_probe_measures_this_machine():
    from tvm_sched.runtime.cores import num_cores, parallelism

    probe = parallelism(work_ms=5.0, trials=1)
    assert probe["cores"] == num_cores() == len(probe["efficiency"])
    assert probe["efficiency"][0] == 1.0 and all(0 < e <= 1.0 for e in probe["efficiency"])
