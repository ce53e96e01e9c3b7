"""Named, timed stages of a tuning run (both paths) -- pure Python.

Contract
--------
A run is a fixed sequence of named stage functions (the VM orders' in
:mod:`tvm_sched.tune.tuner`: propose, kernels, search, export; the lane plans' in
:mod:`tvm_sched.tune.lanes`: connect, kernels, compile, profile, propose, plan, measure,
export); :class:`Stages` holds the run's progress callback and adds the wall-clock seconds of
each stage under its name (the report's ``seconds``). The two sequences are not one: the VM-order
path proposes before it builds (a memory budget nothing meets fails before any build), the lane
path after it has measured the kernels' durations (its proxy needs them).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

__all__ = ["Stages"]


class Stages:
    """The progress callback and the seconds each named stage took.

    Parameters
    ----------
    progress
        Called as ``progress(stage, done, total, text)``; ``None``: nothing is reported.
    """

    def __init__(self, progress: Callable | None):
        self.prog = progress or (lambda *a: None)
        self.secs: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the time of the ``with`` body to stage ``name`` (also when it raises).

        Parameters
        ----------
        name
            The stage.

        Yields
        ------
        None
            While the stage runs.

        Examples
        --------
        >>> st = Stages(None)
        >>> with st.timed("propose"):
        ...     pass
        >>> list(st.secs)
        ['propose']
        """
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.secs[name] = self.secs.get(name, 0.0) + time.perf_counter() - t0
