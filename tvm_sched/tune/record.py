"""Typed tuning records -- pure Python, no TVM.

Contract
--------
- :class:`MeasureResult`: what measuring one candidate gave: latency samples (seconds per run),
  the samples of the anchor measured with it in the same interleaved rounds, the output check,
  or an error. Errors are results, never exceptions.
- :class:`TuneRecord`: one database line, for both tuning paths, keyed by (model hash,
  candidate hash, full target string, device key). ``kind`` says what was measured:

  - ``"vm"``: the anchor of every batch, the Relax VM in TVM's own order (the VM-order path's
    candidate ``tvm``, the lane path's ``relax-vm``);
  - ``"order"``: another operator order in the Relax VM;
  - ``"lanes"``: a lane plan on the lane runtime;
  - ``"anchor"``: another framework on the same device (PyTorch, ONNX Runtime).

  What only one path knows is the record's typed payload, ``facts``: :class:`OrderFacts` for
  the VM-order path (:mod:`tvm_sched.tune.tuner`: ``orders``, one per block, the ``proxy``
  values, the ``planned_bytes`` the executable allocates, build seconds, the proxy's cache
  size), :class:`LaneFacts` for the lane path (:mod:`tvm_sched.tune.lanes`: ``lanes``,
  ``order``, ``lane``, the ``predicted`` makespan, ``arena_bytes``), ``None`` for an anchor.
  :attr:`TuneRecord.lane_facts` and :attr:`TuneRecord.order_facts` give the payload of the
  path a reader expects (empty facts of that type when the record carries none). The
  summaries (:attr:`~TuneRecord.latency`, :attr:`~TuneRecord.anchor`,
  :attr:`~TuneRecord.relative`, :attr:`~TuneRecord.speedup`) are computed from the samples.
- Format :data:`RECORD_FORMAT` (2): :meth:`TuneRecord.to_dict` writes the common fields, the
  payload under ``facts`` (with its ``path``, ``"lanes"`` or ``"order"``) and, for readers of
  the JSON lines, the summaries; :meth:`TuneRecord.from_dict` type-checks every field it reads
  (``TypeError`` names the field; ``ValueError`` for a missing field, an unknown format, kind
  or path) and ignores the written summaries. Format 1 lines -- the payload's fields flat
  beside the common ones -- are read too: a line with ``orders`` is a VM-order record, any
  other (but an anchor) a lane record. The VM-order lines written before the records were
  typed lack ``kind`` (``"vm"`` for the candidate ``tvm``, else ``"order"``) and the anchor's
  samples, whose written summary is then kept as ``anchor_summary``, so a resumed run decides
  as the run that measured them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np

__all__ = ["RECORD_FORMAT", "KINDS", "MeasureResult", "TuneRecord", "LaneFacts", "OrderFacts",
           "latency_stats", "paired_ratio"]

#: Version of :class:`TuneRecord` lines (the database's ``format`` field); 2 nests the payload.
RECORD_FORMAT = 2
#: Versions read.
READ_FORMATS = (1, 2)

#: What a record measured (see the module docstring).
KINDS = ("vm", "order", "lanes", "anchor")


def latency_stats(samples: Sequence[float]) -> dict[str, float] | None:
    """Median, quartiles, extremes and count of latency samples (``None`` for none).

    Parameters
    ----------
    samples
        Seconds per run.

    Returns
    -------
    dict or None
        ``median``, ``q1``, ``q3``, ``min``, ``max`` (seconds) and ``n``; ``None`` without
        samples.

    Examples
    --------
    >>> latency_stats([1.0, 2.0, 3.0, 4.0, 5.0])["q1"], latency_stats([])
    (2.0, None)
    """
    if not samples:
        return None
    a = np.asarray(samples, dtype=float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "min": float(a.min()),
            "max": float(a.max()), "n": int(a.size)}


def paired_ratio(samples: Sequence[float], anchor: Sequence[float]
                 ) -> dict[str, float] | None:
    """Quartiles of ``anchor[i] / samples[i]`` over rounds measured side by side: the speed-up
    over the anchor, robust to drift (each round's pair saw the same machine state).

    Parameters
    ----------
    samples
        The candidate's seconds per round.
    anchor
        The anchor's seconds in the same rounds (the shorter list sets the rounds).

    Returns
    -------
    dict or None
        ``median``, ``q1``, ``q3`` of the ratio and ``n`` rounds; ``None`` without rounds.
    """
    n = min(len(samples), len(anchor))
    if n == 0:
        return None
    r = np.asarray(anchor[:n], float) / np.maximum(np.asarray(samples[:n], float), 1e-12)
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": int(n)}


@dataclass
class MeasureResult:
    """Measuring one candidate: samples (seconds per run) or an error."""

    hash: str
    device: str = ""
    samples: list[float] = field(default_factory=list)
    #: The anchor's samples from the same interleaved rounds.
    anchor: list[float] = field(default_factory=list)
    #: Largest absolute difference of the outputs from the reference (None when not checked).
    check: float | None = None
    error: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _finite_or_none(x: float | None) -> float | None:
    # a check of inf (no reference on the device) is not JSON; the error says why
    return x if x is None or math.isfinite(x) else None


@dataclass
class LaneFacts:
    """The lane path's payload of a record: the plan measured, or the VM it ran against."""

    lanes: int = 1
    order: list[int] | None = None
    lane: list[int] | None = None
    #: Predicted makespan (seconds) on the measured kernel durations.
    predicted: float | None = None
    #: Arena bytes of the plan (TVM's planned bytes for the VM).
    arena_bytes: int | None = None

    path = "lanes"


@dataclass
class OrderFacts:
    """The VM-order path's payload of a record: the orders built and what building gave."""

    #: One order per dataflow block.
    orders: list[list[int]] | None = None
    #: The ranking proxies (``planned``, ``peak``, ``cache_miss`` bytes).
    proxy: dict[str, float] = field(default_factory=dict)
    #: Bytes of storage the built executable allocates (None when the build failed).
    planned_bytes: int | None = None
    #: Cache size of the ``cache_miss`` proxy.
    cache_bytes: int | None = None
    build_s: float | None = None
    #: Built with the kernels-once fast path (bytecode only).
    fast_build: bool | None = None

    path = "order"


_FACTS = {"lanes": LaneFacts, "order": OrderFacts}


@dataclass
class TuneRecord:
    """One database line; see the module docstring."""

    model_hash: str
    order_hash: str
    target: str
    device_key: str
    candidate: str
    source: str
    kind: str
    baseline: bool = False
    samples: list[float] = field(default_factory=list)
    anchor_samples: list[float] = field(default_factory=list)
    check: float | None = None
    error: str | None = None
    device: str = ""
    model: str = ""
    aliases: list[str] = field(default_factory=list)
    #: When the measurement completed (ISO 8601, UTC; empty in lines written without it).
    time: str = ""
    #: What only the record's tuning path knows (see the module docstring).
    facts: LaneFacts | OrderFacts | None = None
    #: The anchor's latency summary of a line that kept no anchor samples (see the module
    #: docstring); None otherwise.
    anchor_summary: dict[str, float] | None = None
    format: int = RECORD_FORMAT

    @property
    def lane_facts(self) -> LaneFacts:
        """The lane payload (empty :class:`LaneFacts` when the record has another or none)."""
        return self.facts if isinstance(self.facts, LaneFacts) else LaneFacts()

    @property
    def order_facts(self) -> OrderFacts:
        """The VM-order payload (empty :class:`OrderFacts` when the record has another or
        none)."""
        return self.facts if isinstance(self.facts, OrderFacts) else OrderFacts()

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model_hash, self.order_hash, self.target, self.device_key)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.samples)

    @property
    def latency(self) -> dict[str, float] | None:
        return latency_stats(self.samples)

    @property
    def anchor(self) -> dict[str, float] | None:
        """The anchor's latency summary in this record's rounds."""
        return latency_stats(self.anchor_samples) or self.anchor_summary

    @property
    def relative(self) -> float | None:
        """Median latency over the anchor's median in the same rounds."""
        lat, anc = self.latency, self.anchor
        return lat["median"] / anc["median"] if lat and anc and anc["median"] > 0 else None

    @property
    def speedup(self) -> dict[str, float] | None:
        """Speed-up over the anchor in the same rounds (quartiles of the paired ratios)."""
        return paired_ratio(self.samples, self.anchor_samples)

    @classmethod
    def make(cls, c, m: MeasureResult, *, model: str, model_hash: str, target: str,
             device_key: str) -> TuneRecord:
        """The record of lane candidate ``c``
        (:class:`~tvm_sched.tune.objective.LaneCandidate`) measured as ``m``.

        Parameters
        ----------
        c
            The lane candidate.
        m
            Its measurement.
        model
            The model's name.
        model_hash
            The model's hash (the records' key).
        target
            The full target string.
        device_key
            The device's key.

        Returns
        -------
        TuneRecord
            The record, stamped with the current time.
        """
        return cls(model_hash, c.hash, target, device_key, c.name, c.source, c.kind,
                   c.baseline, list(m.samples), list(m.anchor), _finite_or_none(m.check),
                   m.error, m.device, model, list(c.aliases), _now(),
                   facts=LaneFacts(c.lanes, None if c.order is None else list(c.order),
                                   None if c.lane is None else list(c.lane), c.predicted,
                                   c.arena_bytes))

    @classmethod
    def make_order(cls, c, m: MeasureResult, *, model: str, model_hash: str, target: str,
                   device_key: str, planned_bytes: int | None, build_s: float,
                   fast_build: bool, cache_bytes: int) -> TuneRecord:
        """The record of VM-order candidate ``c`` (:class:`~tvm_sched.tune.objective.Candidate`)
        measured as ``m``; the build's facts are given.

        Parameters
        ----------
        c
            The VM-order candidate.
        m
            Its measurement.
        model
            The model's name.
        model_hash
            The model's hash (the records' key).
        target
            The full target string.
        device_key
            The device's key.
        planned_bytes
            Bytes the build plans; ``None`` when it did not build.
        build_s
            Seconds the build took.
        fast_build
            Whether the fast build path was used.
        cache_bytes
            Cache size of the cache-miss proxy.

        Returns
        -------
        TuneRecord
            The record, stamped with the current time.
        """
        return cls(model_hash, c.hash, target, device_key, c.name, c.source, c.kind,
                   c.baseline, list(m.samples), list(m.anchor), _finite_or_none(m.check),
                   m.error, m.device, model, list(c.aliases), _now(),
                   facts=OrderFacts([list(o) for o in c.orders], dict(c.proxy), planned_bytes,
                                    cache_bytes, round(build_s, 4), fast_build))

    def to_dict(self) -> dict[str, Any]:
        """The database line of this record.

        Returns
        -------
        dict
            Every field (the payload under ``facts``, with its ``path``), plus the
            ``latency``, ``anchor``, ``relative`` and ``speedup`` summaries.
        """
        d = asdict(self)
        if self.facts is not None:
            d["facts"] = {"path": self.facts.path, **d["facts"]}
        # the summaries travel with the samples, for readers of the JSONL that do not recompute
        d.update(latency=self.latency, anchor=self.anchor, relative=self.relative,
                 speedup=self.speedup)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> TuneRecord:
        """The record of one database line (see the module docstring).

        Parameters
        ----------
        d
            The parsed JSON line.

        Returns
        -------
        TuneRecord
            The record; unknown keys are ignored.

        Raises
        ------
        ValueError
            Not a JSON object, a missing field, an unknown format, kind or payload path.
        TypeError
            A field of the wrong type (the message names it).

        Examples
        --------
        >>> r = TuneRecord.from_dict({"model_hash": "m", "order_hash": "o", "target": "llvm",
        ...                           "device_key": "local", "candidate": "tvm",
        ...                           "source": "baseline", "samples": [1.0, 2.0]})
        >>> r.kind, r.latency["median"], r.facts
        ('vm', 1.5, LaneFacts(lanes=1, order=None, lane=None, predicted=None, arena_bytes=None))
        >>> TuneRecord.from_dict({"format": 1})
        Traceback (most recent call last):
        ...
        ValueError: missing field model_hash
        """
        if not isinstance(d, dict):
            raise ValueError(f"not a JSON object ({type(d).__name__})")
        if d.get("format", RECORD_FORMAT) not in READ_FORMATS:
            raise ValueError(f"format {d.get('format')!r}, expected one of "
                             f"{', '.join(map(str, READ_FORMATS))}")
        for name in _REQUIRED:
            if name not in d:
                raise ValueError(f"missing field {name}")
        for name, ok in _CHECKS.items():
            if name in d and not ok(d[name]):
                raise TypeError(f"field {name} has the wrong type ({d[name]!r:.40})")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["format"] = RECORD_FORMAT
        if "kind" not in d:  # a VM-order line written before the records were typed
            values["kind"] = "vm" if d["candidate"] == "tvm" else "order"
            if "anchor_samples" not in d:
                values["anchor_summary"] = d.get("anchor")
        if values["kind"] not in KINDS:
            raise ValueError(f"unknown kind {values['kind']!r} (one of {', '.join(KINDS)})")
        values["facts"] = _read_facts(d, values["kind"])
        return cls(**values)


def _read_facts(d: dict, kind: str) -> LaneFacts | OrderFacts | None:
    """The payload of a line: nested (format 2) or flat beside the common fields (format 1)."""
    if "facts" in d and d.get("format", RECORD_FORMAT) >= 2:
        nested = d["facts"]
        if nested is None:
            return None
        if not isinstance(nested, dict):
            raise TypeError(f"field facts has the wrong type ({nested!r:.40})")
        path = nested.get("path")
        if path not in _FACTS:
            raise ValueError(f"unknown facts path {path!r} (one of {', '.join(_FACTS)})")
        flat = nested
    elif kind == "anchor":
        return None
    else:
        flat = d
        path = "order" if d.get("orders") is not None else "lanes"
    facts_cls = _FACTS[path]
    names = {f.name for f in fields(facts_cls)}
    for name in names:
        if name in flat and not _CHECKS[name](flat[name]):
            raise TypeError(f"field {name} has the wrong type ({flat[name]!r:.40})")
    return facts_cls(**{k: v for k, v in flat.items() if k in names})


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _stats(v: Any) -> bool:
    return isinstance(v, dict) and all(_number(v.get(k)) for k in ("median", "q1", "q3"))


_REQUIRED = ("model_hash", "order_hash", "target", "device_key", "candidate", "source")

#: The type check of every field a line may carry, the written summaries included.
_CHECKS: dict[str, Callable[[Any], bool]] = {
    **{k: _str for k in (*_REQUIRED, "kind", "device", "model", "time")},
    "baseline": _bool,
    "samples": _list_of(_number),
    "anchor_samples": _list_of(_number),
    "check": _optional(_number),
    "error": _optional(_str),
    "aliases": _list_of(_str),
    "lanes": _int,
    "order": _optional(_list_of(_int)),
    "lane": _optional(_list_of(_int)),
    "predicted": _optional(_number),
    "arena_bytes": _optional(_int),
    "orders": _optional(_list_of(_list_of(_int))),
    "proxy": lambda v: isinstance(v, dict) and all(_number(x) for x in v.values()),
    "planned_bytes": _optional(_int),
    "cache_bytes": _optional(_int),
    "build_s": _optional(_number),
    "fast_build": _optional(_bool),
    "anchor_summary": _optional(_stats),
    "format": _int,
    "latency": _optional(_stats),
    "anchor": _optional(_stats),
    "relative": _optional(_number),
    "speedup": _optional(_stats),
}
