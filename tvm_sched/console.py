"""The rich console of the command line (``tvm-sched`` and its sub-commands).

One place decides the width: at least 120 columns when the output is not a terminal, so tables
in logs and CI output are not wrapped.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

__all__ = ["console", "filtered_stderr"]


def console() -> Any:
    """A ``rich.console.Console`` (rich is imported on first use)."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=120)


@contextlib.contextmanager
def filtered_stderr(*patterns: str) -> Iterator[None]:
    """Drop the lines of file descriptor 2 that contain any of ``patterns`` while the block
    runs (TVM's C++ code prints warnings there by the hundred); every other line is written
    out at the end. Without a real fd 2 (captured output) nothing is filtered.

    Parameters
    ----------
    patterns
        Substrings of the lines to drop.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real fd (captured): nothing to filter
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode(errors="replace").splitlines(True)
                    if not any(p in ln for p in patterns)]
            if kept:
                sys.stderr.write("".join(kept))
