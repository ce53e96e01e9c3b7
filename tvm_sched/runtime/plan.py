"""``LanePlan``: what a lane engine runs -- per-lane kernel sequences, cross-lane waits, an arena.

Contract
--------
A plan is device-neutral data: kernel names, tensor shapes and dtypes, where each tensor lives,
the steps (one kernel call each), which lane runs which steps in which order, and the waits.
It is built from a fused Relax module and a :class:`~tvm_sched.schedule.Schedule` over the
nodes of the :class:`~tvm_sched.graph.OpGraph` extracted from ``main``'s dataflow block
(:func:`tvm_sched.runtime.lower.plan_module`), and round-trips through JSON
(:meth:`LanePlan.to_json` / :meth:`LanePlan.from_json`, with a format version).

Tensors (``LanePlan.tensors``; steps refer to them by index):

- ``param``: parameter ``index`` of ``main`` (inputs first, then weights) -- bound at call time;
- ``const``: a constant of the module (``index`` into the module's constants) -- bound at load;
- ``arena``: an intermediate at byte ``offset`` of the one arena (64-byte aligned);
- ``extern``: a tensor allocated on its own (a function output, a tensor the arena leaves out);
- ``view``: a reshape of tensor ``index`` (same bytes, another shape), resolved at plan time.

Steps run ``kernel(*args, *scalars)``: ``args`` are tensor ids (the call's inputs, then its
outputs), ``scalars`` the call's TIR shape variables. ``lanes[k]`` lists step ids in the order
lane ``k`` runs them; ``waits[s]`` lists steps on *other* lanes that must finish before step
``s`` starts: exactly the cross-lane data dependencies not already implied by the lane orders
and the other waits (a transitive reduction).

:meth:`LanePlan.validate` checks a plan from an untrusted source (every step on exactly one
lane, ids in range, no cycle through lanes and waits, arena tensors inside the arena and aligned)
and raises :class:`~tvm_sched.errors.InvalidScheduleError` (or
:class:`~tvm_sched.errors.CycleError`) naming the problem; engines never see an invalid plan.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tvm_sched.errors import CycleError, InvalidScheduleError
from tvm_sched.graph.algorithms import kahn_lists
from tvm_sched.runtime.waits import bits_to_matrix

__all__ = ["LanePlan", "TensorSpec", "Step", "FORMAT_NAME", "FORMAT_VERSION", "ALIGN",
           "dtype_bytes"]

FORMAT_NAME = "tvm_sched.LanePlan"
FORMAT_VERSION = 1
#: Byte alignment of arena offsets and of the arena itself.
ALIGN = 64

_KINDS = ("param", "const", "arena", "extern", "view")


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a TVM dtype string (``"float32"``, ``"int64"``, ``"bool"``, ...)."""
    if dtype == "bool":
        return 1
    digits = "".join(ch for ch in dtype.split("x")[0] if ch.isdigit())
    lanes = int(dtype.split("x")[1]) if "x" in dtype else 1
    if not digits:
        raise InvalidScheduleError(f"unknown dtype {dtype!r}")
    return max(1, int(digits) * lanes // 8)


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a plan (see the module docstring for ``kind``)."""

    kind: str
    shape: tuple[int, ...]
    dtype: str
    #: param / const index, or the base tensor of a view; -1 otherwise
    index: int = -1
    #: arena byte offset; -1 when not in the arena
    offset: int = -1
    #: producing graph node and output field (-1 for params, consts and views)
    node: int = -1
    field: int = 0

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n * dtype_bytes(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "shape": list(self.shape), "dtype": self.dtype}
        for k in ("index", "offset", "node"):
            if getattr(self, k) != -1:
                d[k] = getattr(self, k)
        if self.field:
            d["field"] = self.field
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TensorSpec:
        return cls(str(d["kind"]), tuple(int(x) for x in d["shape"]), str(d["dtype"]),
                   int(d.get("index", -1)), int(d.get("offset", -1)), int(d.get("node", -1)),
                   int(d.get("field", 0)))


@dataclass(frozen=True)
class Step:
    """One kernel call: ``kernels[kernel](*tensors[args], *scalars)`` for graph node ``node``."""

    node: int
    name: str
    kernel: int
    args: tuple[int, ...]
    scalars: tuple[int, ...] = ()
    #: how many of ``args`` are outputs (the last ones)
    num_outputs: int = 1

    def to_dict(self) -> dict[str, Any]:
        d = {"node": self.node, "name": self.name, "kernel": self.kernel,
             "args": list(self.args), "num_outputs": self.num_outputs}
        if self.scalars:
            d["scalars"] = list(self.scalars)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Step:
        return cls(int(d["node"]), str(d["name"]), int(d["kernel"]),
                   tuple(int(a) for a in d["args"]), tuple(int(s) for s in d.get("scalars", ())),
                   int(d.get("num_outputs", 1)))

    @property
    def inputs(self) -> tuple[int, ...]:
        return self.args[:len(self.args) - self.num_outputs]

    @property
    def outputs(self) -> tuple[int, ...]:
        return self.args[len(self.args) - self.num_outputs:]


@dataclass(frozen=True)
class LanePlan:
    """A lane plan; see the module docstring.

    Attributes
    ----------
    kernels
        Kernel (PrimFunc) names; steps refer to them by index.
    tensors
        Every tensor the steps and outputs use.
    steps
        Kernel calls.
    lanes
        Per lane, step ids in execution order.
    waits
        Per step, step ids on other lanes that must finish before it starts.
    outputs
        Tensor ids of ``main``'s (flattened) return value.
    num_input
        How many of ``main``'s parameters are inputs (the rest are weights).
    num_params
        All of ``main``'s parameters.
    arena_bytes
        Size of the arena (a multiple of :data:`ALIGN`).
    threads_per_lane
        TVM CPU threads each lane's kernels use.
    num_nodes
        Nodes of the graph the plan was made from (steps name their node).
    meta
        Provenance and figures (model, schedule, TVM's planned bytes, ...).
    """

    kernels: tuple[str, ...]
    tensors: tuple[TensorSpec, ...]
    steps: tuple[Step, ...]
    lanes: tuple[tuple[int, ...], ...]
    waits: tuple[tuple[int, ...], ...]
    outputs: tuple[int, ...]
    num_input: int
    num_params: int
    arena_bytes: int
    threads_per_lane: int = 1
    num_nodes: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_module(cls, mod, schedule=None, **kwargs) -> LanePlan:
        """The plan of a fused Relax module under a lane schedule (imports TVM); see
        :func:`tvm_sched.runtime.lower.plan_module`."""
        from tvm_sched.runtime.lower import plan_module

        return plan_module(mod, schedule, **kwargs)

    # -- figures ----------------------------------------------------------------------------
    @property
    def num_lanes(self) -> int:
        return len(self.lanes)

    @property
    def num_waits(self) -> int:
        return sum(len(w) for w in self.waits)

    def with_threads(self, threads_per_lane: int) -> LanePlan:
        """The same plan with another thread count per lane."""
        if threads_per_lane < 1:
            raise InvalidScheduleError(f"threads_per_lane must be >= 1, got {threads_per_lane}")
        return replace(self, threads_per_lane=int(threads_per_lane))

    def param_specs(self) -> list[TensorSpec | None]:
        """Per parameter of ``main``, the spec the plan expects (None: unused by the plan)."""
        out: list[TensorSpec | None] = [None] * self.num_params
        for t in self.tensors:
            if t.kind == "param":
                out[t.index] = t
        return out

    def happens_before(self) -> np.ndarray:
        """(S, S) bool: step a finishes before step b starts in every run (lane orders + waits,
        transitively closed)."""
        s = len(self.steps)
        order = self._topological()
        preds = self._step_preds()
        reach = [0] * s
        for v in order:
            r = 0
            for u in preds[v]:
                r |= reach[u] | (1 << u)
            reach[v] = r
        return bits_to_matrix(reach, s)

    # -- checks -----------------------------------------------------------------------------
    def _step_preds(self) -> list[list[int]]:
        preds: list[list[int]] = [list(w) for w in self.waits]
        for chain in self.lanes:
            for a, b in zip(chain, chain[1:], strict=False):
                preds[b].append(a)
        return preds

    def _topological(self) -> list[int]:
        preds = self._step_preds()
        out, stuck = kahn_lists(preds)
        if stuck:
            cycle = _find_cycle(stuck, preds)
            names = " -> ".join(f"{v} ({self.steps[v].name})" for v in cycle)
            raise CycleError(f"the lane orders and waits form a cycle: steps {names}", cycle)
        return out

    def validate(self) -> None:
        """Check the plan's internal consistency (see the module docstring).

        Raises
        ------
        InvalidScheduleError
            The first problem found, named.
        CycleError
            Lane orders and waits form a cycle (the message names its steps).
        """
        nt, ns, nk = len(self.tensors), len(self.steps), len(self.kernels)
        if self.threads_per_lane < 1:
            raise InvalidScheduleError(
                f"threads_per_lane must be >= 1, got {self.threads_per_lane}")
        if self.arena_bytes < 0 or self.arena_bytes % ALIGN:
            raise InvalidScheduleError(f"arena_bytes {self.arena_bytes} is not a non-negative "
                                       f"multiple of {ALIGN}")
        for i, t in enumerate(self.tensors):
            if t.kind not in _KINDS:
                raise InvalidScheduleError(f"tensor {i} has unknown kind {t.kind!r}")
            if any(d < 0 for d in t.shape):
                raise InvalidScheduleError(f"tensor {i} has a negative dimension {t.shape}")
            dtype_bytes(t.dtype)
            if t.kind == "param" and not 0 <= t.index < self.num_params:
                raise InvalidScheduleError(f"tensor {i} is parameter {t.index}; main has "
                                           f"{self.num_params}")
            if t.kind == "view":
                if not 0 <= t.index < nt or self.tensors[t.index].kind == "view":
                    raise InvalidScheduleError(f"tensor {i} is a view of {t.index}, which is not "
                                               "a non-view tensor of the plan")
                if t.nbytes > self.tensors[t.index].nbytes:
                    raise InvalidScheduleError(f"view {i} ({t.nbytes} bytes) is larger than its "
                                               f"base {t.index} ({self.tensors[t.index].nbytes})")
            if t.kind == "arena":
                if t.offset < 0 or t.offset % ALIGN or t.offset + t.nbytes > self.arena_bytes:
                    raise InvalidScheduleError(
                        f"arena tensor {i} at offset {t.offset} ({t.nbytes} bytes) is not an "
                        f"aligned range inside the {self.arena_bytes}-byte arena")
        for k, st in enumerate(self.steps):
            if not 0 <= st.kernel < nk:
                raise InvalidScheduleError(f"step {k} ({st.name}) calls kernel {st.kernel}; the "
                                           f"plan has {nk} kernels")
            if not 1 <= st.num_outputs <= len(st.args):
                raise InvalidScheduleError(f"step {k} ({st.name}) has {st.num_outputs} outputs "
                                           f"among {len(st.args)} arguments")
            for a in st.args:
                if not 0 <= a < nt:
                    raise InvalidScheduleError(f"step {k} ({st.name}) reads tensor {a}; the plan "
                                               f"has {nt} tensors")
        for o in self.outputs:
            if not 0 <= o < nt:
                raise InvalidScheduleError(f"output tensor {o} is not a tensor of the plan")
        if len(self.waits) != ns:
            raise InvalidScheduleError(f"{len(self.waits)} wait lists for {ns} steps")
        lane_of = [-1] * ns
        for ln, chain in enumerate(self.lanes):
            for s in chain:
                if not 0 <= s < ns:
                    raise InvalidScheduleError(f"lane {ln} lists step {s}; the plan has {ns}")
                if lane_of[s] != -1:
                    raise InvalidScheduleError(f"step {s} ({self.steps[s].name}) is on lane "
                                               f"{lane_of[s]} and on lane {ln}")
                lane_of[s] = ln
        for s, ln in enumerate(lane_of):
            if ln == -1:
                raise InvalidScheduleError(f"step {s} ({self.steps[s].name}) is on no lane")
        for s, ws in enumerate(self.waits):
            for w in ws:
                if not 0 <= w < ns:
                    raise InvalidScheduleError(f"step {s} waits for step {w}; the plan has {ns}")
                if lane_of[w] == lane_of[s]:
                    raise InvalidScheduleError(f"step {s} waits for step {w} on its own lane "
                                               f"{lane_of[s]}")
        self._topological()

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "kernels": list(self.kernels),
            "tensors": [t.to_dict() for t in self.tensors],
            "steps": [s.to_dict() for s in self.steps],
            "lanes": [list(c) for c in self.lanes],
            "waits": [list(w) for w in self.waits],
            "outputs": list(self.outputs),
            "num_input": self.num_input,
            "num_params": self.num_params,
            "arena_bytes": self.arena_bytes,
            "threads_per_lane": self.threads_per_lane,
            "num_nodes": self.num_nodes,
            "meta": _jsonable(dict(self.meta)),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LanePlan:
        """Read a plan document (and :meth:`validate` it).

        Raises
        ------
        InvalidScheduleError
            Not a lane plan, another format version, a malformed field, or an invalid plan.
        """
        if not isinstance(d, Mapping) or d.get("format") != FORMAT_NAME:
            raise InvalidScheduleError("not a lane plan document (format field missing)")
        if d.get("version") != FORMAT_VERSION:
            raise InvalidScheduleError(f"lane plan format version {d.get('version')!r} is not "
                                       f"supported (this tvm_sched reads {FORMAT_VERSION})")
        try:
            plan = cls(
                kernels=tuple(str(k) for k in d["kernels"]),
                tensors=tuple(TensorSpec.from_dict(t) for t in d["tensors"]),
                steps=tuple(Step.from_dict(s) for s in d["steps"]),
                lanes=tuple(tuple(int(s) for s in c) for c in d["lanes"]),
                waits=tuple(tuple(int(s) for s in w) for w in d["waits"]),
                outputs=tuple(int(o) for o in d["outputs"]),
                num_input=int(d["num_input"]),
                num_params=int(d["num_params"]),
                arena_bytes=int(d["arena_bytes"]),
                threads_per_lane=int(d.get("threads_per_lane", 1)),
                num_nodes=int(d.get("num_nodes", 0)),
                meta=dict(d.get("meta") or {}),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidScheduleError(f"malformed lane plan document: {err!r}") from err
        plan.validate()
        return plan

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_json(cls, text: str) -> LanePlan:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidScheduleError(f"lane plan is not valid JSON: {err}") from err
        return cls.from_dict(d)

    def summary(self) -> str:
        """One line: steps, lanes, waits, arena bytes."""
        return (f"{len(self.steps)} kernel steps on {self.num_lanes} lane(s) x "
                f"{self.threads_per_lane} thread(s), {self.num_waits} cross-lane waits, "
                f"arena {self.arena_bytes} bytes")


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def _find_cycle(stuck: Sequence[int], preds: Sequence[Sequence[int]]) -> list[int]:
    """A cycle among ``stuck`` nodes (each has a stuck predecessor), in forward order."""
    stuck_set = set(stuck)
    v = stuck[0]
    seen: dict[int, int] = {}
    path: list[int] = []
    while v not in seen:
        seen[v] = len(path)
        path.append(v)
        v = next(u for u in preds[v] if u in stuck_set)
    return list(reversed(path[seen[v]:]))
