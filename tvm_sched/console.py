"""The rich console of the command line (``tvm-sched`` and its sub-commands).

One place decides the width: at least 120 columns when the output is not a terminal, so tables
in logs and CI output are not wrapped.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["console"]


def console() -> Any:
    """A ``rich.console.Console`` (rich is imported on first use)."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=120)
