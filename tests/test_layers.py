"""Dependencies run one way (issue 15 item 10): no import cycles between tvm_sched's modules,
and the command line's helpers are not borrowed from a benchmark harness.

Every import counts -- at module level, inside functions and under ``TYPE_CHECKING`` -- since a
lazy import hides a cycle without removing it. Imports of a module's own parent packages are
left out (a package's ``__init__`` re-exporting its modules is not a cycle).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1] / "tvm_sched"

#: Cycles still open elsewhere (owners: the cost, solvers and runtime layers); a new cycle fails.
KNOWN = {
    frozenset({"tvm_sched.solvers.base", "tvm_sched.solvers.heuristics"}),
    frozenset({"tvm_sched.runtime.lower", "tvm_sched.runtime.plan"}),
}


@functools.cache
def import_graph() -> nx.DiGraph:
    """Module -> imported module, over every ``tvm_sched`` module (read once per session)."""
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    g = nx.DiGraph()
    g.add_nodes_from(mods)
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):
                    g.add_edge(name, t)
    return g


def test_no_new_import_cycles():
    cycles = {frozenset(c) for c in nx.simple_cycles(import_graph())}
    assert cycles <= KNOWN, sorted(sorted(c) for c in cycles - KNOWN)


def test_the_tuner_and_its_report_do_not_import_each_other():
    g = import_graph()
    assert not g.has_edge("tvm_sched.tune.report", "tvm_sched.tune.tuner")
    assert g.has_edge("tvm_sched.tune.tuner", "tvm_sched.tune.report")


def test_command_line_does_not_borrow_from_the_benchmark_harness():
    g = import_graph()
    assert "tvm_sched.compare" not in g  # moved to tvm_sched.solvers.compare
    assert not g.has_edge("tvm_sched.tune.cli", "tvm_sched.solvers.compare")
    assert g.has_edge("tvm_sched.tune.cli", "tvm_sched.console")


def test_test_files_have_unique_basenames():
    """pytest imports test modules by basename (no ``__init__.py`` under tests/): two files of
    one name stop the whole collection ("import file mismatch")."""
    tests = Path(__file__).resolve().parent
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


#: graph <- memory <- cost <- solvers <- relax <- runtime <- tune <- cli (DESIGN.md).
LAYERS = ["graph", "schedule", "memory", "cost", "datasets", "solvers", "relax", "runtime",
          "tune"]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_dependencies_run_one_way():
    # issue 15 item 10: solvers/gflownet/train.py imported relax, frontend and zoo
    g = import_graph()
    up = []
    for a, b in g.edges:
        la, lb = _layer(a), _layer(b)
        if la and lb and LAYERS.index(lb) > LAYERS.index(la):
            up.append(f"{a} -> {b}")
    assert up == []
    for a, b in g.edges:  # nothing below relax reaches the zoo or the command line
        if _layer(a) in LAYERS[:LAYERS.index("relax")]:
            assert not b.startswith(("tvm_sched.zoo", "tvm_sched.cli", "tvm_sched.tune")), (a, b)
