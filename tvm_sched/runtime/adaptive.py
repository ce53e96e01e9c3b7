"""Lanes that give way on a loaded machine: run the plan's lanes, its lanes cut into
work-sharing queues, or its steps on one thread, whichever is faster now.

Why
---
A lane plan is fast when its lanes have their cores. When another process holds one of them
(measured: one busy loop at normal priority on one of two cores turned a 1.80x two-lane plan
into 0.81-0.86x of the Relax VM), every cross-lane wait waits for the lane that lost its core,
while one thread alone would simply run on the free core. The load at deployment is not the load
at tuning, so the choice is made while the module runs, from the run times it sees.

How
---
The same plan runs in one of several modes on the same tensors: ``lanes`` (the plan's lanes at
once, each in its order), ``queues`` (with the native engine: the same threads, each lane cut
into the queues of steps its data and bytes order anyway, :mod:`tvm_sched.runtime.queues`, so a
thread whose lane waits -- or whose neighbour lost its core -- takes any ready step) or
``serial`` (every step on one thread, in a topological order of the plan's happens-before
relation, :meth:`~tvm_sched.runtime.plan.LanePlan.serial_order`). Every mode orders at least
the pairs of steps that share bytes as the plan does, so the arena stays safe without being
planned again. Queues can be faster or slower than the plan's strict order on a quiet machine
(taking a ready step early may delay a planned one), so they are a mode, measured like the
others, not a replacement.

:class:`ModeChooser` keeps an exponentially weighted mean of each mode's run time and runs the
fastest; now and then it runs another mode once (the others in turn) to see whether that has
changed (that one sample replaces that mode's stale mean). At first and whenever the machine
changes, every other mode is tried once in consecutive runs (a sweep), so a module settles in as
many runs as it has modes (the current mode's mean restarts from its latest run). Exploring is
frequent at first and after a switch (every 8 runs), rarer while the choice keeps being
confirmed (doubling up to every 512 runs: at most ~0.2% of the runs in a slower mode on a steady
machine), and frequent again as soon as the current mode's mean moves by 20% from what it was at
the last exploration.
"""

from __future__ import annotations

__all__ = ["ModeChooser", "MODES"]

#: The modes of a plan on the native engine, by index (without queues: ``lanes``, ``serial``).
MODES = ("lanes", "queues", "serial")


class ModeChooser:
    """Which mode to run next, from the run times seen (see the module docstring).

    Parameters
    ----------
    modes
        How many modes (at least 2); mode 0 runs first.
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

    def __init__(self, *, modes: int = 2, alpha: float = 0.25, first: int = 8,
                 longest: int = 512, drift: float = 1.2):
        if modes < 2:
            raise ValueError(f"a choice needs at least 2 modes, got {modes}")
        self.alpha = alpha
        self.first = first
        self.longest = longest
        self.drift = drift
        self.mean: list[float | None] = [None] * modes
        self._turn = 0  # which of the other modes the next exploration runs
        self._pending = list(range(1, modes))  # the sweep's modes not tried yet (see the doc)
        self.current = 0
        self.period = first
        self._since = 0
        self._reference: float | None = None  # the current mode's mean at the last exploration
        self.switches = 0
        self.explored = 0

    def next(self) -> int:
        """The mode of the next run.

        Returns
        -------
        int
            The current mode, or another one (the others in turn) when an exploration is due.
        """
        if self._since >= self.period:
            pending = [m for m in self._pending if m != self.current]
            if pending:
                return pending[0]
            n = len(self.mean)
            return (self.current + 1 + self._turn % (n - 1)) % n
        return self.current

    def record(self, mode: int, seconds: float) -> None:
        """Tell the time of a run in ``mode``.

        Parameters
        ----------
        mode
            The mode the run used (as :meth:`next` gave it).
        seconds
            Its wall time.
        """
        if mode == self.current:
            old = self.mean[mode]
            self.mean[mode] = seconds if old is None else old + self.alpha * (seconds - old)
            self._since += 1
            ref, now = self._reference, self.mean[mode]
            if ref is not None and (now > self.drift * ref or now * self.drift < ref):
                self.period = self.first  # the machine changed: look at every mode again,
                self._since = max(self._since, self.period)
                self.mean[mode] = seconds  # against this mode as it runs now
                self._pending = [m for m in range(len(self.mean)) if m != mode]
                self._reference = None
            return
        # an exploration: the other mode's mean is stale by now, the new sample replaces it
        self.mean[mode] = seconds
        self.explored += 1
        self._turn += 1
        self._since = 0
        mine, other = self.mean[self.current], self.mean[mode]
        if mine is not None and other is not None and other < mine:
            self.current = mode
            self.switches += 1
            self.period = self.first
        else:
            self.period = min(self.period * 2, self.longest)
        self._reference = self.mean[self.current]
        self._pending = [m for m in self._pending if m not in (mode, self.current)]
        if self._pending:  # the next mode of the sweep right away
            self._since = self.period
