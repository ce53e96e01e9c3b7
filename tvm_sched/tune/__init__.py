"""The tuner: build candidate orders, measure them on devices over TVM RPC, pick the best.

``tvm-sched tune`` is its command line. Layers: :mod:`~tvm_sched.tune.model` (what is tuned),
:mod:`~tvm_sched.tune.candidate` (the candidate types of both paths and the builder role),
:mod:`~tvm_sched.tune.candidates` (orders and proxies), :mod:`~tvm_sched.tune.builder`,
:mod:`~tvm_sched.tune.devices` (where the RPC sessions come from),
:mod:`~tvm_sched.tune.session` (a device session and the per-kind interface),
:mod:`~tvm_sched.tune.runner` (the one measurement protocol, and the VM-order adapter),
:mod:`~tvm_sched.tune.record` (typed records, one type for both tuning paths),
:mod:`~tvm_sched.tune.database` (their JSONL file), :mod:`~tvm_sched.tune.objective` (the
objectives' rules and the ask/tell ``search`` both paths run), :mod:`~tvm_sched.tune.pick`
(the VM-order decision rules), :mod:`~tvm_sched.tune.result`, :mod:`~tvm_sched.tune.report`,
:mod:`~tvm_sched.tune.workdir` (check, lock, atomic writes), :mod:`~tvm_sched.tune.tuner`
(propose, search, export); the lane objective (``TuneConfig(lanes=...)``):
:mod:`~tvm_sched.tune.lanes` (its builder), :mod:`~tvm_sched.tune.lane_runner` (its adapter to
the runner, the kernel profile), the lane section of the report,
:mod:`~tvm_sched.runtime.rpc` (the functions the tvm_sched RPC server registers).

Names are imported on first use, so ``python -m tvm_sched.tune.server`` (the embedded RPC
server) starts without importing torch or the rest of the tuner.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "Builder": "builder", "Built": "builder",
    "Candidate": "candidates", "propose": "candidates",
    "TuneCandidate": "candidate", "OrderCandidate": "candidate",
    "CandidateBuilder": "candidate",
    "Database": "database",
    "TuneModel": "model", "check_target": "model", "load_model": "model",
    "target_key": "model", "conv_layout": "model",
    "EmbeddedDevices": "devices", "InProcessDevices": "devices", "Measurer": "runner",
    "InterleavedRunner": "runner",
    "Devices": "devices", "ServerDevices": "devices", "TrackerDevices": "devices",
    "devices_from_args": "devices", "create_devices": "devices",
    "TuneConfig": "tuner", "tune": "tuner", "TuneResult": "result",
    "rich_table": "report", "write_report": "report",
    "EmbeddedServer": "server",
    "parse_memory_budget": "pick", "pick": "pick", "beyond_noise": "pick",
    "check_work_dir": "workdir", "lock_work_dir": "workdir",
    "TuneObjective": "objective", "LaneObjective": "objective", "LaneCandidate": "candidate",
    "MeasureResult": "record", "TuneRecord": "record", "search": "objective",
    "tune_lanes": "lanes", "LANE_SOLVERS": "lanes",
    "LaneTuneResult": "lane_report", "rich_lane_table": "report",
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"tvm_sched.tune.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tvm_sched.tune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
