"""Reference outputs computed on the measured device: without a host reference, the anchor's
(TVM's order's) outputs on each device are what every other candidate there must match."""

from __future__ import annotations

import numpy as np
import pytest

from tvm_sched.graph import priority_orders_batch
from tvm_sched.tune import InProcessDevices, Measurer
from tvm_sched.tune.runner import _Device

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def items(model, builder):
    g = model.graphs[0]
    orders = [tuple(range(g.num_nodes))] + [tuple(o) for o in priority_orders_batch(
        g, np.random.default_rng(3).random((2, g.num_nodes)))]
    return [(i, builder.build([o]), f"r{i}") for i, o in enumerate(orders)]


def _measure(builder, reference, items, anchor, monkeypatch=None, bad_tag=None):
    args, _ = reference
    if bad_tag is not None:
        load = _Device.load

        def perturbed(self, built, tag):
            vm, outs = load(self, built, tag)
            return vm, ([o + 1.0 for o in outs] if tag == bad_tag else outs)

        monkeypatch.setattr(_Device, "load", perturbed)
    got = {}
    m = Measurer(InProcessDevices(), kernels=builder.kernels, args=args, reference=None,
                 repeats=2, min_repeat_ms=1)
    try:
        m.measure(items, lambda meas: got.__setitem__(meas.index, meas), anchor=anchor)
    finally:
        m.close()
    return got


def test_the_anchor_on_the_device_is_the_reference(builder, reference, items):
    # the anchor last in the list: it is still loaded first, so the others have a reference
    got = _measure(builder, reference, [*items[1:], items[0]], items[0])
    assert sorted(got) == [0, 1, 2]
    assert all(m.error is None and m.check == 0.0 for m in got.values())


def test_a_candidate_that_differs_from_the_device_reference_is_an_error(builder, reference,
                                                                         items, monkeypatch):
    got = _measure(builder, reference, items, items[0], monkeypatch, bad_tag="r2")
    assert got[0].error is None and got[1].error is None
    assert "outputs differ from the reference" in got[2].error


def test_no_reference_and_no_anchor_is_refused(builder, reference, items):
    with pytest.raises(ValueError, match="needs an anchor"):
        _measure(builder, reference, items, None)
