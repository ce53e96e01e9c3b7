"""Kernel calls of a built module, for tests of the order a build keeps."""

from __future__ import annotations

__all__ = ["calls_in_order"]


def calls_in_order(calls: list[str], ops: list[str]) -> bool:
    """Whether ``calls`` is ``ops`` with some concatenates left out: zero-copy concatenation
    (the arena pipeline's default) drops the concatenate kernels whose inputs it writes in
    place, and nothing else may differ.

    Parameters
    ----------
    calls
        Kernel names in the order the executable calls them.
    ops
        The kernel names of the graph's nodes in the order that was asked for.

    Returns
    -------
    bool

    Examples
    --------
    >>> calls_in_order(["conv", "relu"], ["conv", "concatenate", "relu"])
    True
    >>> calls_in_order(["relu", "conv"], ["conv", "relu"])
    False
    """
    it = iter(calls)
    pending = next(it, None)
    for op in ops:
        if op == pending:
            pending = next(it, None)
        elif "concatenate" not in op:
            return False
    return pending is None
