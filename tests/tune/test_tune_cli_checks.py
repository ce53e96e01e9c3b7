"""``tvm-sched tune`` checks every argument before any expensive work (issue 15 items 2, 4, 5,
8, 9): one line on stderr, exit 2 (1 for an unreachable device), no traceback, nothing written,
and the model is never imported. Importing a model is the first expensive step, so it is
replaced by a function that fails the test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tvm_sched.tune
from tvm_sched.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def no_import(monkeypatch, tmp_path):
    def boom(**kw):
        raise AssertionError("the model was imported before the arguments were checked")

    monkeypatch.setattr(tvm_sched.tune, "load_model", boom)
    monkeypatch.delenv("TVM_TRACKER_HOST", raising=False)
    monkeypatch.delenv("TVM_TRACKER_KEY", raising=False)
    monkeypatch.chdir(tmp_path)


def run_tune(argv, capsys):
    code = main(["tune", *argv])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("argv, message", [
    (["--cache-kib", "-1"], "--cache-kib"),
    (["--cache-kib", "0"], "--cache-kib"),
    (["--timeout", "0", "--in-process"], "--timeout"),
    (["--timeout", "nan"], "--timeout"),
    (["--seed", "-1"], "--seed"),
    (["--memory-budget", "infx"], "memory budget must be finite"),
    (["--memory-budget", "-5"], "memory budget must be finite and > 0"),
    (["--memory-budget", "0.5"], "memory budget"),
    (["--repeats", "0"], "repeats"),
    (["--solver-budget", "-1"], "--solver-budget"),
    (["--min-repeat-ms", "inf"], "--min-repeat-ms"),
    (["--tracker-wait", "-1"], "--tracker-wait"),
    (["--min-devices", "0"], "--min-devices"),
    (["--solvers", ","], "--solvers"),
    (["--target", "llvm -mcpu=native"], '{"kind": "llvm", "mcpu": "native"}'),
])
def test_bad_arguments_fail_before_the_model_is_imported(argv, message, capsys, no_import,
                                                         tmp_path):
    code, err = run_tune(["--model", "inception", *argv, "--work-dir", str(tmp_path / "w")],
                         capsys)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_a_work_dir_that_is_a_file_fails_before_the_model_is_imported(capsys, no_import,
                                                                      tmp_path):
    (tmp_path / "taken").write_text("x")
    code, err = run_tune(["--model", "inception", "--work-dir", str(tmp_path / "taken")], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "is a file" in err, err
    code, err = run_tune(["--model", "inception", "--work-dir",
                          str(tmp_path / "taken" / "sub")], capsys)
    assert code == 2 and "is a file" in err, err


def test_a_work_dir_in_use_fails_before_the_model_is_imported(capsys, no_import, tmp_path):
    from tvm_sched.tune.workdir import lock_work_dir

    with lock_work_dir(tmp_path / "busy"):
        code, err = run_tune(["--model", "inception", "--work-dir", str(tmp_path / "busy")],
                             capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "in use" in err, err


def test_a_closed_server_port_is_found_before_the_model_is_imported(capsys, no_import,
                                                                    tmp_path):
    """Issue 15 item 9: it used to be found after ~25 s of import, propose and build."""
    from tvm_sched.tune.server import free_port

    code, err = run_tune(["--model", "inception", "--rpc-server", f"127.0.0.1:{free_port()}",
                          "--work-dir", str(tmp_path / "w")], capsys)
    assert code == 1
    assert len(err.splitlines()) == 1 and "cannot connect to the RPC server at 127.0.0.1:" in err
    assert not (tmp_path / "w").exists()


def test_a_closed_tracker_port_is_found_before_the_model_is_imported(capsys, no_import,
                                                                     tmp_path):
    from tvm_sched.tune.server import free_port

    code, err = run_tune(["--model", "inception", "--rpc-tracker", f"127.0.0.1:{free_port()}",
                          "--rpc-key", "cpu", "--work-dir", str(tmp_path / "w")], capsys)
    assert code == 1 and len(err.splitlines()) == 1 and "cannot reach the RPC tracker" in err


def test_a_relax_file_that_calls_sys_exit_is_an_error_not_a_silent_end(tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "quits.py"
    f.write_text("import sys\nsys.exit(3)\n")
    code, err = run_tune(["--relax", str(f), "--work-dir", str(tmp_path / "w")], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "sys.exit(3)" in err and "quits.py" in err, err


def test_the_readme_tune_targets_are_accepted():
    """Issue 15 item 8: the README's ``--target "llvm -mcpu=native"`` is rejected by TVM 0.27."""
    from tvm_sched.tune.model import check_target

    targets = re.findall(r"--target (\"[^\"]*\"|'[^']*'|\S+)", README.read_text())
    assert targets
    for t in targets:
        check_target(t[1:-1] if t[0] in "'\"" else t)


def test_a_budget_no_measured_candidate_meets_is_exit_2_not_a_device_failure(
        capsys, monkeypatch, tmp_path):
    """Issue 15 item 4: every record had ``error: null`` yet the run exited 1 with "no
    candidate was measured successfully". The loop is replaced by its result here."""
    from types import SimpleNamespace

    from tvm_sched.tune import tuner
    from tvm_sched.tune.record import OrderFacts, TuneRecord
    from tvm_sched.tune.result import TuneResult

    ok = TuneRecord("h", "a", "llvm", "local", "tvm", "baseline", "vm", baseline=True,
                    samples=[1.0, 1.0, 1.0],
                    facts=OrderFacts(proxy={"cache_miss": 1.0}, planned_bytes=1000))
    monkeypatch.setattr(tvm_sched.tune, "load_model", lambda **kw: SimpleNamespace(
        name="m", num_nodes=3, graphs=[None]))
    monkeypatch.setattr(tuner, "tune", lambda *a, **k: TuneResult(
        "m", "latency", [ok], None, ok, {}, tmp_path, memory_budget=500,
        info={"tvm_planned": 1000}))
    code, err = run_tune(["--model", "inception", "--in-process", "--memory-budget", "500",
                          "--work-dir", str(tmp_path / "w"), "--quiet"], capsys)
    assert code == 2
    assert "no measured candidate fits the memory budget of 500 B" in err
    assert "fewest planned bytes measured: 1,000 B" in err


def test_the_work_dir_is_locked_while_the_model_is_imported(capsys, monkeypatch, tmp_path):
    """A second run on the same work dir stops before its own import, not after it."""
    from tvm_sched.errors import TuneInputError
    from tvm_sched.tune.workdir import lock_work_dir

    seen = []

    def load(**kw):
        try:
            with lock_work_dir(tmp_path / "w"):
                seen.append("free")
        except TuneInputError as err:
            seen.append(str(err))
        raise TuneInputError("stop here")

    monkeypatch.setattr(tvm_sched.tune, "load_model", load)
    code, err = run_tune(["--model", "inception", "--in-process", "--work-dir",
                          str(tmp_path / "w")], capsys)
    assert code == 2 and "stop here" in err
    assert len(seen) == 1 and "in use by another tvm-sched tune run" in seen[0]
    assert not (tmp_path / "w").exists()  # bad input: nothing left behind


@pytest.mark.parametrize("flag", ["--relax", "--onnx"])
def test_a_directory_as_the_model_file_is_one_line_exit_2(flag, capsys, no_import, tmp_path):
    code, err = run_tune([flag, str(tmp_path), "--work-dir", str(tmp_path / "w")], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "(it is a directory)" in err, err
