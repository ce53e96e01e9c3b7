"""Docstrings name things that exist (issue 15 item 13): every ``tvm_sched.x.y`` a docstring or
comment cites in backticks resolves to a module or an attribute."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tvm_sched"
CITED = re.compile(r"`~?(tvm_sched(?:\.\w+)+)`")

#: Names cited that are not Python objects on purpose.
NOT_PYTHON = {
    "tvm_sched.compare": "the module's old name, cited as history",
    "tvm_sched.tune.lane_run": "a global function the tvm_sched RPC server registers",
    "tvm_sched.tune.num_cores": "a global function the tvm_sched RPC server registers",
}


def resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name, None)
            if obj is None:
                return None
        return obj
    return None


def test_every_cited_name_exists():
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for match in CITED.finditer(path.read_text()):
            name = match.group(1)
            if name not in NOT_PYTHON and resolve(name) is None:
                missing.append(f"{path.relative_to(PACKAGE.parent)}: {name}")
    assert missing == []


def test_the_relax_layer_exports_what_users_need_without_shadowing_modules():
    import inspect

    import tvm_sched.relax as tsr

    for name in ("extract_op_graphs", "apply_order", "planned_bytes", "prepare",
                 "ReorderBindings", "ScheduleOperators", "PlanArena", "allocated_bytes",
                 "pipeline", "profile_kernels"):
        assert name in tsr.__all__ and hasattr(tsr, name), name
    assert inspect.ismodule(tsr.extract)  # the module, not shadowed by a function
