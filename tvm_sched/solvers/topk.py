"""The one top-k container of the solvers: the ``k`` best distinct schedules seen so far.

The sampling loop (:mod:`tvm_sched.solvers.sampling`: ``random``, ``random-list``, ``gumbel``,
``gflownet``), the event-driven decodings (:class:`~tvm_sched.solvers.decoding.EventDecoded`)
and GauS's legal schedules are all kept in a :class:`TopK`. It ranks by ``(value, tier,
arrival)``: ``tier`` 0 for schedules the objective decodes from their order, 1 for schedules with
their own start times and lanes (event-driven decodings, list schedules), so on a tie the
objective's own decoding wins, then the first seen. Two entries are the same schedule when
:func:`~tvm_sched.solvers.base.schedule_key` says so (the solvers' one rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from tvm_sched.schedule import Schedule
from tvm_sched.solvers.base import Candidate, schedule_key

__all__ = ["TopK"]


class TopK:
    """The ``k`` best distinct schedules seen so far, best first (ranked as the module says).

    Each entry has a value, a tier, an arrival number and an optional payload (GauS keeps the
    schedule's steps). A schedule already kept keeps its place; offered again with a lower value
    (never for an exact value), it takes that value.

    Parameters
    ----------
    k
        How many schedules to keep (at least one).

    Examples
    --------
    >>> top = TopK(2)
    >>> top.add_orders(np.array([[0, 1, 2], [1, 0, 2], [0, 1, 2]]), np.array([5.0, 3.0, 5.0]))
    True
    >>> [(c.schedule.order, c.claimed) for c in top.candidates()]
    [((1, 0, 2), 3.0), ((0, 1, 2), 5.0)]
    >>> top.add(Schedule(order=(2, 1, 0)), 4.0), top.values()
    (True, [3.0, 4.0])
    """

    def __init__(self, k: int):
        self.k = max(1, int(k))
        # key -> [value, tier, arrival, schedule, payload]
        self._items: dict[tuple, list] = {}
        self._arrivals = 0

    def __len__(self) -> int:
        return len(self._items)

    def _rank(self, item: list) -> tuple[float, int, int]:
        return item[0], item[1], item[2]

    def _worst(self) -> list | None:
        if len(self._items) < self.k:
            return None
        return max(self._items.values(), key=self._rank)

    def add(self, schedule: Schedule, value: float, *, tier: int = 0, payload: Any = None
            ) -> bool:
        """Offer one schedule.

        Parameters
        ----------
        schedule
            The schedule offered.
        value
            Its value (lower is better).
        tier
            0 when the objective decodes the schedule from its order, 1 when it has its own
            start times and lanes; breaks ties in value.
        payload
            Anything to keep with the schedule (see :attr:`best_payload`).

        Returns
        -------
        bool
            True when it is kept: new and among the ``k`` best, or a kept schedule offered
            with a lower value.
        """
        value = float(value)
        key = schedule_key(schedule)
        have = self._items.get(key)
        if have is not None:
            if value < have[0]:
                have[0], have[3], have[4] = value, schedule, payload
                return True
            return False
        worst = self._worst()
        if worst is not None and (value, tier, self._arrivals) >= self._rank(worst):
            return False
        if worst is not None:
            del self._items[schedule_key(worst[3])]
        self._items[key] = [value, tier, self._arrivals, schedule, payload]
        self._arrivals += 1
        return True

    def add_orders(self, orders: np.ndarray, values: np.ndarray, *, tier: int = 0,
                   info: Callable[[int], Mapping[str, Any]] | None = None) -> bool:
        """Offer a batch of orders (S, n) with their values (S,), the best first (ties: the
        first drawn); ``info(i)`` becomes row ``i``'s ``Schedule.info``.

        Parameters
        ----------
        orders
            (S, n) int, each row an order; a row repeated within the batch is offered once.
        values
            (S,) the rows' values.
        tier
            The tier of every row (see :meth:`add`).
        info
            Maps a row index to that schedule's ``info``; ``None`` for empty ones.

        Returns
        -------
        bool
            True when the best value kept improved.
        """
        before = self.best
        seen: set[bytes] = set()
        for i in np.argsort(values, kind="stable"):
            worst = self._worst()
            if worst is not None and (float(values[i]), tier, self._arrivals) >= self._rank(worst):
                break  # the rest of the batch is no better
            row = orders[i]
            raw = row.tobytes()
            if raw in seen:
                continue
            seen.add(raw)
            self.add(Schedule(order=row, info=dict(info(int(i))) if info else {}),
                     float(values[i]), tier=tier)
        return self.best < before

    def add_all(self, schedules: Iterable[Schedule], values: Iterable[float], *, tier: int = 0
                ) -> bool:
        """Offer schedules in turn.

        Parameters
        ----------
        schedules
            The schedules offered, in order.
        values
            Their values, one per schedule.
        tier
            The tier of every schedule (see :meth:`add`).

        Returns
        -------
        bool
            True when the best value kept improved.

        Raises
        ------
        ValueError
            If ``schedules`` and ``values`` differ in length (the schedules before the
            shorter one ran out have been offered).
        """
        before = self.best
        for s, v in zip(schedules, values, strict=True):
            self.add(s, v, tier=tier)
        return self.best < before

    def _ranked(self) -> list[list]:
        return sorted(self._items.values(), key=self._rank)

    @property
    def best(self) -> float:
        """The best value kept (inf while empty)."""
        return min((it[0] for it in self._items.values()), default=float("inf"))

    @property
    def best_payload(self) -> Any:
        """The payload of the best entry (None while empty)."""
        ranked = self._ranked()
        return ranked[0][4] if ranked else None

    def values(self) -> list[float]:
        """The kept values, best first.

        Returns
        -------
        list[float]
            One value per kept schedule.
        """
        return [it[0] for it in self._ranked()]

    def candidates(self, claim: bool = True) -> list[Candidate]:
        """The kept schedules as candidates, best first.

        Parameters
        ----------
        claim
            Whether each candidate claims its kept value (else its claim is ``None``).

        Returns
        -------
        list[Candidate]
            One candidate per kept schedule.
        """
        return [Candidate(it[3], it[0] if claim else None) for it in self._ranked()]
