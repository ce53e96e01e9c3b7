"""The JSONL database of typed records: append, latest record per key, bad lines skipped."""

from __future__ import annotations

import json

import pytest

from tvm_sched.tune.database import Database
from tvm_sched.tune.record import TuneRecord


def rec(name: str, **kw) -> TuneRecord:
    return TuneRecord(**{"model_hash": "m", "order_hash": name, "target": "llvm",
                         "device_key": "local", "candidate": name, "source": "test",
                         "kind": "order", **kw})


def test_append_read_latest_and_filter(tmp_path):
    db = Database(tmp_path / "r.jsonl")
    db.append(rec("a", samples=[1.0]))
    db.append(rec("b", samples=[2.0]))
    db.append(rec("a", samples=[3.0]))
    db.append(rec("c", target="cuda"))
    got = db.records("m", "llvm", "local")
    assert {k[1]: v.samples for k, v in got.items()} == {"a": [3.0], "b": [2.0]}
    assert len(db.records()) == 3
    assert all(isinstance(r, TuneRecord) for r in db)


def test_torn_last_line_is_skipped_and_next_append_survives(tmp_path):
    path = tmp_path / "r.jsonl"
    db = Database(path)
    db.append(rec("a"))
    with path.open("a") as f:
        f.write('{"format": 1, "model_hash": "m", "order_')  # a write cut short
    assert list(db.records()) == [("m", "a", "llvm", "local")]
    assert db.skipped == 1
    db.append(rec("b"))
    assert sorted(k[1] for k in db.records()) == ["a", "b"]


def test_each_line_is_fsynced_json_with_the_summaries(tmp_path, monkeypatch):
    import os

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    db = Database(tmp_path / "r.jsonl")
    db.append(rec("a", samples=[1.0, 2.0, 3.0], anchor_samples=[2.0, 2.0, 2.0]))
    db.append(rec("b"))
    assert len(synced) == 2
    first = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert first["format"] == 1 and first["latency"]["median"] == 2.0
    assert first["relative"] == 1.0 and first["anchor"]["median"] == 2.0


def test_valid_json_without_fields_wrong_types_or_bad_utf8_is_skipped_and_counted(tmp_path,
                                                                                  caplog):
    """Issue 15 item 1: such lines used to crash every later tune (KeyError, UnicodeDecodeError)."""
    path = tmp_path / "r.jsonl"
    db = Database(path)
    db.append(rec("a", samples=[1.0, 0.9, 1.1]))
    head = b'"model_hash":"m","order_hash":"x","target":"llvm","device_key":"local",' \
           b'"candidate":"x","source":"s"'
    with path.open("ab") as f:
        f.write(b'{"format":1}\n')  # valid JSON, no key fields
        f.write(b'{"format":1,' + head + b',"latency":"fast"}\n')  # wrong type
        f.write(b'{"format":1,"model_hash":"m","order_hash":"\xff\xfe","target":"llvm",'
                b'"device_key":"local"}\n')  # invalid UTF-8
        f.write(b'[1, 2, 3]\n')  # JSON, not an object
        f.write(b'{"format":1,"model_hash":7,"order_hash":"y","target":"llvm",'
                b'"device_key":"local","candidate":"y","source":"s"}\n')  # a key of wrong type
        f.write(b'{"format":2,' + head + b'}\n')  # another format
        f.write(b'{' + head + b',"kind":"gpu"}\n')  # an unknown kind
    db.append(rec("b", planned_bytes=10, error=None))
    with caplog.at_level("WARNING", logger="tvm_sched.tune.database"):
        got = db.records("m", "llvm", "local")
    assert sorted(k[1] for k in got) == ["a", "b"]
    assert db.skipped == 7
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 7 and all("skipped" in r.getMessage() for r in warnings)
    assert any(":3:" in r.getMessage() and "latency" in r.getMessage() for r in warnings)
    assert any(":7:" in r.getMessage() and "format 2" in r.getMessage() for r in warnings)


def test_wrong_types_of_every_checked_field_are_rejected():
    good = rec("a", samples=[1.0], planned_bytes=5, error=None, orders=[[0, 1]],
               proxy={"planned": 5}, baseline=True, order=[0, 1], lane=[0, 0],
               arena_bytes=3).to_dict()
    assert TuneRecord.from_dict(good) == TuneRecord.from_dict(json.loads(json.dumps(good)))
    for field, bad in [("latency", {"median": "x"}), ("planned_bytes", "5"),
                       ("planned_bytes", True), ("error", 3), ("orders", [[0, "1"]]),
                       ("candidate", None), ("proxy", {"planned": "5"}), ("relative", "1"),
                       ("samples", ["1"]), ("baseline", "yes"), ("target", None),
                       ("anchor_samples", [float("nan")]), ("lanes", 1.5), ("lane", "01"),
                       ("arena_bytes", 1.0), ("check", "0"), ("aliases", [1]),
                       ("fast_build", 1), ("anchor", [1])]:
        with pytest.raises(TypeError, match=field):
            TuneRecord.from_dict({**good, field: bad})
    for field in ("model_hash", "order_hash", "target", "device_key", "candidate", "source"):
        with pytest.raises(ValueError, match=f"missing field {field}"):
            TuneRecord.from_dict({k: v for k, v in good.items() if k != field})
