"""Benchmark graphs: loaders for STG, GML and OpGraph JSON files, and random DAG generators.

The data sets are read in place from the shared data folder (:func:`data_root`); nothing is
copied into the repository. Loaders return :class:`~tvm_sched.graph.OpGraph` objects and raise
:class:`~tvm_sched.errors.DatasetFormatError` (file and line) on malformed input. Importing this
package is cheap: networkx is imported only when a GML file is read or a graph is generated.

- :func:`read_stg`, :func:`read_stg_optima`, :func:`stg_graphs`: Kasahara's Standard Task Graph
  Set and its published optimal makespans;
- :func:`read_gml`, :func:`icml24_graphs`: the ICML'24 random DAGs (stage-partition benchmark);
- :func:`read_graph`, :func:`load_json`, :func:`save_json`: any supported file, by suffix;
- :func:`generate` and the five families of the GFlowNet scheduling paper.
"""

from tvm_sched.datasets.generators import (
    FAMILIES,
    barabasi_albert,
    erdos_renyi,
    generate,
    layered,
    sbm,
    watts_strogatz,
)
from tvm_sched.datasets.gml import icml24_graphs, read_gml
from tvm_sched.datasets.io import load_json, read_graph, save_json
from tvm_sched.datasets.paths import data_root, icml24_root, stg_root
from tvm_sched.datasets.stg import StgOptimum, read_stg, read_stg_optima, stg_graphs

__all__ = [
    "FAMILIES",
    "StgOptimum",
    "barabasi_albert",
    "data_root",
    "erdos_renyi",
    "generate",
    "icml24_graphs",
    "icml24_root",
    "layered",
    "load_json",
    "read_gml",
    "read_graph",
    "read_stg",
    "read_stg_optima",
    "save_json",
    "sbm",
    "stg_graphs",
    "stg_root",
    "watts_strogatz",
]
