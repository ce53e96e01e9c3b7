"""GML reader: the ICML'24 random DAGs, checked against an independent scan of the file text."""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest

from tvm_sched.datasets import icml24_graphs, icml24_root, read_gml
from tvm_sched.errors import CycleError, DatasetFormatError
from tvm_sched.testing.data import needs_data

needs_data = needs_data("icml24_random_dags")


def _scan(text: str) -> tuple[dict[int, int], dict[tuple[int, int], int]]:
    """Node id -> parameter and (source, target) -> parameter, read line by line."""
    nodes: dict[int, int] = {}
    edges: dict[tuple[int, int], int] = {}
    block: dict[str, int] = {}
    kind = None
    for line in text.splitlines():
        s = line.strip()
        if s in ("node [", "edge ["):
            kind, block = s.split()[0], {}
        elif s == "]" and kind is not None:
            if kind == "node":
                nodes[block["id"]] = block["parameter"]
            else:
                edges[(block["source"], block["target"])] = block["parameter"]
            kind = None
        elif kind is not None:
            m = re.fullmatch(r"(id|source|target|parameter) (-?\d+)", s)
            if m:
                block[m.group(1)] = int(m.group(2))
    return nodes, edges


@needs_data
def test_rand_graph_1000_1_matches_the_file_text():
    path = icml24_root() / "rand_graph_1000_1.gml"
    text = path.read_text()
    g = read_gml(path)
    assert g.num_nodes == text.count("node [") == 949
    assert g.num_edges == text.count("edge [")
    nodes, edges = _scan(text)
    ids = sorted(nodes)
    assert g.out_bytes.tolist() == [nodes[i] for i in ids]
    assert g.names == tuple(str(i) for i in ids)
    index = {v: i for i, v in enumerate(ids)}
    got = {(int(u), int(v)): int(b) for u, v, b in zip(g.src, g.dst, g.edge_bytes, strict=True)}
    assert got == {(index[u], index[v]): b for (u, v), b in edges.items()}
    assert np.all(g.duration == 1.0) and set(g.ops) == {"task"}
    assert g.meta == {"source": str(path), "format": "gml", "name": "rand_graph_1000_1"}
    # A DAG: a full topological order exists and every edge respects it.
    pos = np.empty(g.num_nodes, dtype=np.int64)
    pos[g.topological_order] = np.arange(g.num_nodes)
    assert np.all(pos[g.src] < pos[g.dst])
    assert not g.program_order_is_topological  # the file's ids are not a program order
    # The data README: about 60% of the node weights and edge sizes are zero.
    assert 0.4 < np.mean(g.out_bytes == 0) < 0.8 and 0.4 < np.mean(g.edge_bytes == 0) < 0.8
    nz = g.edge_bytes[g.edge_bytes > 0]
    assert nz.min() >= 10_000 and nz.max() <= 50_000


@needs_data
def test_the_1000_node_graphs_all_read():
    paths = [p for p in icml24_graphs() if "_1000_" in p.name]
    assert len(paths) == 6
    for path in paths:
        g = read_gml(path)
        assert g.num_nodes == path.read_text().count("node [")
        assert g.meta["name"] == path.stem


@needs_data
def test_icml24_graphs_lists_the_eighteen_files_sorted():
    paths = icml24_graphs()
    assert len(paths) == 18 and paths == sorted(paths)
    assert all(p.suffix == ".gml" for p in paths)


def test_icml24_graphs_of_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        icml24_graphs(tmp_path / "missing")


def _gml(nodes: list[str], edges: list[str], header: str = "directed 1") -> str:
    body = [f"  node [\n    id {n}\n  ]" if " " not in n else f"  node [\n    {n}\n  ]"
            for n in nodes]
    body += [f"  edge [\n    {e}\n  ]" for e in edges]
    return "graph [\n  " + header + "\n" + "\n".join(body) + "\n]\n"


GOOD = _gml(["id 2 parameter 7", "id 0 parameter 0", "id 5 parameter 3"],
            ["source 0 target 2 parameter 0", "source 2 target 5 parameter 12"])


def test_small_graph_renumbers_ids_and_maps_attributes(tmp_path):
    path = tmp_path / "small.gml"
    path.write_text(GOOD)
    g = read_gml(path)
    assert g.num_nodes == 3 and g.names == ("0", "2", "5")
    assert g.out_bytes.tolist() == [0, 7, 3]
    assert g.edges == [(0, 1), (1, 2)] and g.edge_bytes.tolist() == [0, 12]
    assert g.meta["name"] == "small"


def test_networkx_written_file_round_trips(tmp_path):
    d = nx.DiGraph()
    d.add_node(0, parameter=4)
    d.add_node(1, parameter=0)
    d.add_edge(1, 0, parameter=30_000)
    path = tmp_path / "w.gml"
    nx.write_gml(d, path)
    g = read_gml(path)
    assert g.edges == [(1, 0)] and g.edge_bytes.tolist() == [30_000]
    assert g.out_bytes.tolist() == [4, 0]


MALFORMED = [
    # (name, text, expected line or None, words in the reason)
    ("unbalanced", "graph [\n  directed 1\n  node [\n    id 0\n    parameter 1\n", 6, "EOF"),
    ("bad-token", "graph [\n  directed 1\n  node [ id 0 parameter 1 ]\n  @@@\n]\n", 4,
     "cannot tokenize"),
    ("empty", "", None, "no graph"),
    ("undirected", _gml(["id 0 parameter 1"], [], header="directed 0"), None, "undirected"),
    ("multigraph", _gml(["id 0 parameter 1", "id 1 parameter 1"],
                        ["source 0 target 1 parameter 0", "source 0 target 1 parameter 1"],
                        header="directed 1\n  multigraph 1"), None, "multigraph"),
    ("no-node-parameter", _gml(["id 0 parameter 1", "id 1"], []), None, "node 1"),
    ("no-edge-parameter", _gml(["id 0 parameter 1", "id 1 parameter 1"], ["source 0 target 1"]),
     None, "edge 0 -> 1"),
    ("negative-parameter", _gml(["id 0 parameter -4"], []), None, "non-negative"),
    ("fractional-parameter", _gml(["id 0 parameter 1.5"], []), None, "non-negative integer"),
    ("string-parameter", _gml(['id 0 parameter "big"'], []), None, "not a number"),
    ("cycle", _gml(["id 0 parameter 1", "id 1 parameter 1"],
                   ["source 0 target 1 parameter 0", "source 1 target 0 parameter 0"]),
     None, "cycle"),
    ("duplicate-node", _gml(["id 0 parameter 1", "id 0 parameter 2"], []), None, "duplicated"),
    ("dangling-edge", _gml(["id 0 parameter 1"], ["source 0 target 3 parameter 0"]), None,
     "undefined target"),
]


@pytest.mark.parametrize("name, text, line, words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_gml_names_the_file(tmp_path, name, text, line, words):
    path = tmp_path / f"{name}.gml"
    path.write_text(text)
    with pytest.raises(DatasetFormatError) as info:
        read_gml(path)
    err = info.value
    assert err.path == str(path) and str(path) in str(err)
    assert err.line == line, str(err)
    assert words in err.reason, str(err)


def test_parse_errors_chain_the_networkx_cause(tmp_path):
    path = tmp_path / "bad.gml"
    path.write_text("graph [\n  directed 1\n  node [ id 0 ]\n  ]]\n")
    with pytest.raises(DatasetFormatError) as info:
        read_gml(path)
    assert isinstance(info.value.__cause__, nx.NetworkXError)


def test_cycle_chains_the_cycle_error(tmp_path):
    path = tmp_path / "cyc.gml"
    path.write_text(_gml(["id 3 parameter 1", "id 4 parameter 1"],
                         ["source 3 target 4 parameter 0", "source 4 target 3 parameter 0"]))
    with pytest.raises(DatasetFormatError, match="3") as info:
        read_gml(path)
    assert isinstance(info.value.__cause__, CycleError)


def test_non_ascii_file_is_a_format_error(tmp_path):
    path = tmp_path / "bin.gml"
    path.write_bytes(b"graph [\n  directed 1\n  node [ id 0 label \"\xff\xfe\" ]\n]\n")
    with pytest.raises(DatasetFormatError) as info:
        read_gml(path)
    assert str(path) in str(info.value) and info.value.__cause__ is not None


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gml"):
        read_gml(tmp_path / "nope.gml")
