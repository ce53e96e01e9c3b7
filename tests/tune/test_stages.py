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


class _Kind:
    """Records the stages it runs; ``profile`` is skipped; ``fail`` names a stage that raises."""

    profile = "nothing to profile"

    def __init__(self, fail=None):
        self.ran, self.fail, self.closed, self.result = [], fail, False, None
        for name in ("devices", "kernels", "propose", "plan", "search", "export", "report"):
            setattr(self, name, lambda name=name: self._run(name))

    def _run(self, name):
        if name == self.fail:
            raise RuntimeError(name)
        self.ran.append(name)
        self.result = len(self.ran)

    def close(self):
        self.closed = True


def test_every_kind_runs_the_one_sequence_and_a_skipped_stage_says_why():
    from tvm_sched.tune.stages import STAGES, run_stages

    st, kind = Stages(None), _Kind()
    assert run_stages(kind, st) == 7 and kind.closed
    assert kind.ran == [s for s in STAGES if s != "profile"]
    assert [line.split(":")[0] for line in st.log] == list(STAGES)
    assert st.log[2] == "profile: skipped (nothing to profile)"


def test_a_failing_stage_stops_the_sequence_and_the_kind_is_closed():
    from tvm_sched.tune.stages import run_stages

    kind = _Kind(fail="plan")
    with pytest.raises(RuntimeError, match="plan"):
        run_stages(kind, Stages(None))
    assert kind.ran == ["devices", "kernels", "propose"] and kind.closed
