"""Runners: where candidates are measured, one per module, made by kind with
:func:`create_runner`.

- ``"local"``: :class:`~tvm_sched.tune.runners.local.InProcessRunner`;
- ``"server"``: :class:`~tvm_sched.tune.runners.server.ServerRunner` (``address=``);
- ``"tracker"``: :class:`~tvm_sched.tune.runners.tracker.TrackerRunner` (``address=``, ``key=``);
- ``"embedded"``: :class:`~tvm_sched.tune.runners.embedded.EmbeddedRunner` (the default).

Every runner hands out ``tvm.rpc`` sessions (:class:`~tvm_sched.tune.runners.base.Runner`), so
one measuring code path serves them all: :class:`~tvm_sched.tune.runner.Measurer` for VM
orders, :class:`~tvm_sched.tune.lanes.LaneRunner` for the Relax VM and lane plans.
"""

from __future__ import annotations

import os
from typing import Any

from tvm_sched.errors import TuneInputError
from tvm_sched.tune.runners.base import (
    CHECK_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    Runner,
    call_with_deadline,
    check_answers,
    parse_address,
)
from tvm_sched.tune.runners.embedded import EmbeddedRunner
from tvm_sched.tune.runners.local import InProcessRunner
from tvm_sched.tune.runners.server import ServerRunner
from tvm_sched.tune.runners.tracker import TrackerRunner

__all__ = ["Runner", "InProcessRunner", "ServerRunner", "TrackerRunner", "EmbeddedRunner",
           "RUNNER_KINDS", "create_runner", "runner_from_args", "parse_address",
           "check_answers", "call_with_deadline"]

RUNNER_KINDS = {"local": InProcessRunner, "server": ServerRunner, "tracker": TrackerRunner,
                "embedded": EmbeddedRunner}


def create_runner(kind: str = "embedded", **options: Any) -> Runner:
    """A runner of ``kind`` (see the module docstring) made with ``options``.

    Parameters
    ----------
    kind
        A key of ``RUNNER_KINDS``.
    **options
        The runner class's constructor arguments.

    Returns
    -------
    Runner
        A new, not yet opened runner.

    Raises
    ------
    TuneInputError
        An unknown kind.
    """
    cls = RUNNER_KINDS.get(kind)
    if cls is None:
        raise TuneInputError(f"unknown runner kind {kind!r}; one of "
                             f"{', '.join(sorted(RUNNER_KINDS))}")
    return cls(**options)


def runner_from_args(*, rpc_server: str | None = None, rpc_tracker: str | None = None,
                     rpc_key: str | None = None, in_process: bool = False,
                     tracker_wait: float = 60.0, min_devices: int = 1, status=None,
                     timeout: float | None = None) -> Runner:
    """The runner a command line asks for; the tracker also from ``TVM_TRACKER_*``.

    Parameters
    ----------
    rpc_server, rpc_tracker, rpc_key, in_process, tracker_wait, min_devices, status
        The command line's options (``--rpc-server`` ...).
    timeout
        The tuner's ``--timeout`` (seconds per device call): no connect waits longer than it
        (nor longer than 30 s), no handshake check longer than 3 s.

    Returns
    -------
    Runner
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
        return InProcessRunner()
    if rpc_server:
        return ServerRunner(rpc_server, **deadlines)
    if tracker:
        return TrackerRunner(tracker, key or "", wait=tracker_wait, min_devices=min_devices,
                             status=status, **deadlines)
    return EmbeddedRunner(**deadlines)
