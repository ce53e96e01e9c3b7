"""Candidates' identities: the hashes (and so the record keys) of both candidate kinds are
pinned, so that a resumed run still finds the records an earlier version wrote (no TVM).

The expected hashes were computed with the code before the two candidate classes shared a
base (issue 19 item 1); they must never change.
"""

from __future__ import annotations

import dataclasses

import pytest

from tvm_sched.tune.objective import Candidate, LaneCandidate

#: (candidate, kind, hash) computed before the refactor.
PINNED = [
    (lambda: Candidate("tvm", "baseline", ((0, 1, 2), (1, 0)), baseline=True),
     "vm", "c52482bd19684f15"),
    (lambda: Candidate("gaus#0", "gaus", ((2, 0, 1),)), "order", "434bb47a65cdf1ff"),
    (lambda: Candidate("empty", "random", ()), "order", "97d170e1550eee4a"),
    (lambda: LaneCandidate("relax-vm", "baseline", "vm", 1, None, None, 10e-3, 1000, True),
     "vm", "3ada1ae47f16a5e4"),
    (lambda: LaneCandidate("executor m=1", "baseline", "lanes", 1, (0, 1, 2), (0, 0, 0)),
     "lanes", "2775dd7b5cab27c6"),
    (lambda: LaneCandidate("gaus", "gaus", "lanes", 2, (0, 2, 1), (0, 1, 1), 1e-3, 64),
     "lanes", "7ff2e3709ccc20b1"),
    (lambda: LaneCandidate("pytorch", "anchor", "anchor", 1, baseline=True),
     "anchor", "bd6896971af87ea0"),
    (lambda: LaneCandidate("onnxruntime", "anchor", "anchor", 1, baseline=True),
     "anchor", "9917de72d613d8b4"),
]


@pytest.mark.parametrize("make,kind,digest", PINNED)
def test_candidate_hashes_are_pinned(make, kind, digest):
    c = make()
    assert (c.kind, c.hash) == (kind, digest)


def test_lane_candidate_state_fields_are_unchanged():
    """The lane state file stores ``dataclasses.asdict`` of each proposal and reads it back
    with ``LaneCandidate(**d)``: the fields and their order stay as they were."""
    c = LaneCandidate("gaus", "gaus", "lanes", 2, (0, 2, 1), (0, 1, 1), 1e-3, 64)
    d = dataclasses.asdict(c)
    assert list(d) == ["name", "source", "kind", "lanes", "order", "lane", "predicted",
                       "arena_bytes", "baseline", "aliases"]
    assert LaneCandidate(**d).hash == c.hash
    o = Candidate("gaus#0", "gaus", ((2, 0, 1),))
    assert list(dataclasses.asdict(o)) == ["name", "source", "orders", "baseline", "proxy",
                                           "aliases"]


def test_both_kinds_share_one_base_and_key_their_records():
    from tvm_sched.tune.candidate import CANDIDATE_KINDS, OrderCandidate, TuneCandidate
    from tvm_sched.tune.record import KINDS, MeasureResult, TuneRecord

    assert Candidate is OrderCandidate and CANDIDATE_KINDS == KINDS
    lane = LaneCandidate("gaus", "gaus", "lanes", 2, (0, 1), (0, 1), 1e-3, 64)
    order = Candidate("gaus#0", "gaus", ((1, 0),))
    for c in (lane, order):
        assert isinstance(c, TuneCandidate) and c.kind in CANDIDATE_KINDS
        key = c.record_key("model", "llvm -keys=cpu", "local")
        assert key == ("model", c.hash, "llvm -keys=cpu", "local")
    m = MeasureResult(lane.hash, "local", samples=[1e-3])
    rec = TuneRecord.make(lane, m, model="m", model_hash="model", target="llvm -keys=cpu",
                          device_key="local")
    assert rec.key == lane.record_key("model", "llvm -keys=cpu", "local")


def test_the_base_has_no_identity_and_identity_hash_needs_json():
    from tvm_sched.tune.candidate import TuneCandidate, identity_hash

    with pytest.raises(NotImplementedError):
        _ = TuneCandidate("x", "y").hash
    with pytest.raises(NotImplementedError):
        _ = TuneCandidate("x", "y").kind
    with pytest.raises(TypeError):
        identity_hash([object()])


def test_both_builders_implement_the_builder_role():
    from tvm_sched.tune import objective
    from tvm_sched.tune.builder import Built, OrderBuilder
    from tvm_sched.tune.candidate import BuiltCandidate, CandidateBuilder
    from tvm_sched.tune.lanes import BuiltLane, LaneBuilder

    assert objective.Builder is CandidateBuilder
    assert issubclass(OrderBuilder, CandidateBuilder) and issubclass(LaneBuilder, CandidateBuilder)

    class Model:
        def build(self, orders):
            return Built(None, False, 0.5, error=f"no build of {orders}")

    ob = OrderBuilder(Model())
    assert isinstance(ob, CandidateBuilder)
    c = Candidate("a", "x", ((0,),))
    b = ob.build(c)
    assert isinstance(b, BuiltCandidate) and ob.built[c.hash] is b and b.seconds == 0.5
    assert isinstance(BuiltLane(None, None, 0.0), BuiltCandidate)


def test_the_tune_package_names_the_candidate_types():
    import tvm_sched.tune as tune
    from tvm_sched.tune import candidate

    assert tune.TuneCandidate is candidate.TuneCandidate
    assert tune.LaneCandidate is candidate.LaneCandidate
    assert tune.Candidate is tune.OrderCandidate is candidate.OrderCandidate
    assert tune.CandidateBuilder is candidate.CandidateBuilder
