"""``tvm-sched tune``: bad input exits 2 and writes nothing; a small run writes its report.

The bad-input cases stop before the model is built, so they run in the default tier.
"""

from __future__ import annotations

import pytest

from tvm_sched.cli import main


@pytest.mark.parametrize("argv, message", [
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--onnx", "MISSING.onnx"], "ONNX file"),
    (["--onnx", "GARBAGE.onnx"], "ONNX"),
    (["--model", "inception", "--target", "not-a-target"], "target 'not-a-target' is not valid"),
    (["--model", "inception", "--solvers", "lpmf,nope"], "unknown solver 'nope'"),
    (["--model", "inception", "--rpc-server", "localhost"], "--rpc-server must be HOST:PORT"),
    (["--model", "inception", "--rpc-tracker", "127.0.0.1:9"], "needs a device key"),
    (["--model", "inception", "--objective", "memory", "--memory-budget", "1x"],
     "--memory-budget goes with --objective latency"),
    (["--model", "inception", "--memory-budget", "lots"], "memory budget must be"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(argv, message, tmp_path, capsys,
                                                      monkeypatch):
    monkeypatch.delenv("TVM_TRACKER_KEY", raising=False)
    (tmp_path / "GARBAGE.onnx").write_bytes(b"\x00not an onnx model")
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    code = main(["tune", *argv, "--work-dir", str(work)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err
    assert not work.exists() and not (tmp_path / "tvm-sched-runs").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_small_in_process_run_prints_table_and_writes_report(tmp_path, capsys):
    work = tmp_path / "w"
    code = main(["tune", "--model", "inception", "--in-process", "--solvers", "lpmf",
                 "--candidates", "8", "--top-k", "1", "--repeats", "2", "--min-repeat-ms", "1",
                 "--work-dir", str(work), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "(baseline)" in out and "pick:" in out and "Spearman(proxy, measured latency)" in out
    assert (work / "report.md").exists() and (work / "best.so").exists()
