"""Atomic replace of the run's files (issue 15 item 6): readers see the old file or the new one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tvm_sched.tune.result import TuneResult
from tvm_sched.tune.workdir import atomic_path, atomic_write, check_work_dir


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "best.so"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".so" and tmp != target
        tmp.write_bytes(b"half")
        raise RuntimeError("export failed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.so"]


def test_the_new_content_arrives_by_one_rename(tmp_path, monkeypatch):
    replaced = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((Path(a), Path(b))),
                                                     real(a, b)))
    atomic_write(tmp_path / "summary.json", "{}")
    assert (tmp_path / "summary.json").read_text() == "{}"
    assert len(replaced) == 1 and replaced[0][1] == tmp_path / "summary.json"
    assert replaced[0][0].parent == tmp_path


def test_reports_are_replaced_atomically(tmp_path, monkeypatch):
    from tvm_sched.tune.report import write_report

    replaced = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(Path(b).name),
                                                     real(a, b)))
    res = TuneResult("m", "latency", [], None, None, {"cache_miss": None}, tmp_path,
                     info={"target": "llvm"})
    write_report(res)
    assert sorted(replaced) == ["plot.png", "report.md", "summary.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(replaced)  # no temporaries


def test_check_work_dir_creates_nothing(tmp_path):
    assert check_work_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []


def test_measurer_tolerance_is_the_documented_one():
    """Issue 15 item 13: the docstring promised an ``atol`` that does not exist."""
    import numpy as np

    from tvm_sched.tune.runner import InProcessDevices, Measurer

    assert "atol" not in Measurer.__doc__
    m = Measurer(InProcessDevices(), kernels=None, args=[], reference=[np.array([0.5, -0.2]),
                                                                     np.array([1000.0])],
                 rtol=1e-4)
    try:
        assert m._check([np.array([0.5 + 0.9e-4, -0.2]), np.array([1000.09])])[1] is None
        assert "differ" in m._check([np.array([0.5 + 1.1e-4, -0.2]), np.array([1000.0])])[1]
        assert "differ" in m._check([np.array([0.5, -0.2]), np.array([1000.11])])[1]
        assert "differ" in m._check([np.array([np.nan, -0.2]), np.array([1000.0])])[1]
        assert "outputs" in m._check([np.array([0.5, -0.2])])[1]
        assert "shape" in m._check([np.array([0.5]), np.array([1000.0])])[1]
    finally:
        m.close()


def test_one_line_is_the_one_error_formatter():
    """Issue 15 item 12: seven hand-made variants became ``tvm_sched.errors.one_line``."""
    from tvm_sched.errors import one_line
    from tvm_sched.tune import builder, runner

    err = RuntimeError("Traceback (most recent call last):\n  File x\n\nTVMError: lost\n")
    assert one_line(err) == "Traceback (most recent call last):"
    assert one_line(err, last=True) == "TVMError: lost"
    assert builder._first_line(err) == runner._short(err) == "RuntimeError: TVMError: lost"
    assert one_line(ValueError("x" * 500), limit=10) == "x" * 10
    assert one_line(OSError()) == "OSError"


def test_replaced_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    atomic_write(tmp_path / "report.md", "x")
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o666 & ~mask
    with atomic_path(tmp_path / "best.so") as tmp:
        tmp.write_bytes(b"\x7fELF")
        tmp.chmod(0o700)  # a linker's output
    assert (tmp_path / "best.so").stat().st_mode & 0o777 == 0o777 & ~mask
