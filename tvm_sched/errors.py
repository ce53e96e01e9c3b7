"""The one exception hierarchy of tvm_sched, and the one way to print an error on one line.

Exceptions are for invalid input and for bugs. Expected outcomes of a search (a time limit hit,
an infeasible model, a failed measurement) come back as data (``SolveResult.status``; the
``error`` field of a tuner record, :class:`tvm_sched.tune.runner.Measurement`), never as
exceptions escaping a loop. :func:`one_line` turns any exception (TVM's carry tracebacks) into
the single line that the command line prints and the records store.
"""

from __future__ import annotations

__all__ = [
    "TvmSchedError",
    "InvalidGraphError",
    "CycleError",
    "InvalidScheduleError",
    "InfeasibleError",
    "SolverError",
    "SolverUnavailableError",
    "UnknownSolverError",
    "DatasetFormatError",
    "ExtractionError",
    "MeasureError",
    "TuneInputError",
    "DeviceUnavailableError",
    "LaneError",
    "LaneInputError",
    "one_line",
]


def one_line(err: BaseException, *, last: bool = False, limit: int = 300,
             with_type: bool = False) -> str:
    r"""``err``'s message as one line of at most ``limit`` characters.

    Parameters
    ----------
    err
        Any exception.
    last
        Keep the last non-empty line instead of the first (TVM's errors from a remote session
        end with the message, after a traceback).
    limit
        Characters kept of that line.
    with_type
        Prefix the exception's class name (``"ValueError: ..."``).

    Examples
    --------
    >>> one_line(ValueError("bad thing\n  at line 3"))
    'bad thing'
    >>> one_line(RuntimeError("Traceback:\n  frame\nTVMError: boom\n"), last=True, with_type=True)
    'RuntimeError: TVMError: boom'
    >>> one_line(KeyError())
    'KeyError'
    """
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = (lines[-1] if last else lines[0])[:limit] if lines else ""
    if with_type:
        return f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text or type(err).__name__


class TvmSchedError(Exception):
    """Base class of every error tvm_sched raises on purpose."""


class InvalidGraphError(TvmSchedError, ValueError):
    """An operator graph is malformed (dangling edge, negative size, duplicate edge, ...)."""


class CycleError(InvalidGraphError):
    """The edges of a graph form a cycle; the message names nodes on it."""

    def __init__(self, message: str, cycle: list[int] | None = None):
        super().__init__(message)
        self.cycle = cycle or []


class InvalidScheduleError(TvmSchedError, ValueError):
    """A schedule does not fit its graph (not a permutation, violated edge, lane overlap)."""


class InfeasibleError(TvmSchedError, ValueError):
    """A problem has no solution under its parameters; the message says which bound is violated."""


class SolverError(TvmSchedError, RuntimeError):
    """A solver broke its contract (claimed a value the exact evaluator does not confirm)."""


class SolverUnavailableError(TvmSchedError, ImportError):
    """A solver needs an optional package that is not installed; the message says how to get it."""


class UnknownSolverError(TvmSchedError, KeyError):
    """No solver is registered under the requested name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DatasetFormatError(TvmSchedError, ValueError):
    """A data file cannot be parsed; the message names the file and the line."""

    def __init__(self, path: str, line: int | None, reason: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


class ExtractionError(TvmSchedError, ValueError):
    """An operator graph cannot be extracted from a Relax module."""


class MeasureError(TvmSchedError, RuntimeError):
    """Measuring candidates on a device failed in a way the tuner cannot record and continue."""


class TuneInputError(TvmSchedError, ValueError):
    """Bad input to the tuner (unknown model, unreadable file, invalid target or address)."""


class DeviceUnavailableError(MeasureError):
    """No device to measure on: a tracker had no free device of the key in time, or a server
    could not be reached (again) after a reconnect; the message says which and where."""


class LaneError(TvmSchedError, RuntimeError):
    """A kernel failed while lanes ran (:mod:`tvm_sched.runtime`); the message names the step,
    its lane and the cause."""


class LaneInputError(TvmSchedError, ValueError):
    """Inputs do not match a lane plan: wrong count, shape or dtype (the message says which)."""
