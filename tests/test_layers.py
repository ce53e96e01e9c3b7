"""Dependencies run one way (issue 15 item 10, issue 19 item 3): no import cycles between
tvm_sched's modules, the command line's helpers are not borrowed from a benchmark harness, and
the order algorithms live in ``graph/`` only.

Two import graphs are checked. The *module-level* one (every import outside a function body: top
level, class bodies, ``if``/``try`` blocks, ``TYPE_CHECKING`` blocks included) must have no cycle
at all. The *full* one also counts imports inside functions, since a lazy import hides a
cycle without removing it; its cycles must be exactly the allow-listed ones below. Imports of a
module's own parent packages are left out of both (a package's ``__init__`` re-exporting its
modules is not a cycle).
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1] / "tvm_sched"

#: Cycles through lazy (function-level) imports still open, each with its owner; a new cycle
#: fails, and so does an entry that no longer exists (remove it then).
KNOWN_LAZY: set[frozenset[str]] = set()


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _imports(tree: ast.AST, lazy: bool):
    """The import statements of ``tree``; without ``lazy``, those outside function bodies."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if not lazy and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        todo.extend(ast.iter_child_nodes(node))


@functools.cache
def import_graph(lazy: bool = True) -> nx.DiGraph:
    """Module -> imported module, over every ``tvm_sched`` module (read once per session);
    ``lazy``: count the imports inside functions too."""
    mods = _modules()
    g = nx.DiGraph()
    g.add_nodes_from(mods)
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(p.read_text()), lazy):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):
                    g.add_edge(name, t)
    return g


def _cycles(g: nx.DiGraph) -> set[frozenset[str]]:
    return {frozenset(c) for c in nx.simple_cycles(g)}


def test_no_import_cycles_at_module_level():
    assert sorted(sorted(c) for c in _cycles(import_graph(lazy=False))) == []


def test_lazy_imports_close_only_the_known_cycles():
    cycles = _cycles(import_graph())
    assert sorted(sorted(c) for c in cycles - KNOWN_LAZY) == [], "new import cycle"
    assert sorted(sorted(c) for c in KNOWN_LAZY - cycles) == [], "fixed: drop from KNOWN_LAZY"


def test_the_walker_tells_lazy_imports_from_module_level_ones():
    # the two checks above are only as good as this split
    tree = ast.parse(
        "import a\n"
        "if TYPE_CHECKING:\n    import b\n"
        "class C:\n    import c\n    def m(self):\n        import d\n"
        "def f():\n    from e import x\n"
        "g = lambda: __import__('h')\n"
    )

    def names(lazy):
        return sorted(n.names[0].name if isinstance(n, ast.Import) else n.module
                      for n in _imports(tree, lazy))

    assert names(lazy=False) == ["a", "b", "c"]
    assert names(lazy=True) == ["a", "b", "c", "d", "e"]
    assert set(import_graph(lazy=False).edges) <= set(import_graph().edges)


def test_base_and_runtime_do_not_reach_into_the_heuristic_solvers():
    # issue 19 item 3: solvers.base <-> solvers.heuristics, runtime.lower -> solvers.heuristics
    g = import_graph()
    assert not g.has_edge("tvm_sched.solvers.base", "tvm_sched.solvers.heuristics")
    assert g.has_edge("tvm_sched.solvers.heuristics", "tvm_sched.solvers.base")
    assert g.has_edge("tvm_sched.runtime.lower", "tvm_sched.graph")
    for a, b in g.edges:  # layers above the solvers use their public face only
        if _layer(a) in ("relax", "runtime", "tune") and b.startswith("tvm_sched.solvers"):
            assert b in ("tvm_sched.solvers", "tvm_sched.solvers.portfolio"), (a, b)


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


#: Functions outside ``graph/`` whose names look like an order or cycle algorithm, each with why
#: it stays; a new one fails, and so does an entry that no longer exists (remove it then).
ORDER_NAMES_ALLOWED = {
    # a hypothesis strategy around graph.orders.random_order; no algorithm of its own
    ("testing/strategies.py", "topological_order"),
    # the brute-force oracle enumerates with networkx's all_topological_sorts, independent of
    # graph/ on purpose (it checks the solvers built on graph/)
    ("testing/brute.py", "topological_orders"),
}

ORDER_NAME = re.compile(r"topo|kahn|cycle", re.IGNORECASE)


@functools.cache
def graph_algorithm_names() -> frozenset[str]:
    """The public functions of ``graph/algorithms.py`` and ``graph/orders.py`` (a copy of one
    under its own name is caught too)."""
    from tvm_sched.graph import algorithms, orders

    return frozenset(algorithms.__all__) | frozenset(orders.__all__)


def order_like(name: str) -> bool:
    return bool(ORDER_NAME.search(name)) or name.lstrip("_") in graph_algorithm_names()


def order_like_functions() -> set[tuple[str, str]]:
    """(path under tvm_sched/, name) of every function or method outside ``graph/`` whose name
    is :func:`order_like`."""
    out = set()
    for p in ROOT.rglob("*.py"):
        rel = p.relative_to(ROOT).as_posix()
        if rel.startswith("graph/"):
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and order_like(
                    node.name):
                out.add((rel, node.name))
    return out


def test_order_and_cycle_algorithms_live_in_graph_only():
    # issue 19 item 3: cycle finding was written four times, the orders lived in the solvers
    found = order_like_functions()
    assert sorted(found - ORDER_NAMES_ALLOWED) == [], "move it to tvm_sched/graph/"
    assert sorted(ORDER_NAMES_ALLOWED - found) == [], "gone: drop it from the allow-list"


def test_the_order_name_check_would_catch_a_copy():
    # the names the old copies had, and the moved functions under their own names
    for name in ("dfs_topological", "kahn_lists", "_find_cycle", "_topological", "has_cycle",
                 "dfs_order", "_priority_orders_batch", "lpmf_order", "program_order"):
        assert order_like(name), name
    for name in ("list_schedule", "stage_order", "check_lanes", "evaluate_orders"):
        assert not order_like(name), name


#: Functions of more than :data:`MAX_LINES` lines (docstring left out), each with why it stays;
#: a new one fails, and so does an entry that is short now (remove it then).
LONG_ALLOWED: set[tuple[str, str]] = set()

MAX_LINES = 80


def _long_in(tree: ast.AST, rel: str, limit: int = MAX_LINES) -> dict[tuple[str, str], int]:
    """(rel, qualified name) -> lines of the functions in ``tree`` longer than ``limit`` lines
    without their docstring (methods and nested functions included)."""
    out = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = child.end_lineno - child.lineno + 1
                first = child.body[0] if child.body else None
                if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                        and isinstance(first.value.value, str)):
                    lines -= first.end_lineno - first.lineno + 1
                if lines > limit:
                    out[(rel, prefix + child.name)] = lines
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            else:
                walk(child, prefix)

    walk(tree, "")
    return out


def long_functions() -> dict[tuple[str, str], int]:
    """Every function or method of tvm_sched/ longer than :data:`MAX_LINES` lines without its
    docstring (issue 19 item 1)."""
    out = {}
    for p in ROOT.rglob("*.py"):
        out.update(_long_in(ast.parse(p.read_text()), p.relative_to(ROOT).as_posix()))
    return out


def test_no_function_is_longer_than_80_lines():
    found = long_functions()
    assert sorted(set(found) - LONG_ALLOWED) == [], found
    assert sorted(LONG_ALLOWED - set(found)) == [], "short now: drop from LONG_ALLOWED"


def test_the_length_check_counts_methods_and_nested_functions_without_docstrings():
    body = "".join(f"        x{i} = {i}\n" for i in range(4))
    src = ("class C:\n    def m(self):\n        \"\"\"Doc\n\n        more.\"\"\"\n"
           "        def inner():\n" + body.replace("        ", "            ") + body +
           "def f():\n" + body.replace("        ", "    ") + "    if 1:\n" +
           body.replace("        ", "        "))
    found = _long_in(ast.parse(src), "x.py", limit=4)
    # C.m: 1 def + 5 inner + 4 = 10 lines without its 3-line docstring; inner: 5; f: 10
    assert found == {("x.py", "C.m"): 10, ("x.py", "C.m.inner"): 5, ("x.py", "f"): 10}
    assert _long_in(ast.parse(src), "x.py", limit=10) == {}


def test_tune_has_one_output_check_and_one_spread_over_devices():
    """The measuring paths share tune/measure.py: no other module of tune/ compares outputs or
    runs devices in a thread pool of its own (a one-thread pool per device call is fine)."""
    tune = ROOT / "tune"
    for p in tune.rglob("*.py"):
        if p.name == "measure.py":
            continue
        text = p.read_text()
        assert "np.abs(" not in text, p
        for m in re.finditer(r"ThreadPoolExecutor\(([^,)]*)", text):
            assert m.group(1).strip() == "1", (p, m.group(0))


def _interleaved_loops(tree: ast.AST) -> list[int]:
    """Lines of the interleaved-rounds loops in ``tree``: a ``for`` over ``range(...)`` of
    something named like ``repeats`` whose body loops again (over the candidates)."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, (ast.For, ast.AsyncFor)) and isinstance(node.iter, ast.Call)
                and isinstance(node.iter.func, ast.Name) and node.iter.func.id == "range"):
            continue
        names = {n.id if isinstance(n, ast.Name) else n.attr for a in node.iter.args
                 for n in ast.walk(a) if isinstance(n, (ast.Name, ast.Attribute))}
        inner = any(isinstance(n, (ast.For, ast.AsyncFor, ast.comprehension))
                    for s in node.body for n in ast.walk(s))
        if inner and any("repeat" in n.lower() for n in names):
            found.append(node.lineno)
    return found


def measuring_modules() -> dict[str, list[int]]:
    """Path under tvm_sched/ -> lines of every interleaved-rounds loop (issue 19 item 1)."""
    out = {}
    for p in (ROOT / "tune").rglob("*.py"):
        lines = _interleaved_loops(ast.parse(p.read_text()))
        if lines:
            out[p.relative_to(ROOT).as_posix()] = lines
    return out


def test_tune_has_one_measurer():
    # issue 19 item 1: Measurer and LaneRunner each ran the interleaved rounds; one runner
    # (tune.runner.InterleavedRunner) runs them now, the kinds only load, run and time
    found = measuring_modules()
    assert list(found) == ["tune/runner.py"] and len(found["tune/runner.py"]) == 1, found


def test_the_measurer_check_would_catch_a_copy():
    # the old lane runner's rounds, the old VM-order measurer's, and a comprehension variant
    copies = ("for _ in range(self.repeats):\n    for c, fn, res in runs:\n        fn(number)\n",
              "def f(m, loaded, d):\n    for _ in range(m.repeats):\n"
              "        for idx, vm, meas in loaded:\n            meas.samples.append(d.time(vm))\n",
              "def f(repeat, xs):\n    for r in range(2 * repeat):\n"
              "        samples = [time(x) for x in xs]\n")
    for src in copies:
        assert _interleaved_loops(ast.parse(src)), src
    # not the rounds: a profile run per repeat (no loop inside) and a loop over other counts
    for src in ("for _ in range(repeat):\n    self.call(one_run)\n",
                "for i in range(n):\n    for j in range(i):\n        pass\n"):
        assert not _interleaved_loops(ast.parse(src)), src
