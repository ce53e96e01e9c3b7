"""The JSONL database of typed records: append, latest record per key, bad lines skipped."""

from __future__ import annotations

import json

import pytest

from tvm_sched.tune.database import Database
from tvm_sched.tune.record import LaneFacts, OrderFacts, TuneRecord


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
    assert first["format"] == 2 and first["latency"]["median"] == 2.0
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
        f.write(b'{"format":3,' + head + b'}\n')  # another format
        f.write(b'{' + head + b',"kind":"gpu"}\n')  # an unknown kind
    db.append(rec("b", facts=OrderFacts(planned_bytes=10), error=None))
    with caplog.at_level("WARNING", logger="tvm_sched.tune.database"):
        got = db.records("m", "llvm", "local")
    assert sorted(k[1] for k in got) == ["a", "b"]
    assert db.skipped == 7
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 7 and all("skipped" in r.getMessage() for r in warnings)
    assert any(":3:" in r.getMessage() and "latency" in r.getMessage() for r in warnings)
    assert any(":7:" in r.getMessage() and "format 3" in r.getMessage() for r in warnings)


def test_wrong_types_of_every_checked_field_are_rejected():
    order = rec("a", samples=[1.0], error=None, baseline=True,
                facts=OrderFacts(orders=[[0, 1]], proxy={"planned": 5}, planned_bytes=5))
    lanes = rec("b", kind="lanes", facts=LaneFacts(2, [0, 1], [0, 1], 1e-3, 3))
    for good in (order.to_dict(), lanes.to_dict()):
        assert TuneRecord.from_dict(good) == TuneRecord.from_dict(json.loads(json.dumps(good)))
    good = order.to_dict()
    for field, bad in [("latency", {"median": "x"}), ("error", 3), ("candidate", None),
                       ("relative", "1"), ("samples", ["1"]), ("baseline", "yes"),
                       ("target", None), ("anchor_samples", [float("nan")]), ("check", "0"),
                       ("aliases", [1]), ("anchor", [1]), ("facts", [1])]:
        with pytest.raises(TypeError, match=field):
            TuneRecord.from_dict({**good, field: bad})
    for d, field, bad in [(order, "planned_bytes", "5"), (order, "planned_bytes", True),
                          (order, "orders", [[0, "1"]]), (order, "proxy", {"planned": "5"}),
                          (order, "fast_build", 1), (lanes, "lanes", 1.5),
                          (lanes, "lane", "01"), (lanes, "arena_bytes", 1.0)]:
        line = d.to_dict()
        with pytest.raises(TypeError, match=field):
            TuneRecord.from_dict({**line, "facts": {**line["facts"], field: bad}})
    with pytest.raises(ValueError, match="path"):
        TuneRecord.from_dict({**good, "facts": {"path": "gpu"}})
    for field in ("model_hash", "order_hash", "target", "device_key", "candidate", "source"):
        with pytest.raises(ValueError, match=f"missing field {field}"):
            TuneRecord.from_dict({k: v for k, v in good.items() if k != field})


def test_format_1_lines_with_flat_facts_are_read_into_typed_payloads():
    common = {"format": 1, "model_hash": "m", "target": "llvm", "device_key": "local",
              "source": "test", "samples": [1.0]}
    old_order = {**common, "order_hash": "a", "candidate": "a", "kind": "order",
                 "orders": [[1, 0]], "proxy": {"planned": 5.0}, "planned_bytes": 5,
                 "lanes": 1, "order": None, "predicted": None}
    old_lanes = {**common, "order_hash": "b", "candidate": "b", "kind": "lanes", "lanes": 2,
                 "order": [0, 1], "lane": [0, 1], "predicted": 0.5, "arena_bytes": 64,
                 "orders": None, "proxy": {}}
    a, b = TuneRecord.from_dict(old_order), TuneRecord.from_dict(old_lanes)
    assert a.facts == OrderFacts(orders=[[1, 0]], proxy={"planned": 5.0}, planned_bytes=5)
    assert b.facts == LaneFacts(2, [0, 1], [0, 1], 0.5, 64)
    assert a.lane_facts == LaneFacts() and b.order_facts == OrderFacts()
    assert a.format == 2 and a.to_dict()["facts"]["path"] == "order"
    assert TuneRecord.from_dict(a.to_dict()) == a
