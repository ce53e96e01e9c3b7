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
