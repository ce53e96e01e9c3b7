"""The tvm-sched command: output, JSON for scripts, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tvm_sched.cli import main
from tvm_sched.datasets import read_stg_optima, stg_graphs
from tvm_sched.graph import OpGraph


@pytest.fixture
def stg_file():
    return stg_graphs(50)[0]


def test_solve_json_reports_value_proof_and_schedule(stg_file, capsys):
    assert main(["solve", str(stg_file), "--solver", "list", "--lanes", "4", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["solver"] == "list" and d["objective"] == {"name": "makespan", "lanes": 4}
    assert set(d) >= {"solver", "objective", "value", "proven", "seconds", "schedule"}
    assert sorted(d["schedule"]["order"]) == list(range(50))
    opt = read_stg_optima()[("50/rand0000", 4)]
    assert d["value"] >= opt.best


def test_solve_cpsat_proves_the_published_optimum(stg_file, capsys):
    rc = main(["solve", str(stg_file), "--solver", "cpsat", "--lanes", "2", "--budget", "20",
               "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["value"] == read_stg_optima()[("50/rand0000", 2)].best
    assert d["proven"] is True


def test_solve_text_output(stg_file, capsys):
    assert main(["solve", str(stg_file), "--solver", "topo-bfs", "--objective", "peak_memory"]) == 0
    out = capsys.readouterr().out
    assert "value" in out and "proven" in out and "time" in out


def test_solve_stage_objective_on_json_graph(tmp_path, capsys):
    g = OpGraph(4, [(0, 1), (1, 2), (2, 3)], out_bytes=[5, 5, 5, 5])
    path = tmp_path / "g.json"
    path.write_text(g.to_json())
    assert main(["solve", str(path), "--objective", "stage", "--stages", "2", "--ratio", "1",
                 "--solver", "cpsat", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["value"] == 11.0 and d["proven"] is True  # 10 + one crossing


def test_solve_memory_objectives_on_json_graph(tmp_path, capsys):
    # a diamond whose two 128-byte branches fit side by side in the 256-byte tensor's place
    g = OpGraph(5, [(0, 1), (1, 2), (1, 3), (2, 4), (3, 4)], out_bytes=[256, 64, 128, 128, 64],
                is_output=[0, 0, 0, 0, 1])
    path = tmp_path / "g.json"
    path.write_text(g.to_json())
    values = {}
    for objective in ("peak_memory", "planned_memory", "arena_memory"):
        assert main(["solve", str(path), "--objective", objective, "--solver", "lpmf",
                     "--json"]) == 0
        values[objective] = json.loads(capsys.readouterr().out)["value"]
    assert values["arena_memory"] == 320.0  # the liveness peak: 64 + 2 x 128 in 0's bytes
    assert values["planned_memory"] > values["arena_memory"]  # TVM's tokens cannot do that


@pytest.mark.parametrize(
    "argv, message",
    [
        (["solve", "MISSING.stg"], "no such file"),
        (["solve", "{stg}", "--solver", "nope"], "unknown solver 'nope'"),
        (["solve", "{stg}", "--objective", "peak_memory", "--lanes", "2"], "one lane"),
        (["solve", "{stg}", "--option", "bogus=1"], "bogus"),
        (["solve", "{stg}", "--option", "noequals"], "KEY=VALUE"),
        (["solve", "{stg}", "--comm", "x"], "--comm"),
        (["solve", "{stg}", "--lanes", "0"], "lanes"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, message, stg_file, capsys):
    argv = [a.replace("{stg}", str(stg_file)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_malformed_file_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.stg"
    bad.write_text("3\n0 0 0\n1 x 1 0\n")
    assert main(["solve", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err


def test_solvers_lists_every_registered_name(capsys):
    from tvm_sched.solvers import solver_names

    assert main(["solvers"]) == 0
    out = capsys.readouterr().out
    for name in solver_names():
        assert name in out


def test_console_script_entry_point(stg_file):
    out = subprocess.run([sys.executable, "-m", "tvm_sched.cli", "solve", str(stg_file),
                          "--lanes", "2", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["value"] > 0


def test_demo_runs_every_solver_and_prints_the_table(capsys):
    from tvm_sched.solvers import solver_names

    assert main(["demo", "--graphs", "1", "--budget", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "gap to the published optimum" in out
    for name in solver_names():
        assert name in out


@pytest.fixture
def no_read(monkeypatch):
    """Reading the graph is the first work; argument errors must come before it."""
    import tvm_sched.datasets

    def boom(*a, **k):
        raise AssertionError("the graph was read before the arguments were checked")

    monkeypatch.setattr(tvm_sched.datasets, "read_graph", boom)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["solve", "{stg}", "--budget", "-5"], "--budget"),
        (["solve", "{stg}", "--budget", "nan"], "--budget"),
        (["solve", "{stg}", "--budget", "inf"], "--budget"),
        (["solve", "{stg}", "--solver", "random", "--option", "samples=abc"],
         "--option samples expects an integer, got 'abc'"),
        (["solve", "{stg}", "--solver", "random", "--option", "samples=-3"],
         "--option samples must be >= 0"),
        (["solve", "{stg}", "--solver", "random", "--option", "samples=1.5"],
         "expects an integer"),
        (["solve", "{stg}", "--solver", "random-list", "--option", "noise=nan"], "noise"),
        (["solve", "{stg}", "--solver", "cpsat", "--option", "log=maybe"], "true or false"),
        (["solve", "{stg}", "--seed", "-1"], "--seed"),
        (["solve", "{stg}", "--solver", "gaus", "--device", "bogus"], "--device"),
        (["solve", "{stg}", "--solver", "cpsat", "--objective", "stage", "--stages", "0"],
         "stages"),
        (["solve", "{dir}"], "is a directory"),
        (["demo", "--graphs", "-1"], "--graphs"),
        (["demo", "--graphs", "0"], "--graphs"),
        (["demo", "--budget", "-1"], "--budget"),
    ],
)
def test_bad_arguments_are_one_line_exit_2_before_any_work(argv, message, stg_file, tmp_path,
                                                           capsys, no_read):
    """Issue 15 item 5 (and ``demo --graphs -1``, item 9): these were tracebacks, or ran."""
    argv = [a.replace("{stg}", str(stg_file)).replace("{dir}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_a_config_the_solver_rejects_is_one_line_exit_2(stg_file, capsys):
    for solver in ("random", "gaus"):
        opt = "samples=0" if solver == "random" else "restarts=0"
        assert main(["solve", str(stg_file), "--solver", solver, "--option", opt]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and opt.split("=")[0] in err, err


def test_options_are_typed_from_the_solver_config(stg_file, capsys):
    # an int field takes "3", a float field "1" (as 1.0), a bool "yes", an optional "none"
    # (issue 15 item 12: options typed from each solver's Config fields)
    assert main(["solve", str(stg_file), "--solver", "random-list", "--option", "samples=3",
                 "--option", "noise=1", "--option", "top-k=2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["samples"] == 3
    from tvm_sched.cli import _parse_options

    assert _parse_options(["samples=3", "noise=1", "top-k=2"], "random-list") == {
        "samples": 3, "noise": 1.0, "top_k": 2}
    assert _parse_options(["log=yes", "time-limit-s=0.5"], "cpsat") == {"log": True,
                                                                       "time_limit_s": 0.5}
    assert _parse_options(["horizon=none", "horizon=7"][:1], "gaus") == {"horizon": None}
    assert _parse_options(["horizon=7"], "gaus") == {"horizon": 7}
    assert _parse_options(["checkpoint=a.pt", "checkpoint=none"][:1], "gflownet") == {
        "checkpoint": "a.pt"}


def test_huge_sizes_are_rejected_not_wrapped(tmp_path, capsys):
    """Issue 15 item 3: 1e30 bytes wrapped to a negative int64 and ``solve --objective
    peak_memory`` reported ``value 0.0, proven: true``."""
    path = tmp_path / "huge.json"
    g = OpGraph(2, [(0, 1)], out_bytes=[5, 5])
    d = json.loads(g.to_json())
    d["nodes"][0]["out_bytes"] = 1e30
    path.write_text(json.dumps(d))
    assert main(["solve", str(path), "--solver", "lpmf", "--objective", "peak_memory"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "out_bytes" in err and "2**53" in err, err
