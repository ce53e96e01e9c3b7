"""``create_devices(kind)``: one device source per module, made by kind; unknown kinds are input
errors; the old ``runners`` names still import."""

from __future__ import annotations

import pytest

from tvm_sched.errors import TuneInputError

pytestmark = pytest.mark.integration  # the device sources import tvm.rpc


def test_create_devices_by_kind():
    from tvm_sched.tune import create_devices
    from tvm_sched.tune.devices import (
        DEVICE_KINDS,
        EmbeddedDevices,
        InProcessDevices,
        ServerDevices,
        TrackerDevices,
    )

    assert isinstance(create_devices("local"), InProcessDevices)
    srv = create_devices("server", address="127.0.0.1:9091")
    assert isinstance(srv, ServerDevices) and (srv.host, srv.port) == ("127.0.0.1", 9091)
    tr = create_devices("tracker", address="127.0.0.1:9190", key="cpu")
    assert isinstance(tr, TrackerDevices) and tr.key == "cpu"
    emb = create_devices()
    assert isinstance(emb, EmbeddedDevices) and emb.server.proc is None  # nothing started yet
    assert set(DEVICE_KINDS) == {"local", "server", "tracker", "embedded"}
    # each source lives in its own module
    assert len({cls.__module__ for cls in DEVICE_KINDS.values()}) == 4


def test_unknown_kind_and_bad_address_are_input_errors():
    from tvm_sched.tune import create_devices

    with pytest.raises(TuneInputError, match="unknown device kind 'gpu-farm'"):
        create_devices("gpu-farm")
    with pytest.raises(TuneInputError, match="HOST:PORT"):
        create_devices("server", address="nowhere")


def test_the_old_names_still_import():
    from tvm_sched.tune import devices
    from tvm_sched.tune.devices import EmbeddedDevices as E
    from tvm_sched.tune.runner import Devices, EmbeddedDevices, Measurer, devices_from_args
    from tvm_sched.tune.runners import (
        RUNNER_KINDS,
        EmbeddedRunner,
        Runner,
        TrackerRunner,
        create_runner,
        runner_from_args,
    )

    assert EmbeddedDevices is E and Devices and Measurer and devices_from_args
    assert EmbeddedRunner is E and Runner is devices.Devices
    assert TrackerRunner is devices.TrackerDevices and RUNNER_KINDS is devices.DEVICE_KINDS
    assert create_runner is devices.create_devices
    assert runner_from_args is devices.devices_from_args
