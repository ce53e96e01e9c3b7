"""What the tuner measures: one candidate type with a kind, and the builder role -- pure Python.

Contract
--------
- :class:`TuneCandidate` is the base of every candidate: a ``name``, a ``source`` (the solver
  or baseline that proposed it), a ``kind`` (one of :data:`CANDIDATE_KINDS`, the kinds
  :class:`~tvm_sched.tune.record.TuneRecord` records) and an identity :attr:`~TuneCandidate.hash`
  (16 hex digits of the SHA-1 of a compact JSON list, :func:`identity_hash`).
  :meth:`~TuneCandidate.record_key` is the database key of its record, the order of
  :attr:`TuneRecord.key <tvm_sched.tune.record.TuneRecord.key>`.
- Its kinds: :class:`OrderCandidate` (VM orders, one per block: ``kind`` ``"vm"`` for TVM's own
  order ``tvm``, else ``"order"``; proposed by :mod:`tvm_sched.tune.candidates`; still
  importable as ``Candidate``) and :class:`LaneCandidate` (the Relax VM ``"vm"``, a lane plan
  ``"lanes"`` or an ``"anchor"``: PyTorch, ONNX Runtime).
- The hashes are the keys of records already written: they hash exactly what they hashed before
  the two classes shared this base (the orders; the lane kind, lanes, order, lane, and an
  anchor's name), so a resumed run finds its records. ``tests/tune/test_candidate.py`` pins them.
- :class:`CandidateBuilder` is the builder role :func:`~tvm_sched.tune.objective.search` takes:
  ``build(candidate)`` returns a :class:`BuiltCandidate` (``error`` and ``seconds``; a failed
  build is a result, never raised). :class:`~tvm_sched.tune.builder.OrderBuilder` and
  :class:`~tvm_sched.tune.lanes.LaneBuilder` implement it. (The role is not called ``Builder``:
  ``tvm_sched.tune.Builder`` is already the VM-order model builder of
  :mod:`tvm_sched.tune.builder`.)

Candidates are mutable dataclasses, not frozen ones: the proposers fill in proxies, aliases,
arena bytes and the baseline flag after a candidate is made (none of which its hash reads).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["CANDIDATE_KINDS", "TuneCandidate", "OrderCandidate", "Candidate", "LaneCandidate",
           "BuiltCandidate", "CandidateBuilder", "identity_hash"]

#: Every candidate kind (as :data:`tvm_sched.tune.record.KINDS`).
CANDIDATE_KINDS = ("vm", "order", "lanes", "anchor")


def identity_hash(parts: Any) -> str:
    """A candidate's identity: 16 hex digits of the SHA-1 of ``parts`` as compact JSON.

    Parameters
    ----------
    parts
        JSON-serialisable values that tell candidates apart.

    Returns
    -------
    str
        The hash.

    Raises
    ------
    TypeError
        ``parts`` is not JSON-serialisable.

    Examples
    --------
    >>> identity_hash([[0, 1, 2], [1, 0]])
    'c52482bd19684f15'
    """
    text = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class TuneCandidate:
    """The base of every candidate; see the module docstring. Subclasses give ``kind`` and
    the parts of :attr:`hash`.

    Parameters
    ----------
    name
        The candidate's name (unique within a run).
    source
        What proposed it (a solver, ``"baseline"``, ``"anchor"``, ``"random"``).
    """

    name: str
    source: str

    @property
    def kind(self) -> str:
        """One of :data:`CANDIDATE_KINDS`."""
        raise NotImplementedError

    def identity(self) -> list:
        """What tells this candidate apart from another of the same model.

        Returns
        -------
        list
            JSON-serialisable parts (:func:`identity_hash`).

        Raises
        ------
        NotImplementedError
            On the base class.
        """
        raise NotImplementedError

    @property
    def hash(self) -> str:
        """The identity hash (:func:`identity_hash` of :meth:`identity`)."""
        return identity_hash(self.identity())

    def record_key(self, model_hash: str, target: str, device_key: str
                   ) -> tuple[str, str, str, str]:
        """The database key of this candidate's record.

        Parameters
        ----------
        model_hash
            The model's hash.
        target
            The full target string.
        device_key
            The device's key.

        Returns
        -------
        tuple
            ``(model_hash, hash, target, device_key)``, as
            :attr:`TuneRecord.key <tvm_sched.tune.record.TuneRecord.key>`.
        """
        return (model_hash, self.hash, target, device_key)


@dataclass
class OrderCandidate(TuneCandidate):
    """A VM-order candidate: one order per block, where it came from and its proxies
    (:mod:`tvm_sched.tune.candidates` proposes them).

    Parameters
    ----------
    name, source
        As :class:`TuneCandidate`.
    orders
        One binding order per operator graph of the model.
    baseline
        Always measured (TVM's order, the topological sorts).
    proxy
        Proxy values by name (``planned``, ``peak``, ``cache_miss``), filled in later.
    aliases
        Other names that produced the same orders (e.g. a TopologicalSort equal to TVM's
        order).
    """

    orders: tuple[tuple[int, ...], ...]
    baseline: bool = False
    proxy: dict[str, float] = field(default_factory=dict)
    #: Other names that produced the same orders (e.g. a TopologicalSort equal to TVM's order).
    aliases: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """``"vm"`` for TVM's own order (the baseline ``tvm``: the anchor of every measured
        batch), ``"order"`` for any other (:class:`~tvm_sched.tune.record.TuneRecord`)."""
        return "vm" if self.baseline and self.name == "tvm" else "order"

    def identity(self) -> list:
        """The orders.

        Returns
        -------
        list
            One list per order.
        """
        return [list(o) for o in self.orders]


#: The VM-order candidate's name before the candidates shared a base.
Candidate = OrderCandidate


@dataclass
class LaneCandidate(TuneCandidate):
    """A lane-path candidate: the Relax VM (``kind="vm"``), a lane schedule (``kind="lanes"``)
    or an anchor that is measured but never picked (``kind="anchor"``: PyTorch, ONNX Runtime;
    :mod:`tvm_sched.tune.anchors`).

    Parameters
    ----------
    name, source
        As :class:`TuneCandidate`.
    kind
        ``"vm"``, ``"lanes"`` or ``"anchor"``.
    lanes
        Lanes of the schedule.
    order, lane
        The schedule's order and lane assignment (``None`` for the VM and the anchors).
    predicted
        Predicted makespan (seconds) on the measured kernel durations.
    arena_bytes
        Arena bytes of the plan (TVM's planned bytes for the VM).
    baseline
        Always measured.
    aliases
        Other names that produced the same schedule.
    """

    kind: str = "lanes"
    lanes: int = 1
    order: tuple[int, ...] | None = None
    lane: tuple[int, ...] | None = None
    #: Predicted makespan (seconds) on the measured kernel durations.
    predicted: float | None = None
    #: Arena bytes of the plan (TVM's planned bytes for the VM).
    arena_bytes: int | None = None
    baseline: bool = False
    aliases: list[str] = field(default_factory=list)

    def identity(self) -> list:
        """The kind, lanes, order and lane; an anchor's name too.

        Returns
        -------
        list
            The parts.
        """
        parts = [self.kind, self.lanes, list(self.order or ()), list(self.lane or ())]
        if self.kind == "anchor":  # PyTorch / ONNX Runtime: told apart by name alone
            parts.append(self.name)
        return parts


@runtime_checkable
class BuiltCandidate(Protocol):
    """What a :class:`CandidateBuilder` returns: the artifact the runner measures (a VM
    executable, an exported lane module), with the build's error and seconds."""

    #: The build's error (first line); ``None`` when it built.
    error: str | None
    #: Seconds the build took.
    seconds: float


@runtime_checkable
class CandidateBuilder(Protocol):
    """The builder role: builds one candidate for the runner (see the module docstring)."""

    def build(self, c: Any) -> BuiltCandidate:
        """Build one candidate; a failure comes back in the result's ``error``.

        Parameters
        ----------
        c
            The candidate (a :class:`TuneCandidate` of the builder's kinds).

        Returns
        -------
        BuiltCandidate
            What the runner measures.
        """
        ...
