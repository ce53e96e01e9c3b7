"""The one sampling loop and its top-k container, with fake draws and a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from tvm_sched.cost import Makespan, PeakMemory
from tvm_sched.graph import priority_orders_batch
from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import Candidate, Deadline
from tvm_sched.solvers.sampling import sample_orders
from tvm_sched.solvers.topk import TopK
from tvm_sched.testing.dags import random_dag


class _NoBound(PeakMemory):
    """Peak memory whose lower bound is never met, so only samples and budget stop the loop."""

    def lower_bound(self, graph):
        return 0.0


def _draw_random(graph, calls=None, clock=None, unit_s=0.0):
    def draw(rng, size):
        if calls is not None:
            calls.append(size)
        if clock is not None:
            clock[0] += unit_s * size
        return priority_orders_batch(graph, rng.random((size, graph.num_nodes)))
    return draw


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 8])
def test_topk_keeps_the_k_best_distinct_orders_ties_first_seen(seed, k):
    rng = np.random.default_rng(seed)
    pool = np.array([rng.permutation(5) for _ in range(6)])
    top = TopK(k)
    seen_rows, seen_vals = [], []
    for _ in range(4):  # batches with repeated orders and tied values
        idx = rng.integers(0, len(pool), size=7)
        orders = pool[idx]
        values = (idx % 3).astype(np.float64)  # the same order always has the same value
        top.add_orders(orders, values)
        seen_rows += [tuple(r) for r in orders]
        seen_vals += list(values)
    first: dict[tuple, int] = {}
    for i, row in enumerate(seen_rows):
        first.setdefault(row, i)
    expected = sorted(first, key=lambda r: (seen_vals[first[r]], first[r]))[:k]
    assert [c.schedule.order for c in top.candidates()] == expected
    assert top.values() == sorted(top.values()) and top.best == top.values()[0]


def test_topk_ranks_the_objectives_decoding_first_on_ties_and_keeps_payloads():
    top = TopK(2)
    assert top.add(Schedule(order=(0, 1), start=(0.0, 1.0), lane=(0, 0)), 2.0, tier=1,
                   payload="event")
    assert top.add(Schedule(order=(0, 1)), 2.0, payload="serial")
    assert [c.schedule.lane for c in top.candidates()] == [None, (0, 0)]
    assert top.best_payload == "serial"
    assert not top.add(Schedule(order=(0, 1)), 2.0)  # the same schedule again
    assert not top.add(Schedule(order=(1, 0)), 3.0)  # full, and worse than both
    assert top.add(Schedule(order=(1, 0)), 1.0) and len(top) == 2
    assert top.values() == [1.0, 2.0]
    assert [c.claimed for c in top.candidates(claim=False)] == [None, None]


def test_fixed_work_draws_exactly_samples_in_batches_with_exact_values():
    g = random_dag(12, 0.3, seed=4)
    obj = _NoBound()
    calls: list[int] = []
    out = sample_orders(g, obj, Deadline(None), np.random.default_rng(0), _draw_random(g, calls),
                        samples=10, top_k=4, batch=4, probe=2)
    assert calls == [4, 4, 2]
    assert (out.samples, out.batches) == (10, 3)
    assert 1 <= len(out.candidates) <= 4
    assert len({c.schedule.order for c in out.candidates}) == len(out.candidates)
    for c in out.candidates:
        assert c.claimed == obj.evaluate(g, c.schedule)
        assert c.schedule.info["origin"] == "sample"
    assert [c.claimed for c in out.candidates] == sorted(c.claimed for c in out.candidates)


def test_same_seed_same_candidates():
    g = random_dag(15, 0.25, seed=2)

    def run(seed):
        out = sample_orders(g, Makespan(lanes=2), Deadline(None), np.random.default_rng(seed),
                            _draw_random(g), samples=40, top_k=5, batch=16, probe=4)
        return [(c.schedule.order, c.schedule.lane, c.claimed) for c in out.candidates]

    assert run(3) == run(3)


def test_budget_paces_the_batches_from_the_measured_rate():
    g = random_dag(10, 0.3, seed=1)
    t = [0.0]
    calls: list[int] = []
    deadline = Deadline(1.0, clock=lambda: t[0])
    out = sample_orders(g, _NoBound(), deadline, np.random.default_rng(0),
                        _draw_random(g, calls, clock=t, unit_s=0.01),
                        samples=2**62, top_k=3, batch=1000, probe=5)
    assert calls[0] == 5  # the timed probe
    assert 46 <= calls[1] <= 48  # half of the 0.95 s left at 10 ms per order
    assert sum(calls) == out.samples and out.batches == len(calls)
    assert t[0] <= 1.0  # every batch fitted in the time left
    assert out.samples > 50


def test_a_spent_budget_still_draws_one_order():
    g = random_dag(8, 0.3, seed=0)
    calls: list[int] = []
    out = sample_orders(g, _NoBound(), Deadline(0.0), np.random.default_rng(0),
                        _draw_random(g, calls), samples=100, top_k=2, batch=10, probe=3)
    assert calls == [1] and out.samples == 1 and len(out.candidates) == 1


def test_stops_at_the_lower_bound_and_counts_distinct_orders():
    g = random_dag(8, 0.3, seed=5)
    obj = PeakMemory()
    best = min((float(obj.evaluate_orders(g, o[None])[0]), tuple(o)) for o in
                priority_orders_batch(g, np.random.default_rng(0).random((200, 8))))
    assert best[0] <= obj.lower_bound(g)  # this graph has an order at the liveness bound
    calls: list[int] = []

    def draw(rng, size):
        calls.append(size)
        return np.tile(np.array(best[1]), (size, 1))

    out = sample_orders(g, obj, Deadline(None), np.random.default_rng(0), draw, samples=100,
                        top_k=2, batch=10, probe=3)
    assert calls == [10] and out.distinct == 1 and out.candidates[0].claimed == best[0]


def test_seeds_enter_the_same_top_k_and_win_ties():
    g = random_dag(10, 0.3, seed=7)
    obj = _NoBound()
    seed_order = np.asarray(g.topological_order)
    v = float(obj.evaluate_orders(g, seed_order[None])[0])
    out = sample_orders(g, obj, Deadline(None), np.random.default_rng(0),
                        lambda rng, size: np.tile(seed_order, (size, 1)), samples=5, top_k=3,
                        batch=5, probe=1,
                        seeds=[Candidate(Schedule(order=seed_order, info={"origin": "seed"}), v)])
    assert len(out.candidates) == 1 and out.best_origin == "seed"
    assert out.samples == 5 and out.best_decoding == "serial"


def test_event_driven_decodings_join_the_top_k_on_makespan():
    g = random_dag(30, 0.1, seed=3)
    obj = Makespan(lanes=2)
    out = sample_orders(g, obj, Deadline(None), np.random.default_rng(1), _draw_random(g),
                        samples=32, top_k=6, batch=16, probe=4)
    assert any(c.schedule.info.get("decoding") == "event-driven" for c in out.candidates)
    for c in out.candidates:
        assert c.claimed == obj.evaluate(g, c.schedule)
    off = sample_orders(g, obj, Deadline(None), np.random.default_rng(1), _draw_random(g),
                        samples=32, top_k=6, batch=16, probe=4, event_driven=False)
    assert out.candidates[0].claimed <= off.candidates[0].claimed
    assert all(c.schedule.lane is None for c in off.candidates)


@pytest.mark.parametrize("bad", [{"samples": 0}, {"batch": 0}, {"probe": 0}])
def test_invalid_counts_raise(bad):
    g = random_dag(4, 0.5, seed=0)
    kw = {"samples": 4, "top_k": 1, "batch": 2, "probe": 1, **bad}
    with pytest.raises(ValueError, match="must be >= 1"):
        sample_orders(g, PeakMemory(), Deadline(None), np.random.default_rng(0),
                      _draw_random(g), **kw)
