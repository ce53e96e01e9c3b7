"""Where the benchmark data lives.

The data sets (the Standard Task Graph Set and the ICML'24 random DAGs) are large, licensed
separately and shared between checkouts, so they are read in place and never copied into the
repository. :func:`data_root` finds the folder:

1. the environment variable ``TVM_SCHED_DATA``, when it is set and not empty (it must then name
   an existing folder);
2. otherwise the first existing folder of ``<repo>/../shared/data`` (``<repo>`` is the folder
   that holds the ``tvm_sched`` package), ``<cwd>/../shared/data`` and ``<cwd>/shared/data``.

Nothing here reads a file; the loaders in :mod:`tvm_sched.datasets` do.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV_VAR", "data_root", "stg_root", "icml24_root"]

DATA_ENV_VAR = "TVM_SCHED_DATA"


def _candidate_roots() -> list[Path]:
    """The folders searched, in order, when the environment variable is not set."""
    repo = Path(__file__).resolve().parents[2]
    cwd = Path.cwd()
    return [
        repo.parent / "shared" / "data",
        cwd.parent / "shared" / "data",
        cwd / "shared" / "data",
    ]


def data_root() -> Path:
    """The benchmark data folder.

    Returns
    -------
    Path
        ``$TVM_SCHED_DATA`` when set, else the first existing default location (see the module
        docstring).

    Raises
    ------
    FileNotFoundError
        When ``TVM_SCHED_DATA`` names a missing folder, or when it is not set and none of the
        default locations exists; the message says how to point the package at the data.

    Examples
    --------
    >>> (data_root() / "stg").is_dir()
    True
    """
    env = os.environ.get(DATA_ENV_VAR, "")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(
                f"{DATA_ENV_VAR}={env!r} is not a folder; point it at the benchmark data "
                "folder (the one holding stg/ and icml24_random_dags/)"
            )
        return root
    candidates = _candidate_roots()
    for root in candidates:
        if root.is_dir():
            return root
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"benchmark data folder not found (tried {tried}); set the environment variable "
        f"{DATA_ENV_VAR} to the folder holding stg/ and icml24_random_dags/"
    )


def stg_root() -> Path:
    """The Standard Task Graph Set folder (``<data>/stg``: ``50/``, ``100/``, ``optimal/``)."""
    return data_root() / "stg"


def icml24_root() -> Path:
    """The ICML'24 random DAG folder (``<data>/icml24_random_dags``)."""
    return data_root() / "icml24_random_dags"
