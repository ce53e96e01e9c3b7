"""Atomic replace of the run's files (issue 15 item 6): a reader sees the old file or the new one."""

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
