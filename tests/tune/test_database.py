"""The JSONL database: append, latest record per key, torn lines skipped."""

from __future__ import annotations

from tvm_sched.tune.database import Database


def rec(order: str, **kw):
    return {"model_hash": "m", "order_hash": order, "target": "llvm", "device_key": "local",
            **kw}


def test_append_read_latest_and_filter(tmp_path):
    db = Database(tmp_path / "r.jsonl")
    db.append(rec("a", value=1))
    db.append(rec("b", value=2))
    db.append(rec("a", value=3))
    db.append({**rec("c"), "target": "cuda"})
    got = db.records("m", "llvm", "local")
    assert {k[1]: v["value"] for k, v in got.items()} == {"a": 3, "b": 2}
    assert len(db.records()) == 3


def test_torn_last_line_is_skipped_and_next_append_survives(tmp_path):
    path = tmp_path / "r.jsonl"
    db = Database(path)
    db.append(rec("a"))
    with path.open("a") as f:
        f.write('{"format": 1, "model_hash": "m", "order_')  # a write cut short
    assert list(db.records()) == [("m", "a", "llvm", "local")]
    db.append(rec("b"))
    assert sorted(k[1] for k in db.records()) == ["a", "b"]
