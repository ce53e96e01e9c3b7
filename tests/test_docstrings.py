"""Docstrings name things that exist (issue 15 item 13): every ``tvm_sched.x.y`` a docstring or
comment cites in backticks resolves to a module or an attribute."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tvm_sched"
CITED = re.compile(r"`~?(tvm_sched(?:\.\w+)+)`")

#: Names cited that are not Python objects on purpose.
NOT_PYTHON = {
    "tvm_sched.compare": "the module's old name, cited as history",
    "tvm_sched.tune.lane_run": "a global function the tvm_sched RPC server registers",
    "tvm_sched.tune.num_cores": "a global function the tvm_sched RPC server registers",
    "tvm_sched.runtime.num_cores": "a global function the tvm_sched RPC server registers",
    "tvm_sched.runtime.run_exported": "a global function the tvm_sched RPC server registers",
    "tvm_sched.runtime.time_step": "a global function the tvm_sched RPC server registers",
    "tvm_sched.runtime.time_steps": "a global function the tvm_sched RPC server registers",
    "tvm_sched.lanes.LaneEngine": "the tvm-ffi type key of the native engine object",
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


# ------------------------------------------------------- numpydoc sections (issue 19 item 7)
#: The packages whose public functions and classes document their parameters and results.
SECTIONED = ("relax", "solvers", "runtime", "tune")
PROPERTY_DECORATORS = {"property", "cached_property", "setter", "deleter", "overload"}


def _decorators(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    names = set()
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Attribute):
            names.add(target.attr)
        elif isinstance(target, ast.Name):
            names.add(target.id)
    return names


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[str]:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    if method and "staticmethod" not in _decorators(node) and names[:1] in (["self"], ["cls"]):
        names = names[1:]
    return names


def _returns_something(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    ann = node.returns
    return ann is not None and not (isinstance(ann, ast.Constant) and ann.value is None) and not (
        isinstance(ann, ast.Name) and ann.id == "None")


def _section(doc: str, *titles: str) -> bool:
    lines = doc.splitlines()
    return any(line.strip() in titles and i + 1 < len(lines)
               and set(lines[i + 1].strip()) == {"-"} for i, line in enumerate(lines))


def _walk(body: list[ast.stmt], prefix: str, method: bool):
    for node in body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            yield f"{prefix}{node.name}", node, False
            yield from _walk(node.body, f"{prefix}{node.name}.", True)
        elif (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
              and not node.name.startswith("_")
              and not _decorators(node) & PROPERTY_DECORATORS):
            yield f"{prefix}{node.name}", node, method


def public_definitions(package: str):
    """Yield ``(where, node, method)`` for each public function, method and class of ``package``:
    module level or inside a public class, in modules whose name has no leading underscore
    (``__init__.py`` included); dunders and properties are left out."""
    for path in sorted((PACKAGE / package).rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        if any(part.startswith("_") and part != "__init__.py" for part in rel.parts):
            continue
        for name, node, method in _walk(ast.parse(path.read_text()).body, "", False):
            yield f"{rel}:{name}", node, method


def missing_sections(package: str) -> tuple[int, list[str]]:
    """The number of public definitions of ``package`` and those lacking a section they need:
    ``Parameters`` for a function with parameters besides ``self``/``cls`` (for a class, those
    of its own ``__init__``, documented in the class or ``__init__`` docstring), ``Returns`` (or
    ``Yields``) for one annotated to return something other than ``None``."""
    total, missing = 0, []
    for where, node, method in public_definitions(package):
        total += 1
        doc = ast.get_docstring(node) or ""
        if isinstance(node, ast.ClassDef):
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef)
                         and n.name == "__init__"), None)
            if init is not None and _parameters(init, True):
                doc += "\n" + (ast.get_docstring(init) or "")
                if not _section(doc, "Parameters"):
                    missing.append(f"{where}: Parameters")
            continue
        if _parameters(node, method) and not _section(doc, "Parameters"):
            missing.append(f"{where}: Parameters")
        if _returns_something(node) and not _section(doc, "Returns", "Yields"):
            missing.append(f"{where}: Returns")
    return total, missing


@pytest.mark.parametrize("package", SECTIONED)
def test_public_definitions_have_parameters_and_returns_sections(package):
    total, missing = missing_sections(package)
    assert total > 0
    assert missing == []
