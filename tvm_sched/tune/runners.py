"""Deprecated: the old home of the device sources, :mod:`tvm_sched.tune.devices` now ("runner"
means MetaSchedule's measuring role only: :mod:`tvm_sched.tune.runner`).

The old names below stay importable for code not yet moved; new code imports
:mod:`tvm_sched.tune.devices`.
"""

from __future__ import annotations

from tvm_sched.tune.devices import DEVICE_KINDS as RUNNER_KINDS
from tvm_sched.tune.devices import Devices as Runner
from tvm_sched.tune.devices import EmbeddedDevices as EmbeddedRunner
from tvm_sched.tune.devices import InProcessDevices as InProcessRunner
from tvm_sched.tune.devices import ServerDevices as ServerRunner
from tvm_sched.tune.devices import TrackerDevices as TrackerRunner
from tvm_sched.tune.devices import create_devices as create_runner
from tvm_sched.tune.devices import devices_from_args as runner_from_args
from tvm_sched.tune.devices import parse_address

__all__ = ["Runner", "InProcessRunner", "ServerRunner", "TrackerRunner", "EmbeddedRunner",
           "RUNNER_KINDS", "create_runner", "runner_from_args", "parse_address"]
