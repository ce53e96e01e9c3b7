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


def test_valid_json_without_fields_wrong_types_or_bad_utf8_is_skipped_and_counted(tmp_path,
                                                                                  caplog):
    """Issue 15 item 1: such lines used to crash every later tune (KeyError, UnicodeDecodeError)."""
    path = tmp_path / "r.jsonl"
    db = Database(path)
    db.append(rec("a", latency={"median": 1.0, "q1": 0.9, "q3": 1.1}))
    with path.open("ab") as f:
        f.write(b'{"format":1}\n')  # valid JSON, no key fields
        f.write(b'{"format":1,"model_hash":"m","order_hash":"x","target":"llvm",'
                b'"device_key":"local","latency":"fast"}\n')  # wrong type
        f.write(b'{"format":1,"model_hash":"m","order_hash":"\xff\xfe","target":"llvm",'
                b'"device_key":"local"}\n')  # invalid UTF-8
        f.write(b'[1, 2, 3]\n')  # JSON, not an object
        f.write(b'{"format":1,"model_hash":7,"order_hash":"y","target":"llvm",'
                b'"device_key":"local"}\n')  # a key field of the wrong type
    db.append(rec("b", planned_bytes=10, error=None))
    with caplog.at_level("WARNING", logger="tvm_sched.tune.database"):
        got = db.records("m", "llvm", "local")
    assert sorted(k[1] for k in got) == ["a", "b"]
    assert db.skipped == 5
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 5 and all("skipped" in r.getMessage() for r in warnings)
    assert any(":3:" in r.getMessage() and "latency" in r.getMessage() for r in warnings)


def test_wrong_types_of_every_checked_field_are_rejected():
    from tvm_sched.tune.database import check_record

    good = rec("a", latency={"median": 1.0, "q1": 0.9, "q3": 1.1}, planned_bytes=5,
               error=None, orders=[[0, 1]], candidate="tvm", proxy={"planned": 5},
               relative=None, samples=[1.0], baseline=True)
    assert check_record(good) is None
    for field, bad in [("latency", {"median": "x"}), ("planned_bytes", "5"),
                       ("planned_bytes", True), ("error", 3), ("orders", [[0, "1"]]),
                       ("candidate", None), ("proxy", {"planned": "5"}), ("relative", "1"),
                       ("samples", ["1"]), ("baseline", "yes"), ("target", None)]:
        assert field in check_record({**good, field: bad}), field
