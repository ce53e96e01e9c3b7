"""Lanes that give way on a loaded machine: run the plan's lanes, or its steps on one thread,
whichever is faster now.

Why
---
A lane plan is fast when its lanes have their cores. When another process holds one of them
(measured: one busy loop at normal priority on one of two cores turned a 1.80x two-lane plan
into 0.81-0.86x of the Relax VM), every cross-lane wait waits for the lane that lost its core,
while one thread alone would simply run on the free core. The load at deployment is not the load
at tuning, so the choice is made while the module runs, from the run times it sees.

How
---
The same plan runs in one of two modes on the same tensors: ``lanes`` (the plan's lanes at once)
or ``serial`` (every step on one thread, in a topological order of the plan's happens-before
relation, :meth:`~tvm_sched.runtime.plan.LanePlan.serial_order`). The serial order is a
linear extension of happens-before, so every pair of arena tensors that share bytes is still
used one after the other: the arena stays safe without being planned again.

:class:`ModeChooser` keeps an exponentially weighted mean of each mode's run time and runs the
faster; now and then it runs the other mode once to see whether that has changed (that one
sample replaces the other mode's stale mean). Exploring is frequent at first and after a switch
(every 8 runs), rarer while the choice keeps being confirmed (doubling up to every 512 runs: at
most ~0.2% of the runs in the slower mode on a steady machine), and frequent again as soon as
the current mode's mean moves by 20% from what it was at the last exploration.
"""

from __future__ import annotations

__all__ = ["ModeChooser", "MODES"]

#: The modes, by index.
MODES = ("lanes", "serial")


class ModeChooser:
    """Which mode to run next, from the run times seen (see the module docstring).

    Parameters
    ----------
    alpha
        Weight of a new sample in a mode's mean.
    first, longest
        Runs between explorations at first (and after a change) and at most.
    drift
        The current mode's mean growing by this factor since the last exploration starts
        exploring often again.

    Examples
    --------
    >>> ch = ModeChooser()
    >>> for _ in range(40):  # the lanes take 1.0, one thread 1.8: the lanes win
    ...     ch.record(ch.next(), 1.0 if ch.next() == 0 else 1.8)
    >>> MODES[ch.current]
    'lanes'
    """

    def __init__(self, *, alpha: float = 0.25, first: int = 8, longest: int = 512,
                 drift: float = 1.2):
        self.alpha = alpha
        self.first = first
        self.longest = longest
        self.drift = drift
        self.mean: list[float | None] = [None, None]
        self.current = 0
        self.period = first
        self._since = 0
        self._reference: float | None = None  # the current mode's mean at the last exploration
        self.switches = 0
        self.explored = 0

    def next(self) -> int:
        """The mode of the next run (0: lanes, 1: serial).

        Returns
        -------
        int
            The current mode, or the other one when an exploration is due.
        """
        if self._since >= self.period:
            return 1 - self.current
        return self.current

    def record(self, mode: int, seconds: float) -> None:
        """Tell the time of a run in ``mode``.

        Parameters
        ----------
        mode
            The mode the run used (0: lanes, 1: serial).
        seconds
            Its wall time.
        """
        if mode == self.current:
            old = self.mean[mode]
            self.mean[mode] = seconds if old is None else old + self.alpha * (seconds - old)
            self._since += 1
            ref, now = self._reference, self.mean[mode]
            if ref is not None and (now > self.drift * ref or now * self.drift < ref):
                self.period = self.first  # the machine changed: look again soon
                self._since = max(self._since, self.period)
                self._reference = None
            return
        # an exploration: the other mode's mean is stale by now, the new sample replaces it
        self.mean[mode] = seconds
        self.explored += 1
        self._since = 0
        mine, other = self.mean[self.current], self.mean[mode]
        if mine is not None and other is not None and other < mine:
            self.current = mode
            self.switches += 1
            self.period = self.first
        else:
            self.period = min(self.period * 2, self.longest)
        self._reference = self.mean[self.current]
