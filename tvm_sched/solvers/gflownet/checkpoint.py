"""Checkpoints: the network's weights with the format version, model config and training record.

A checkpoint is one ``torch.save`` file holding a plain dict::

    {"format": "tvm_sched.gflownet", "version": FORMAT_VERSION, "model": ModelConfig as dict,
     "state_dict": ..., "train": {...the training arguments...}, "progress": {...},
     "optimizer": ... (optional, for resuming)}

It is loaded with ``weights_only=True`` (no pickled code). A file of another format or version, or
whose weights do not fit its config, raises :class:`CheckpointError` naming the file and the
versions, so a stale checkpoint never silently drives the sampler.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from tvm_sched.errors import TvmSchedError
from tvm_sched.solvers.gflownet.model import ModelConfig, PolicyNet

__all__ = ["CheckpointError", "FORMAT", "FORMAT_VERSION", "DEFAULT_CHECKPOINT", "save_checkpoint",
           "load_checkpoint", "read_checkpoint"]

FORMAT = "tvm_sched.gflownet"
#: Bump when features, the network or the environment change meaning.
FORMAT_VERSION = 3
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "default.pt"


class CheckpointError(TvmSchedError, ValueError):
    """A GFlowNet checkpoint is missing, of another format or version, or does not fit."""


def save_checkpoint(path: str | os.PathLike[str], net: PolicyNet, *, train: dict[str, Any],
                    progress: dict[str, Any], optimizer: dict | None = None) -> Path:
    """Write a checkpoint (atomically: a temporary file then a rename).

    Parameters
    ----------
    path
        Where to write; missing parent directories are created.
    net
        The network; its config and weights are saved.
    train
        The training arguments.
    progress
        Where training stands (steps done, losses, ...).
    optimizer
        The optimiser's ``state_dict``, to resume training.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "model": net.cfg.to_dict(),
           "state_dict": net.state_dict(), "train": dict(train), "progress": dict(progress)}
    if optimizer is not None:
        doc["optimizer"] = optimizer
    tmp = path.with_name(path.name + ".tmp")
    torch.save(doc, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's dict, after checking its format and version.

    Parameters
    ----------
    path
        The checkpoint file.

    Returns
    -------
    dict
        Format, version, model config, weights, training record (see the module docstring).

    Raises
    ------
    CheckpointError
        The file is absent or unreadable, or its format or version is not this code's.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"GFlowNet checkpoint {path} does not exist; train one with "
            "`python -m tvm_sched.solvers.gflownet.train --out PATH` and pass "
            "checkpoint=PATH")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"cannot read GFlowNet checkpoint {path}: {err}") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        fmt = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{path} is not a GFlowNet checkpoint (format {fmt!r}, "
                              f"expected {FORMAT!r})")
    if doc.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"GFlowNet checkpoint {path} has format version {doc.get('version')!r}, but this "
            f"code reads version {FORMAT_VERSION}; retrain it with "
            "`python -m tvm_sched.solvers.gflownet.train`")
    return doc


def load_checkpoint(path: str | os.PathLike[str],
                    device: Any = "cpu") -> tuple[PolicyNet, dict[str, Any]]:
    """The network (in eval mode, on ``device``) and the checkpoint's dict.

    Parameters
    ----------
    path
        The checkpoint file.
    device
        Where the network is moved.

    Returns
    -------
    tuple
        ``(net, doc)``: the :class:`PolicyNet` and the dict of :func:`read_checkpoint`.

    Raises
    ------
    CheckpointError
        See :func:`read_checkpoint`; also when the weights do not fit the stored config.
    """
    doc = read_checkpoint(path)
    known = {f.name for f in fields(ModelConfig)}
    cfg_doc = doc.get("model") or {}
    unknown = sorted(set(cfg_doc) - known)
    if unknown:
        raise CheckpointError(f"GFlowNet checkpoint {path} has unknown model options {unknown} "
                              f"(version {doc.get('version')})")
    net = PolicyNet(ModelConfig(**cfg_doc))
    try:
        net.load_state_dict(doc["state_dict"])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"GFlowNet checkpoint {path} does not fit its model config "
                              f"(version {doc.get('version')}): {err}") from err
    net.to(device).eval()
    return net, doc
