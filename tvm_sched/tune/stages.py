"""The one stage sequence of a tuning run, and its timing -- pure Python.

Contract
--------
Every kind of run (VM orders in :mod:`tvm_sched.tune.tuner`, lane plans in
:mod:`tvm_sched.tune.lanes`) is the same sequence of named stages, :data:`STAGES`: open the
devices, load or compile the kernels, profile them, propose, plan, search (build and measure),
export, report. :func:`run_stages` runs it over a *kind*: an object with one attribute per stage,
a method (called with no arguments; the kind keeps its own state) or, for a stage the kind does
not need, a string that says why (logged, and kept in :attr:`Stages.log`). The kind's ``close``
runs at the end, also after a failure; its ``result`` is what the run returns.

The VM-order kind opens no session before it proposes and builds its kernels in *plan*, after the
proposals met the memory budget (a budget nothing meets fails before any device or build work);
the lane kind proposes after *profile*, since its proxy needs the kernels' durations.

:class:`Stages` holds the run's progress callback and adds the wall-clock seconds of each timed
part under its name (the report's ``seconds``; the names are the ones the reports and benchmarks
have always read: ``connect``, ``compile``, ``build``, ``measure``, ...).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["STAGES", "Stages", "run_stages"]

log = logging.getLogger(__name__)

#: The stages of every run, in order.
STAGES = ("devices", "kernels", "profile", "propose", "plan", "search", "export", "report")


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
        #: One line per stage run or skipped, in order (``"profile: skipped (why)"``).
        self.log: list[str] = []

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


def run_stages(kind: Any, st: Stages) -> Any:
    """Run :data:`STAGES` over ``kind`` (see the module docstring).

    Parameters
    ----------
    kind
        One attribute per stage name: a method, or the reason the kind skips that stage; a
        ``close()`` method and, after the stages, a ``result``.
    st
        The run's :class:`Stages` (its :attr:`~Stages.log` gets a line per stage).

    Returns
    -------
    Any
        ``kind.result``.

    Raises
    ------
    Exception
        What a stage raised (``close`` has run).

    Examples
    --------
    >>> class Kind:
    ...     result = None
    ...     devices = kernels = plan = search = export = report = lambda self: None
    ...     profile = "nothing to profile"
    ...     def propose(self):
    ...         self.result = "proposed"
    ...     def close(self):
    ...         pass
    >>> st = Stages(None)
    >>> run_stages(Kind(), st), st.log[2]
    ('proposed', 'profile: skipped (nothing to profile)')
    """
    try:
        for name in STAGES:
            step = getattr(kind, name)
            if isinstance(step, str):
                st.log.append(f"{name}: skipped ({step})")
                log.info("stage %s skipped: %s", name, step)
                continue
            t0 = time.perf_counter()
            step()
            st.log.append(f"{name}: {time.perf_counter() - t0:.1f} s")
    finally:
        kind.close()
    return kind.result
