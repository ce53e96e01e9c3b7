"""STG reader and optimum tables: the shipped data, and malformed files with exact line numbers."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from tvm_sched.datasets import StgOptimum, read_stg, read_stg_optima, stg_graphs
from tvm_sched.errors import CycleError, DatasetFormatError
from tvm_sched.testing.data import needs_data

needs_data = needs_data("stg", "50")

_EDGES_COMMENT = re.compile(r"^#\s*Edges\s*:\s*(\d+)\s*/")


@pytest.fixture(scope="module")
def graphs():
    """Every shipped STG graph, keyed by its meta name ("50/rand0000")."""
    out = {}
    for size in (50, 100):
        for path in stg_graphs(size):
            g = read_stg(path)
            out[g.meta["name"]] = (path, g)
    return out


# ------------------------------------------------------------------ the shipped data
@needs_data
@pytest.mark.parametrize("size", [50, 100])
def test_every_graph_reproduces_its_cp_length_and_edge_count(size, graphs):
    paths = stg_graphs(size)
    assert len(paths) == 120 and paths == sorted(paths)
    bad = []
    for path in paths:
        _, g = graphs[f"{size}/{path.stem}"]
        real_edges = None
        for line in path.read_text().splitlines():
            m = _EDGES_COMMENT.match(line)
            if m:
                real_edges = int(m.group(1))
        if (
            g.num_nodes != size
            or g.critical_path_length != g.meta["cp_length"]
            or g.num_edges != real_edges
            or g.meta["source"] != str(path)
        ):
            bad.append((path.name, g.num_nodes, g.critical_path_length, g.meta, g.num_edges))
    assert bad == []


@needs_data
def test_first_graph_attributes_follow_the_file(graphs):
    path, g = graphs["50/rand0000"]
    assert g.meta == {"source": str(path), "format": "stg", "name": "50/rand0000",
                      "cp_length": 55}
    assert g.names[:3] == ("t1", "t2", "t3") and g.names[-1] == "t50"
    assert set(g.ops) == {"task"}
    assert g.duration[:5].tolist() == [9, 4, 3, 6, 4]  # costs of tasks 1..5
    assert not g.out_bytes.any()
    # "10 2 3 2 6 8": task 10 depends on tasks 2, 6 and 8 -> node 9 on nodes 1, 5, 7.
    assert g.preds(9) == (1, 5, 7)
    # Tasks whose only predecessor is the dummy entry are sources.
    assert g.preds(0) == () and g.in_degree[0] == 0


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


SMALL = ["3", "0 0 0", "1 2 1 0", "2 3 1 1", "3 4 2 0 1", "4 0 2 2 3"]


def test_tasks_may_come_in_any_order_and_comments_anywhere(tmp_path):
    a = tmp_path / "a" / "x.stg"
    b = tmp_path / "b" / "x.stg"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_text(_text(SMALL))
    b.write_text(_text(["# header", "3", "4 0 2 2 3", "2 3 1 1", "# between", "0 0 0", "",
                        "3 4 2 0 1", "1 2 1 0", "# CP Length : 6"]))
    ga, gb = read_stg(a), read_stg(b)
    assert ga.fingerprint == gb.fingerprint
    assert ga.edges == [(0, 1), (0, 2)] and ga.duration.tolist() == [2, 3, 4]
    assert "cp_length" not in ga.meta and gb.meta["cp_length"] == 6 == gb.critical_path_length
    assert gb.meta["name"] == "b/x"


def test_empty_task_set_is_allowed(tmp_path):
    p = tmp_path / "empty.stg"
    p.write_text(_text(["0", "0 0 0", "1 0 1 0"]))
    assert read_stg(p).num_nodes == 0


# ------------------------------------------------------------------ malformed files
MALFORMED = [
    # (name, lines, expected line, words in the reason)
    ("truncated", SMALL[:4], 5, "truncated"),
    ("truncated-with-trailing-comment", [*SMALL[:4], "# CP Length : 3"], 6, "truncated"),
    ("empty", [], 1, "task count"),
    ("only-comments", ["# a", "# b"], 3, "task count"),
    ("non-integer-n", ["3.5", *SMALL[1:]], 1, "not an integer"),
    ("n-with-extra-fields", ["3 4", *SMALL[1:]], 1, "task count"),
    ("negative-n", ["-1"], 1, "negative"),
    ("non-numeric-cost", ["3", "0 0 0", "1 x 1 0", *SMALL[3:]], 3, "not a number"),
    ("non-numeric-pred", ["3", "0 0 0", "1 2 1 0", "2 3 1 one", *SMALL[4:]], 4, "not an integer"),
    ("non-integer-id", ["3", "0 0 0", "1.0 2 1 0", *SMALL[3:]], 3, "not an integer"),
    ("too-few-fields", ["3", "0 0 0", "1 2", *SMALL[3:]], 3, "field"),
    ("npred-too-large", ["3", "0 0 0", "1 2 1 0", "2 3 2 1", *SMALL[4:]], 4, "declares 2"),
    ("npred-too-small", ["3", "0 0 0", "1 2 1 0", "2 3 0 1", *SMALL[4:]], 4, "declares 0"),
    ("pred-out-of-range", ["3", "0 0 0", "1 2 1 0", "2 3 1 9", *SMALL[4:]], 4, "out of range"),
    ("negative-pred", ["3", "0 0 0", "1 2 1 0", "2 3 1 -1", *SMALL[4:]], 4, "out of range"),
    ("id-out-of-range", ["3", "0 0 0", "7 2 1 0", *SMALL[3:]], 3, "out of range"),
    ("duplicate-id", ["3", "0 0 0", "1 2 1 0", "1 3 1 0", *SMALL[4:]], 4, "listed twice"),
    ("duplicate-pred", ["3", "0 0 0", "1 2 1 0", "2 3 2 1 1", *SMALL[4:]], 4, "listed twice"),
    ("negative-cost", ["3", "0 0 0", "1 2 1 0", "2 -3 1 1", *SMALL[4:]], 4, "negative"),
    ("infinite-cost", ["3", "0 0 0", "1 inf 1 0", *SMALL[3:]], 3, "not finite"),
    ("self-loop", ["3", "0 0 0", "1 2 1 0", "2 3 1 2", *SMALL[4:]], 4, "itself"),
    ("cycle", ["3", "0 0 0", "1 2 2 0 3", "2 3 1 1", "3 4 1 2", "4 0 1 3"], 3, "cycle"),
    ("cycle-listed-late", ["3", "0 0 0", "3 4 1 2", "1 2 1 0", "2 3 2 1 3", "4 0 1 3"], 3,
     "cycle"),
    ("dummy-entry-cost", ["3", "0 5 0", *SMALL[2:]], 2, "dummy"),
    ("dummy-exit-cost", [*SMALL[:5], "4 1 2 2 3"], 6, "dummy"),
    ("dummy-entry-with-pred", ["3", "0 0 1 2", *SMALL[2:]], 2, "entry"),
    ("exit-as-pred", ["3", "0 0 0", "1 2 1 4", *SMALL[3:]], 3, "exit"),
    ("trailing-data", [*SMALL, "5 0 0"], 7, "after"),
]


@pytest.mark.parametrize("name, lines, line, words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_stg_names_file_and_line(tmp_path, name, lines, line, words):
    path = tmp_path / f"{name}.stg"
    path.write_text(_text(lines) if lines else "")
    with pytest.raises(DatasetFormatError) as info:
        read_stg(path)
    err = info.value
    assert err.line == line, str(err)
    assert err.path == str(path)
    assert str(err).startswith(f"{path}:{line}: ")
    assert words in err.reason


def test_cycle_error_is_chained_and_names_the_tasks(tmp_path):
    path = tmp_path / "cyc.stg"
    path.write_text(_text(["3", "0 0 0", "1 2 2 0 3", "2 3 1 1", "3 4 1 2", "4 0 1 3"]))
    with pytest.raises(DatasetFormatError) as info:
        read_stg(path)
    assert isinstance(info.value.__cause__, CycleError)
    assert all(t in info.value.reason for t in ("t1", "t2", "t3"))


def test_binary_file_is_a_format_error(tmp_path):
    path = tmp_path / "bin.stg"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetFormatError, match="not a text file"):
        read_stg(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_stg(tmp_path / "nope.stg")


# ------------------------------------------------------------------ optimum tables
@needs_data
def test_every_optimum_row_parses_and_respects_the_trivial_bounds(graphs):
    table = read_stg_optima()
    assert len(table) == 2 * 120 * 4
    assert {m for _, m in table} == {2, 4, 8, 16}
    assert table[("50/rand0000", 2)] == StgOptimum("50/rand0000", 2, 131, 131, True)
    assert table[("100/rand0012", 2)] == StgOptimum("100/rand0012", 2, 296, 312, False)
    too_low = []
    for (name, lanes), opt in table.items():
        assert (opt.graph, opt.lanes) == (name, lanes)
        assert opt.lower < opt.best if not opt.proven else opt.lower == opt.best
        _, g = graphs[name]
        bound = max(math.ceil(g.critical_path_length), math.ceil(g.total_duration / lanes))
        if opt.best < bound or opt.lower < bound:
            too_low.append((name, lanes, opt, bound))
    assert too_low == []
    assert sum(not o.proven for o in table.values()) > 0  # the open 100-task rows


@needs_data
def test_optima_of_one_lane_count_are_monotone(graphs):
    # More processors never make the optimum worse.
    table = read_stg_optima()
    for name in graphs:
        bests = [table[(name, m)].best for m in (2, 4, 8, 16)]
        assert bests == sorted(bests, reverse=True), name


BAD_ROWS = [
    ("two-fields", "50/rand0000.stg,2", "field"),
    ("five-fields", "50/rand0000.stg,2,1,2,3", "field"),
    ("non-integer", "50/rand0000.stg,2,12x", "not an integer"),
    ("lanes-mismatch", "50/rand0000.stg,4,120", "differs"),
    ("zero-lanes", "50/rand0000.stg,0,120", "not positive"),
    ("lower-above-best", "50/rand0000.stg,2,130,120", "exceeds"),
    ("negative", "50/rand0000.stg,2,-1", "negative"),
    ("empty-name", ",2,120", "empty"),
    ("duplicate", "50/rand0001.stg,2,140", "already given"),
]


@pytest.mark.parametrize("name, row, words", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_malformed_optimum_row_names_file_and_line(tmp_path, name, row, words):
    folder = tmp_path / "optimal"
    folder.mkdir()
    path = folder / "Case50_2_OPT.csv"
    path.write_text(f"50/rand0001.stg,2,140\n\n50/rand0002.stg,2,130,135\n{row}\n")
    with pytest.raises(DatasetFormatError) as info:
        read_stg_optima(tmp_path)
    assert info.value.line == 4
    assert str(path) in str(info.value)
    assert words in info.value.reason


def test_optima_from_a_custom_root(tmp_path):
    folder = tmp_path / "optimal"
    folder.mkdir()
    (folder / "Case50_2_OPT.csv").write_text("50/a.stg,2,10\n50/b.stg,2,7,9\n")
    (folder / "Case50_4_OPT.csv").write_text("50/a.stg,4,6\n")
    table = read_stg_optima(tmp_path)
    assert table == {
        ("50/a", 2): StgOptimum("50/a", 2, 10, 10, True),
        ("50/b", 2): StgOptimum("50/b", 2, 7, 9, False),
        ("50/a", 4): StgOptimum("50/a", 4, 6, 6, True),
    }


def test_missing_optimum_tables_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="OPT"):
        read_stg_optima(tmp_path)


def test_stg_graphs_of_a_missing_size_raise_file_not_found(tmp_path):
    (tmp_path / "50").mkdir()
    (tmp_path / "50" / "b.stg").write_text("")
    (tmp_path / "50" / "a.stg").write_text("")
    assert [p.name for p in stg_graphs(50, root=tmp_path)] == ["a.stg", "b.stg"]
    with pytest.raises(FileNotFoundError, match="sizes found: 50"):
        stg_graphs(75, root=tmp_path)


@needs_data
def test_durations_match_the_generator_comments(graphs):
    # "# Min. Proc. Time : 1", "# Max. Proc. Time : 10", "# Ave. Proc. Time : 5.0 (Real : 5.24)"
    bad = []
    for name, (path, g) in graphs.items():
        text = path.read_text()
        info = dict(re.findall(r"^#\s*(M\w+)\. Proc\. Time\s*:\s*(\d+)", text, re.M))
        real = float(re.search(r"Ave\. Proc\. Time.*\(Real : ([\d.]+)\)", text).group(1))
        d = g.duration
        if not (np.all(d == np.round(d)) and int(info["Min"]) <= d.min()
                and d.max() <= int(info["Max"]) and abs(d.mean() - real) < 0.006):
            bad.append((name, info, real, d.min(), d.max(), d.mean()))
    assert bad == []
    assert all(isinstance(p, Path) for p, _ in graphs.values())
