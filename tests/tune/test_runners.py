"""``create_runner(kind)``: one runner per module, made by kind; unknown kinds are input errors."""

from __future__ import annotations

import pytest

from tvm_sched.errors import TuneInputError

pytestmark = pytest.mark.integration  # the runners import tvm.rpc


def test_create_runner_by_kind():
    from tvm_sched.tune import create_runner
    from tvm_sched.tune.runners import (
        RUNNER_KINDS,
        EmbeddedRunner,
        InProcessRunner,
        ServerRunner,
        TrackerRunner,
    )

    assert isinstance(create_runner("local"), InProcessRunner)
    srv = create_runner("server", address="127.0.0.1:9091")
    assert isinstance(srv, ServerRunner) and (srv.host, srv.port) == ("127.0.0.1", 9091)
    tr = create_runner("tracker", address="127.0.0.1:9190", key="cpu")
    assert isinstance(tr, TrackerRunner) and tr.key == "cpu"
    emb = create_runner()
    assert isinstance(emb, EmbeddedRunner) and emb.server.proc is None  # nothing started yet
    assert set(RUNNER_KINDS) == {"local", "server", "tracker", "embedded"}
    # each runner lives in its own module
    assert len({cls.__module__ for cls in RUNNER_KINDS.values()}) == 4


def test_unknown_kind_and_bad_address_are_input_errors():
    from tvm_sched.tune import create_runner

    with pytest.raises(TuneInputError, match="unknown runner kind 'gpu-farm'"):
        create_runner("gpu-farm")
    with pytest.raises(TuneInputError, match="HOST:PORT"):
        create_runner("server", address="nowhere")


def test_the_old_names_still_import():
    from tvm_sched.tune.runner import EmbeddedRunner, Measurer, Runner, runner_from_args
    from tvm_sched.tune.runners import EmbeddedRunner as E

    assert EmbeddedRunner is E and Runner and Measurer and runner_from_args
