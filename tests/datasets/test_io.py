"""OpGraph JSON files, suffix dispatch, and locating the data folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tvm_sched.datasets import (
    data_root,
    generate,
    icml24_root,
    load_json,
    paths,
    read_gml,
    read_graph,
    read_stg,
    save_json,
    stg_graphs,
    stg_root,
)
from tvm_sched.datasets import io as dio
from tvm_sched.errors import CycleError, DatasetFormatError, InvalidGraphError
from tvm_sched.graph import OpGraph
from tvm_sched.testing.data import needs_data

STG_TEXT = "3\n0 0 0\n1 2 1 0\n2 3 1 1\n3 4 2 0 1\n4 0 2 2 3\n"
GML_TEXT = """graph [
  directed 1
  node [ id 0 parameter 5 ]
  node [ id 1 parameter 0 ]
  edge [ source 0 target 1 parameter 20000 ]
]
"""


needs_data = needs_data("stg", "50")


def _graphs() -> list[OpGraph]:
    rich = OpGraph(
        4, [(0, 1), (0, 2), (1, 3), (2, 3)],
        duration=[0.5, 1.25, 2.0, 1e-9], out_bytes=[8, 16, 0, 4096], flops=[1.0, 0, 3.5, 0],
        is_output=[False, False, False, True], edge_bytes=[8, 0, 16, 0],
        names=["x", "conv", "relu", "out"], ops=["input", "conv2d", "relu", "add"],
        meta={"model": "m", "block": 0, "nested": {"list": [1, 2]}, "unicode": "é"},
    )
    return [OpGraph(0), OpGraph(1), rich, generate("sbm", 30, seed=5)]


@pytest.mark.parametrize("k", range(4))
def test_json_round_trip_is_equal(tmp_path, k):
    g = _graphs()[k]
    path = save_json(g, tmp_path / "g.json")
    assert path == tmp_path / "g.json"
    back = load_json(path)
    assert back == g and back.meta == g.meta and back.fingerprint == g.fingerprint
    assert back.names == g.names and back.edge_bytes.tolist() == g.edge_bytes.tolist()
    assert read_graph(path) == g


@needs_data
def test_stg_graph_round_trips_through_json(tmp_path):
    g = read_stg(stg_graphs(50)[3])
    assert load_json(save_json(g, tmp_path / "s.json", indent=None)) == g


def test_save_replaces_atomically_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "g.json"
    path.write_text("old")
    os.chmod(path, 0o640)
    g = _graphs()[2]
    save_json(g, path)
    assert load_json(path) == g
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]
    assert (path.stat().st_mode & 0o777) == 0o640  # a replaced file keeps its mode
    assert json.loads(path.read_text())["format"] == "tvm_sched.OpGraph"


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "g.json"
    path.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(dio.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        save_json(_graphs()[2], path)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]


def test_save_into_a_missing_folder_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        save_json(OpGraph(1), tmp_path / "no" / "g.json")


def test_json_syntax_error_carries_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "format": "tvm_sched.OpGraph",\n  "version": 1,,\n}\n')
    with pytest.raises(DatasetFormatError) as info:
        load_json(path)
    assert info.value.line == 3 and str(path) in str(info.value)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


BAD_DOCS = [
    ("not-an-object", [1, 2], InvalidGraphError),
    ("other-format", {"format": "something", "version": 1}, InvalidGraphError),
    ("newer-version", {"format": "tvm_sched.OpGraph", "version": 99}, InvalidGraphError),
    ("missing-edges", {"format": "tvm_sched.OpGraph", "version": 1, "nodes": []},
     InvalidGraphError),
    ("cycle", {"format": "tvm_sched.OpGraph", "version": 1, "nodes": [{}, {}],
               "edges": [[0, 1, 0], [1, 0, 0]]}, CycleError),
    ("dangling", {"format": "tvm_sched.OpGraph", "version": 1, "nodes": [{}],
                  "edges": [[0, 4, 0]]}, InvalidGraphError),
    ("non-integer-endpoint", {"format": "tvm_sched.OpGraph", "version": 1, "nodes": [{}, {}],
                              "edges": [["a", 1, 0]]}, ValueError),
]


@pytest.mark.parametrize("name, doc, cause", BAD_DOCS, ids=[b[0] for b in BAD_DOCS])
def test_invalid_document_is_a_format_error_with_the_cause(tmp_path, name, doc, cause):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DatasetFormatError) as info:
        load_json(path)
    assert info.value.path == str(path) and info.value.line is None
    assert isinstance(info.value.__cause__, cause)


def test_binary_json_is_a_format_error(tmp_path):
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\xfd")
    with pytest.raises(DatasetFormatError, match="not a text file"):
        load_json(path)


def test_read_graph_dispatches_on_the_suffix(tmp_path):
    stg = tmp_path / "g.stg"
    stg.write_text(STG_TEXT)
    gml = tmp_path / "g.gml"
    gml.write_text(GML_TEXT)
    upper = tmp_path / "G.STG"
    upper.write_text(STG_TEXT)
    assert read_graph(stg) == read_stg(stg)
    assert read_graph(str(gml)) == read_gml(gml)
    assert read_graph(upper).fingerprint == read_stg(stg).fingerprint
    assert read_graph(gml).edge_bytes.tolist() == [20000]


@pytest.mark.parametrize("name", ["g.txt", "g", "g.stg.bak"])
def test_unknown_suffix_lists_the_supported_ones(tmp_path, name):
    path = tmp_path / name
    path.write_text(STG_TEXT)
    with pytest.raises(DatasetFormatError) as info:
        read_graph(path)
    assert str(path) in str(info.value)
    for suffix in (".gml", ".json", ".stg"):
        assert suffix in info.value.reason


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "missing.stg"
    with pytest.raises(FileNotFoundError) as info:
        read_graph(path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError):
        load_json(tmp_path / "missing.json")


def test_malformed_file_errors_pass_through_read_graph(tmp_path):
    path = tmp_path / "bad.stg"
    path.write_text("3\n0 0 0\n1 x 1 0\n")
    with pytest.raises(DatasetFormatError) as info:
        read_graph(path)
    assert info.value.line == 3


# ------------------------------------------------------------------ data folder
@needs_data
def test_data_root_defaults_to_the_shared_folder(monkeypatch):
    if not any(c.is_dir() for c in paths._candidate_roots()):
        # a checkout away from ../shared (its data found through TVM_SCHED_DATA): no default
        # to check; test_no_data_anywhere_says_how_to_fix_it covers the error
        pytest.skip("no data folder beside this checkout or in the working directory")
    monkeypatch.delenv(paths.DATA_ENV_VAR, raising=False)
    root = data_root()
    assert root in paths._candidate_roots() and root.is_dir()
    assert stg_root() == root / "stg" and icml24_root() == root / "icml24_random_dags"
    assert (stg_root() / "optimal").is_dir()


def test_candidate_order_is_repo_then_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    repo = Path(paths.__file__).resolve().parents[2]
    assert paths._candidate_roots() == [
        repo.parent / "shared" / "data",
        tmp_path.parent / "shared" / "data",
        tmp_path / "shared" / "data",
    ]


def test_first_existing_candidate_wins(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.DATA_ENV_VAR, raising=False)
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    monkeypatch.setattr(paths, "_candidate_roots",
                        lambda: [tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert data_root() == tmp_path / "b"


def test_environment_variable_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.DATA_ENV_VAR, str(tmp_path))
    assert data_root() == tmp_path
    assert stg_root() == tmp_path / "stg"


def test_environment_variable_to_a_missing_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.DATA_ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="TVM_SCHED_DATA"):
        data_root()


def test_no_data_anywhere_says_how_to_fix_it(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.DATA_ENV_VAR, raising=False)
    monkeypatch.setattr(paths, "_candidate_roots", lambda: [tmp_path / "x", tmp_path / "y"])
    with pytest.raises(FileNotFoundError, match="set the environment variable TVM_SCHED_DATA"):
        data_root()
    with pytest.raises(FileNotFoundError):
        stg_graphs(50)
