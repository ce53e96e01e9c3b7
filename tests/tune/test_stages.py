"""The named, timed stages both tuning paths run as (no TVM)."""

from __future__ import annotations

import pytest

from tvm_sched.tune.stages import Stages


def test_stages_add_up_per_name_in_order_and_count_a_failed_stage():
    calls = []
    st = Stages(lambda *a: calls.append(a))
    with st.timed("propose"):
        st.prog("propose", 0, 1, "x")
    with st.timed("build"):
        st.secs["kernels_tuning"] = 1.5  # a stage may add its own facts
    first = st.secs["build"]
    with st.timed("build"):
        pass
    with pytest.raises(RuntimeError), st.timed("export"):
        raise RuntimeError("boom")
    assert list(st.secs) == ["propose", "kernels_tuning", "build", "export"]
    assert st.secs["build"] >= first >= 0.0 and st.secs["kernels_tuning"] == 1.5
    assert calls == [("propose", 0, 1, "x")]
    Stages(None).prog("anything", 1, 2, "ignored")  # no callback: nothing happens
