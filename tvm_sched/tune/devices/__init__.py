"""Devices: where the device sessions come from, one source per module, made by kind with
:func:`create_devices` (MetaSchedule's *runner* role — measuring — is
:mod:`tvm_sched.tune.runner`; this package only hands out
``tvm.rpc`` sessions).

- ``"local"``: :class:`~tvm_sched.tune.devices.local.InProcessDevices`;
- ``"server"``: :class:`~tvm_sched.tune.devices.server.ServerDevices` (``address=``);
- ``"tracker"``: :class:`~tvm_sched.tune.devices.tracker.TrackerDevices` (``address=``, ``key=``);
- ``"embedded"``: :class:`~tvm_sched.tune.devices.embedded.EmbeddedDevices` (the default).

Every kind hands out ``tvm.rpc`` sessions (:class:`~tvm_sched.tune.devices.base.Devices`), so
one measuring code path serves them all: :class:`~tvm_sched.tune.runner.InterleavedRunner`,
with an adapter per kind (:class:`~tvm_sched.tune.runner.OrderAdapter` for VM orders,
:class:`~tvm_sched.tune.lane_runner.LaneAdapter` for the Relax VM, lane plans and anchors).
"""

from __future__ import annotations

import os
from typing import Any

from tvm_sched.errors import TuneInputError
from tvm_sched.tune.devices.base import (
    CHECK_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    Devices,
    call_with_deadline,
    check_answers,
    parse_address,
)
from tvm_sched.tune.devices.embedded import EmbeddedDevices
from tvm_sched.tune.devices.local import InProcessDevices
from tvm_sched.tune.devices.server import ServerDevices
from tvm_sched.tune.devices.tracker import TrackerDevices

__all__ = ["Devices", "InProcessDevices", "ServerDevices", "TrackerDevices", "EmbeddedDevices",
           "DEVICE_KINDS", "create_devices", "devices_from_args", "parse_address",
           "check_answers", "call_with_deadline"]

DEVICE_KINDS = {"local": InProcessDevices, "server": ServerDevices, "tracker": TrackerDevices,
                "embedded": EmbeddedDevices}


def create_devices(kind: str = "embedded", **options: Any) -> Devices:
    """A device source of ``kind`` (see the module docstring) made with ``options``.

    Parameters
    ----------
    kind
        A key of ``DEVICE_KINDS``.
    **options
        The source class's constructor arguments.

    Returns
    -------
    Devices
        A new, not yet opened device source.

    Raises
    ------
    TuneInputError
        An unknown kind.
    """
    cls = DEVICE_KINDS.get(kind)
    if cls is None:
        raise TuneInputError(f"unknown device kind {kind!r}; one of "
                             f"{', '.join(sorted(DEVICE_KINDS))}")
    return cls(**options)


def devices_from_args(*, rpc_server: str | None = None, rpc_tracker: str | None = None,
                     rpc_key: str | None = None, in_process: bool = False,
                     tracker_wait: float = 60.0, min_devices: int = 1, status=None,
                     timeout: float | None = None) -> Devices:
    """The device source a command line asks for; the tracker also from ``TVM_TRACKER_*``.

    Parameters
    ----------
    rpc_server, rpc_tracker, rpc_key, in_process, tracker_wait, min_devices, status
        The command line's options (``--rpc-server`` ...).
    timeout
        The tuner's ``--timeout`` (seconds per device call): no connect waits longer than it
        (nor longer than 30 s), no handshake check longer than 3 s.

    Returns
    -------
    Devices
        Not yet connected.

    Raises
    ------
    TuneInputError
        Both a server and a tracker, or a malformed address.
    """
    deadlines = {"connect_timeout": CONNECT_TIMEOUT_S, "check_timeout": CHECK_TIMEOUT_S}
    if timeout is not None and timeout > 0:
        deadlines["connect_timeout"] = min(CONNECT_TIMEOUT_S, timeout)
        deadlines["check_timeout"] = min(CHECK_TIMEOUT_S, timeout)
    tracker = rpc_tracker
    if tracker is None and rpc_server is None and os.environ.get("TVM_TRACKER_HOST"):
        tracker = f"{os.environ['TVM_TRACKER_HOST']}:{os.environ.get('TVM_TRACKER_PORT', '9190')}"
    key = rpc_key or os.environ.get("TVM_TRACKER_KEY")
    if rpc_server and tracker:
        raise TuneInputError("give either --rpc-server or --rpc-tracker, not both")
    if in_process:
        return InProcessDevices()
    if rpc_server:
        return ServerDevices(rpc_server, **deadlines)
    if tracker:
        return TrackerDevices(tracker, key or "", wait=tracker_wait, min_devices=min_devices,
                             status=status, **deadlines)
    return EmbeddedDevices(**deadlines)
