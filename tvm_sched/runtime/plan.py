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
- ``view``: a reshape of tensor ``index`` (same bytes, another shape), resolved at plan time;
  with ``offset`` >= 0 (zero-copy concatenation), the bytes from ``offset`` on of an ``arena``
  tensor ``index`` (a slice of it that a step writes in place; the offset is a multiple of
  :data:`ALIGN`); ``-1``: from its first byte.

Steps run ``kernel(*args, *scalars)``: ``args`` are tensor ids (the call's inputs, then its
outputs), ``scalars`` the call's TIR shape variables. ``lanes[k]`` lists step ids in the order
lane ``k`` runs them; ``waits[s]`` lists steps on *other* lanes that must finish before step
``s`` starts: exactly the cross-lane data dependencies not already implied by the lane orders
and the other waits (a transitive reduction).

From JSON only the documented types are read (integers within 64 bits, strings, lists,
objects); anything else raises :class:`~tvm_sched.errors.InvalidScheduleError`.

:meth:`LanePlan.validate` proves a plan from an untrusted source safe to run, and raises
:class:`~tvm_sched.errors.InvalidScheduleError` (or :class:`~tvm_sched.errors.CycleError`)
naming the first problem; engines never see an invalid plan. A plan is immutable, so it is
proven once: a plan that passed remembers it, and validating it again (as the lane module does
with the number of constants it binds) only checks the constant indices. So a plan is
validated once on each side of the wire: where it is made (from a
:class:`~tvm_sched.schedule.Schedule`) and where it is read back (:meth:`LanePlan.from_json`):

- ids in range, known kinds and dtypes, every tensor at most :data:`MAX_TENSOR_BYTES`; every
  step on exactly one lane, waits only on other lanes, no cycle through lanes and waits;
- each parameter index bound by at most one ``param`` tensor and each constant index by at
  most one ``const`` tensor, constant indices non-negative (and below the number of constants,
  when the caller knows it);
- arena tensors aligned and inside the arena, and the arena no larger than its tensors stacked
  (each rounded up to :data:`ALIGN`);
- every ``arena`` or ``extern`` tensor that a step uses or the plan returns is written by
  exactly one step, which happens-before every other step using it -- or, when steps write
  slices of it (views with an offset), the slices they write are disjoint, cover the tensor,
  and each writer happens-before every other step using bytes it writes; no step writes a
  ``param`` or ``const`` tensor;
- two arena tensors whose byte ranges overlap are never live at the same time: every step
  using one happens-before every step writing the other (or the reverse), where views count as
  their base and the plan's outputs are read after every step. Happens-before is
  :meth:`LanePlan.happens_before` (lane orders and waits, transitively closed); only
  overlapping pairs are compared (arena tensors sorted by offset).
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tvm_sched.errors import CycleError, InvalidScheduleError, one_line
from tvm_sched.graph.algorithms import find_cycle, kahn_lists
from tvm_sched.runtime.waits import ancestor_bits, bits_to_matrix

__all__ = ["LanePlan", "TensorSpec", "Step", "FORMAT_NAME", "FORMAT_VERSION", "ALIGN",
           "MAX_TENSOR_BYTES", "dtype_bytes", "numpy_dtype"]

FORMAT_NAME = "tvm_sched.LanePlan"
#: Version this module writes; 2 added views with a byte offset (zero-copy concatenation).
FORMAT_VERSION = 2
#: Versions it reads.
READ_VERSIONS = (1, 2)
#: Byte alignment of arena offsets and of the arena itself.
ALIGN = 64

#: Largest tensor a plan may declare (bytes); also keeps every size far from int64 overflow.
MAX_TENSOR_BYTES = 1 << 40

_KINDS = ("param", "const", "arena", "extern", "view")
_DTYPE_RE = re.compile(r"(?:(bool)|(u?int|b?float)(\d{1,3})(_[a-z0-9]+)?)(?:x(\d{1,5}))?")
_I64 = 1 << 63


def numpy_dtype(dtype: str) -> np.dtype:
    """The numpy dtype of a TVM dtype string, for tensors held in a numpy host arena.

    Parameters
    ----------
    dtype
        A TVM dtype string.

    Returns
    -------
    numpy.dtype
        The numpy dtype with the same name and element size.

    Raises
    ------
    InvalidScheduleError
        ``dtype`` is not a TVM dtype (:func:`dtype_bytes`), or numpy has no dtype of that name
        and size (``float12``).

    Examples
    --------
    >>> numpy_dtype("float32").itemsize
    4
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.itemsize != dtype_bytes(dtype):
        raise InvalidScheduleError(f"dtype {str(dtype)[:40]!r} has no numpy equivalent for "
                                   "the host arena")
    return dt


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a TVM dtype string (``"float32"``, ``"int64"``, ``"bool"``, ...).

    Parameters
    ----------
    dtype
        A TVM dtype string.

    Returns
    -------
    int
        ``ceil(bits / 8)`` times the lanes; 1 for ``bool``.

    Raises
    ------
    InvalidScheduleError
        ``dtype`` is not a TVM scalar or vector dtype (``bool``, ``[u]intN``, ``[b]floatN`` with
        an optional ``_variant`` and ``xLANES``).

    Examples
    --------
    >>> [dtype_bytes(d) for d in ("float32", "bool", "int8x4", "float8_e4m3fn")]
    [4, 1, 4, 1]
    """
    m = _DTYPE_RE.fullmatch(dtype) if isinstance(dtype, str) else None
    if m is None:
        raise InvalidScheduleError(f"unknown dtype {str(dtype)[:40]!r}")
    bits = 8 if m.group(1) else int(m.group(3))
    lanes = int(m.group(5) or 1)
    if bits == 0 or lanes == 0:
        raise InvalidScheduleError(f"unknown dtype {dtype!r}")
    return max(1, (bits * lanes + 7) // 8)


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a plan (see the module docstring for ``kind``)."""

    kind: str
    shape: tuple[int, ...]
    dtype: str
    #: param / const index, or the base tensor of a view; -1 otherwise
    index: int = -1
    #: arena byte offset (a view: byte offset in its base); -1 when not in the arena
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
        """The tensor entry of a plan document (fields at their default are left out).

        Returns
        -------
        dict
            ``kind``, ``shape``, ``dtype`` and, when set, ``index``, ``offset``, ``node``,
            ``field``.
        """
        d: dict[str, Any] = {"kind": self.kind, "shape": list(self.shape), "dtype": self.dtype}
        for k in ("index", "offset", "node"):
            if getattr(self, k) != -1:
                d[k] = getattr(self, k)
        if self.field:
            d["field"] = self.field
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], what: str = "tensor") -> TensorSpec:
        """Read one tensor entry of a plan document.

        Parameters
        ----------
        d
            The entry, as :meth:`to_dict` writes it.
        what
            How error messages name it.

        Returns
        -------
        TensorSpec
            The tensor (not checked against a plan).

        Raises
        ------
        InvalidScheduleError
            A missing field or a field of the wrong type (named with ``what``).
        """
        d = _mapping(d, what)
        return cls(_str(_field(d, "kind", what), f"{what} kind"),
                   _ints(_field(d, "shape", what), f"{what} shape"),
                   _str(_field(d, "dtype", what), f"{what} dtype"),
                   _int(d.get("index", -1), f"{what} index"),
                   _int(d.get("offset", -1), f"{what} offset"),
                   _int(d.get("node", -1), f"{what} node"),
                   _int(d.get("field", 0), f"{what} field"))


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
        """The step entry of a plan document (``scalars`` only when there are some).

        Returns
        -------
        dict
            ``node``, ``name``, ``kernel``, ``args``, ``num_outputs`` and maybe ``scalars``.
        """
        d = {"node": self.node, "name": self.name, "kernel": self.kernel,
             "args": list(self.args), "num_outputs": self.num_outputs}
        if self.scalars:
            d["scalars"] = list(self.scalars)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], what: str = "step") -> Step:
        """Read one step entry of a plan document.

        Parameters
        ----------
        d
            The entry, as :meth:`to_dict` writes it.
        what
            How error messages name it.

        Returns
        -------
        Step
            The step (not checked against a plan).

        Raises
        ------
        InvalidScheduleError
            A missing field or a field of the wrong type (named with ``what``).
        """
        d = _mapping(d, what)
        return cls(_int(_field(d, "node", what), f"{what} node"),
                   _str(_field(d, "name", what), f"{what} name"),
                   _int(_field(d, "kernel", what), f"{what} kernel"),
                   _ints(_field(d, "args", what), f"{what} args"),
                   _ints(d.get("scalars", ()), f"{what} scalars"),
                   _int(d.get("num_outputs", 1), f"{what} num_outputs"))

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

    # -- figures ----------------------------------------------------------------------------
    @property
    def num_lanes(self) -> int:
        return len(self.lanes)

    @property
    def num_waits(self) -> int:
        return sum(len(w) for w in self.waits)

    def with_threads(self, threads_per_lane: int) -> LanePlan:
        """The same plan with another thread count per lane.

        Parameters
        ----------
        threads_per_lane
            TVM CPU threads per lane, at least 1.

        Returns
        -------
        LanePlan
            A copy; ``self`` is unchanged.

        Raises
        ------
        InvalidScheduleError
            ``threads_per_lane`` is below 1.
        """
        if threads_per_lane < 1:
            raise InvalidScheduleError(f"threads_per_lane must be >= 1, got {threads_per_lane}")
        plan = replace(self, threads_per_lane=int(threads_per_lane))
        if getattr(self, "_proven", False):  # nothing validate() checks depends on the count
            object.__setattr__(plan, "_proven", True)
        return plan

    def param_specs(self) -> list[TensorSpec | None]:
        """Per parameter of ``main``, the spec the plan expects (None: unused by the plan).

        Returns
        -------
        list
            ``num_params`` entries, :class:`TensorSpec` or ``None``.
        """
        out: list[TensorSpec | None] = [None] * self.num_params
        for t in self.tensors:
            if t.kind == "param":
                out[t.index] = t
        return out

    def happens_before(self) -> np.ndarray:
        """(S, S) bool: step a finishes before step b starts in every run (lane orders + waits,
        transitively closed).

        Returns
        -------
        numpy.ndarray
            (S, S) bool, ``m[a, b]`` when a happens before b.

        Raises
        ------
        CycleError
            Lane orders and waits form a cycle.
        """
        reach = ancestor_bits(self._step_preds(), self.serial_order())
        return bits_to_matrix(reach, len(self.steps))

    # -- checks -----------------------------------------------------------------------------
    def _step_preds(self) -> list[list[int]]:
        preds: list[list[int]] = [list(w) for w in self.waits]
        for chain in self.lanes:
            for a, b in zip(chain, chain[1:], strict=False):
                preds[b].append(a)
        return preds

    def serial_order(self) -> list[int]:
        """Every step once, in an order that respects the lane orders and the waits (a linear
        extension of :meth:`happens_before`): run on one thread in this order, the plan
        computes what its lanes compute, on the same arena.

        Returns
        -------
        list of int
            Step ids.

        Raises
        ------
        CycleError
            Lane orders and waits form a cycle (the message names its steps).
        """
        preds = self._step_preds()
        out, stuck = kahn_lists(preds)
        if stuck:
            cycle = find_cycle(preds, stuck)
            names = " -> ".join(f"{v} ({self.steps[v].name})" for v in cycle)
            raise CycleError(f"the lane orders and waits form a cycle: steps {names}", cycle)
        return out

    def validate(self, *, num_consts: int | None = None) -> None:
        """Prove the plan safe to run (see the module docstring): ids in range, every step on
        exactly one lane, no cycle, each parameter and constant bound once, every tensor written
        once before it is read, and no two arena tensors sharing bytes while both may be live.

        Parameters
        ----------
        num_consts
            How many constants will be bound (``None``: not known yet; indices are then only
            checked to be non-negative).

        Raises
        ------
        InvalidScheduleError
            The first problem found, named.
        CycleError
            Lane orders and waits form a cycle (the message names its steps).

        Notes
        -----
        The proof is done once per plan: once it passed, a further call checks only the
        constant indices against ``num_consts`` (the one check that depends on the caller).
        """
        if getattr(self, "_proven", False):
            for i, t in enumerate(self.tensors):
                if t.kind == "const":
                    self._check_tensor(i, t, num_consts)
            return
        if self.threads_per_lane < 1:
            raise InvalidScheduleError(
                f"threads_per_lane must be >= 1, got {self.threads_per_lane}")
        if not 0 <= self.num_input <= self.num_params:
            raise InvalidScheduleError(f"num_input {self.num_input} is not in 0..num_params "
                                       f"({self.num_params})")
        if self.arena_bytes < 0 or self.arena_bytes % ALIGN:
            raise InvalidScheduleError(f"arena_bytes {self.arena_bytes} is not a non-negative "
                                       f"multiple of {ALIGN}")
        for i, t in enumerate(self.tensors):
            self._check_tensor(i, t, num_consts)
        self._check_bindings()
        self._check_steps()
        self._check_lanes()
        hb = self.happens_before()  # raises CycleError first
        self._check_memory(hb)
        if self._immutable():  # nothing can change under the proof: remember it
            object.__setattr__(self, "_proven", True)

    def _immutable(self) -> bool:
        """Whether every container of the plan is a tuple (a plan built with lists could be
        changed after it was validated, so its proof is not remembered)."""
        tops = (self.kernels, self.tensors, self.steps, self.lanes, self.waits, self.outputs)
        return (all(isinstance(x, tuple) for x in tops)
                and all(isinstance(x, tuple) for x in self.lanes + self.waits)
                and all(isinstance(t.shape, tuple) for t in self.tensors)
                and all(isinstance(s.args, tuple) and isinstance(s.scalars, tuple)
                        for s in self.steps))

    def _check_tensor(self, i: int, t: TensorSpec, num_consts: int | None) -> None:
        nt = len(self.tensors)
        if t.kind not in _KINDS:
            raise InvalidScheduleError(f"tensor {i} has unknown kind {_short(t.kind)}")
        if any(d < 0 for d in t.shape):
            raise InvalidScheduleError(f"tensor {i} has a negative dimension {t.shape}")
        dtype_bytes(t.dtype)
        if len(t.shape) > 64 or t.nbytes > MAX_TENSOR_BYTES:
            raise InvalidScheduleError(f"tensor {i} ({t.dtype}, {len(t.shape)} dimensions) is "
                                       f"larger than {MAX_TENSOR_BYTES} bytes")
        if t.kind == "param" and not 0 <= t.index < self.num_params:
            raise InvalidScheduleError(f"tensor {i} is parameter {t.index}; main has "
                                       f"{self.num_params}")
        if t.kind == "const" and not 0 <= t.index < (_I64 if num_consts is None else num_consts):
            have = "" if num_consts is None else f"; the module has {num_consts} constants"
            raise InvalidScheduleError(f"tensor {i} is constant {t.index}{have}")
        if t.kind == "view":
            if not 0 <= t.index < nt or self.tensors[t.index].kind == "view":
                raise InvalidScheduleError(f"tensor {i} is a view of {t.index}, which is not "
                                           "a non-view tensor of the plan")
            base = self.tensors[t.index]
            if max(t.offset, 0) + t.nbytes > base.nbytes:
                raise InvalidScheduleError(f"view {i} ({t.nbytes} bytes at byte "
                                           f"{max(t.offset, 0)}) is larger than its base "
                                           f"{t.index} ({base.nbytes})")
            if t.offset >= 0 and (base.kind != "arena" or t.offset % ALIGN):
                raise InvalidScheduleError(f"view {i} at byte {t.offset} of tensor {t.index} is "
                                           f"not an {ALIGN}-byte-aligned slice of an arena "
                                           "tensor")
        if t.kind == "arena":
            if t.offset < 0 or t.offset % ALIGN or t.offset + t.nbytes > self.arena_bytes:
                raise InvalidScheduleError(
                    f"arena tensor {i} at offset {t.offset} ({t.nbytes} bytes) is not an "
                    f"aligned range inside the {self.arena_bytes}-byte arena")

    def _check_bindings(self) -> None:
        """Each parameter and constant index bound by at most one tensor; the arena no larger
        than its tensors stacked."""
        seen: dict[tuple[str, int], int] = {}
        need = 0
        for i, t in enumerate(self.tensors):
            if t.kind in ("param", "const"):
                first = seen.setdefault((t.kind, t.index), i)
                if first != i:
                    what = "parameter" if t.kind == "param" else "constant"
                    raise InvalidScheduleError(f"tensors {first} and {i} are both {what} "
                                               f"{t.index}")
            elif t.kind == "arena":
                need += -(-t.nbytes // ALIGN) * ALIGN
        if self.arena_bytes > need:
            raise InvalidScheduleError(f"arena_bytes {self.arena_bytes} is more than its arena "
                                       f"tensors need stacked ({need} bytes, each rounded up "
                                       f"to {ALIGN})")

    def _check_steps(self) -> None:
        nt, nk = len(self.tensors), len(self.kernels)
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

    def _check_lanes(self) -> None:
        ns = len(self.steps)
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

    def _span(self, a: int) -> tuple[int, int]:
        """Bytes ``[lo, hi)`` of tensor ``a`` inside its base."""
        t = self.tensors[a]
        lo = max(t.offset, 0) if t.kind == "view" else 0
        return lo, lo + t.nbytes

    def _uses(self) -> tuple[list[int], dict[int, set[int]], dict[int, list[int]]]:
        """Per tensor its base (a view's base, else itself); per base the steps that use it
        and the steps that write it (views count as their base)."""
        base = [t.index if t.kind == "view" else i for i, t in enumerate(self.tensors)]
        used: dict[int, set[int]] = {}
        written: dict[int, list[int]] = {}
        for k, st in enumerate(self.steps):
            for a in st.args:
                used.setdefault(base[a], set()).add(k)
            for a in st.outputs:
                lst = written.setdefault(base[a], [])
                if not lst or lst[-1] != k:
                    lst.append(k)
        return base, used, written

    def _check_memory(self, hb: np.ndarray) -> None:
        """Every step-written tensor has one writer that happens-before its other uses (or
        disjoint slice writers covering it, each before the other uses of its bytes), and
        arena tensors that share bytes are never live at the same time."""
        base, used, written = self._uses()
        returned = {base[o] for o in self.outputs}
        writer: dict[int, list[int]] = {}
        spans = self._write_spans(base) if any(
            t.kind == "view" and t.offset >= 0 for t in self.tensors) else {}
        for b in sorted(set(used) | returned):
            t = self.tensors[b]
            ws = written.get(b, [])
            if t.kind in ("param", "const"):
                if ws:
                    raise InvalidScheduleError(f"step {ws[0]} ({self.steps[ws[0]].name}) "
                                               f"writes tensor {b}, a {t.kind}")
                continue
            if not ws:
                raise InvalidScheduleError(f"tensor {b} ({t.kind}) is read but no step writes "
                                           "it")
            writer[b] = ws
            if len(ws) > 1 and b in spans:
                self._check_slices(b, spans[b], used.get(b, ()), hb)
                continue
            if len(ws) > 1:
                raise InvalidScheduleError(f"tensor {b} ({t.kind}) is written by steps {ws[0]} "
                                           f"({self.steps[ws[0]].name}) and {ws[1]} "
                                           f"({self.steps[ws[1]].name})")
            w = ws[0]
            for s in sorted(used.get(b, ())):
                if s != w and not hb[w, s]:
                    raise InvalidScheduleError(
                        f"step {s} ({self.steps[s].name}) reads tensor {b}, which step {w} "
                        f"({self.steps[w].name}) writes, without waiting for it")
        self._check_arena_overlaps(hb, used, returned, writer)

    def _write_spans(self, base: list[int]) -> dict[int, list[tuple[int, int, int]]]:
        """Per base written through slices, ``(step, lo, hi)`` of every write."""
        out: dict[int, list[tuple[int, int, int]]] = {}
        for k, st in enumerate(self.steps):
            for a in st.outputs:
                out.setdefault(base[a], []).append((k, *self._span(a)))
        return {b: w for b, w in out.items() if len({k for k, _, _ in w}) > 1}

    def _check_slices(self, b: int, spans: list[tuple[int, int, int]], users,
                      hb: np.ndarray) -> None:
        """Slices written by several steps: disjoint, covering ``b``, each written before every
        other step that uses bytes of it runs."""
        top = 0
        for k, lo, hi in sorted(spans, key=lambda x: (x[1], x[2])):
            if lo < top:
                prev = next(s for s, plo, phi in spans if plo < hi and lo < phi and s != k)
                raise InvalidScheduleError(f"tensor {b} is written by steps {prev} "
                                           f"({self.steps[prev].name}) and {k} "
                                           f"({self.steps[k].name}) in overlapping bytes")
            if lo > top:
                break
            top = max(top, hi)
        if top < self.tensors[b].nbytes:
            raise InvalidScheduleError(f"tensor {b} is written in slices that leave bytes "
                                       f"[{top}, ...) of its {self.tensors[b].nbytes} unwritten")
        base_of = [t.index if t.kind == "view" else i for i, t in enumerate(self.tensors)]
        for s in sorted(users):
            for a in self.steps[s].args:
                if base_of[a] != b:
                    continue
                lo, hi = self._span(a)
                for w, wlo, whi in spans:
                    if w != s and wlo < hi and lo < whi and not hb[w, s]:
                        raise InvalidScheduleError(
                            f"step {s} ({self.steps[s].name}) reads tensor {b}, whose bytes "
                            f"[{wlo}, {whi}) step {w} ({self.steps[w].name}) writes, without "
                            "waiting for it")

    def _check_arena_overlaps(self, hb: np.ndarray, used: dict[int, set[int]],
                              returned: set[int], writer: dict[int, list[int]]) -> None:
        """Arena tensors ``a``, ``b`` whose byte ranges overlap: every use of one must happen
        before each of the other's writers (which happen before that one's uses). Only pairs
        that overlap are compared (sorted by offset)."""
        ids = sorted((i for i in writer if self.tensors[i].kind == "arena"
                      and self.tensors[i].nbytes > 0), key=lambda i: self.tensors[i].offset)
        if len(ids) < 2:
            return
        off = np.array([self.tensors[i].offset for i in ids], dtype=np.int64)
        end = off + np.array([self.tensors[i].nbytes for i in ids], dtype=np.int64)
        w = np.array([writer[i][0] for i in ids], dtype=np.int64)
        # done[p, s]: every use of tensor ids[p] happens before step s (never, if returned)
        done = np.ones((len(ids), len(self.steps)), dtype=bool)
        for p, i in enumerate(ids):
            if i in returned:
                done[p] = False
            for s in used.get(i, ()):
                done[p] &= hb[s]
        multi = {p: writer[i] for p, i in enumerate(ids) if len(writer[i]) > 1}

        def before(ps: np.ndarray, qs: np.ndarray) -> np.ndarray:
            """Per pair, every use of ids[ps] happens before every writer of ids[qs]."""
            out = done[ps, w[qs]]
            for k, q in enumerate(qs.tolist()):
                if q in multi:
                    out[k] = done[ps[k], multi[q]].all()
            return out

        last = np.searchsorted(off, end, side="left")
        for p in range(len(ids)):
            q = np.arange(p + 1, last[p])
            if not q.size:
                continue
            pp = np.full(q.size, p)
            ok = before(pp, q) | before(q, pp)
            if not ok.all():
                self._overlap_error(ids[p], ids[int(q[np.argmin(ok)])], hb, used, returned,
                                    writer)

    def _overlap_error(self, a: int, b: int, hb, used, returned, writer) -> None:
        ta, tb = self.tensors[a], self.tensors[b]
        lo, hi = max(ta.offset, tb.offset), min(ta.offset + ta.nbytes, tb.offset + tb.nbytes)

        def blocker(x: int, y: int) -> str:
            wy = next((w for w in writer[y] if not all(hb[s, w] for s in used.get(x, ()))),
                      writer[y][0])
            late = [s for s in sorted(used.get(x, ())) if not hb[s, wy]]
            who = f"step {late[0]} ({self.steps[late[0]].name})" if late else "the plan's outputs"
            return (f"{who} uses tensor {x} without happening before step {wy} "
                    f"({self.steps[wy].name}), which writes tensor {y}")

        raise InvalidScheduleError(
            f"arena tensors {a} and {b} share bytes [{lo}, {hi}) but may be live at the same "
            f"time: {blocker(a, b)}, and {blocker(b, a)}")

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The plan document (JSON-ready: ``meta`` is converted to plain values).

        Returns
        -------
        dict
            Format name and version, then every field of the plan.
        """
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

        Parameters
        ----------
        d
            A document as :meth:`to_dict` writes it.

        Returns
        -------
        LanePlan
            The validated plan.

        Raises
        ------
        InvalidScheduleError
            Not a lane plan, another format version, a malformed field, or an invalid plan.
        CycleError
            Lane orders and waits form a cycle.
        """
        if not isinstance(d, Mapping) or d.get("format") != FORMAT_NAME:
            raise InvalidScheduleError("not a lane plan document (format field missing)")
        if d.get("version") not in READ_VERSIONS or isinstance(d.get("version"), bool):
            raise InvalidScheduleError(f"lane plan format version {_short(d.get('version'))} is "
                                       f"not supported (this tvm_sched reads versions "
                                       f"{READ_VERSIONS})")
        meta = d.get("meta") or {}
        if not isinstance(meta, Mapping):
            raise InvalidScheduleError(f"malformed lane plan document: meta is a "
                                       f"{type(meta).__name__}, not an object")
        plan = cls(
            kernels=tuple(_str(k, f"kernel {i}")
                          for i, k in enumerate(_list(_field(d, "kernels"), "kernels"))),
            tensors=tuple(TensorSpec.from_dict(t, f"tensor {i}")
                          for i, t in enumerate(_list(_field(d, "tensors"), "tensors"))),
            steps=tuple(Step.from_dict(st, f"step {i}")
                        for i, st in enumerate(_list(_field(d, "steps"), "steps"))),
            lanes=tuple(_ints(c, f"lane {i}")
                        for i, c in enumerate(_list(_field(d, "lanes"), "lanes"))),
            waits=tuple(_ints(w, f"waits of step {i}")
                        for i, w in enumerate(_list(_field(d, "waits"), "waits"))),
            outputs=_ints(_field(d, "outputs"), "outputs"),
            num_input=_int(_field(d, "num_input"), "num_input"),
            num_params=_int(_field(d, "num_params"), "num_params"),
            arena_bytes=_int(_field(d, "arena_bytes"), "arena_bytes"),
            threads_per_lane=_int(d.get("threads_per_lane", 1), "threads_per_lane"),
            num_nodes=_int(d.get("num_nodes", 0), "num_nodes"),
            meta=dict(meta),
        )
        plan.validate()
        return plan

    def to_json(self, **kw: Any) -> str:
        """The plan document as JSON text.

        Parameters
        ----------
        **kw
            Options of ``json.dumps`` (``indent``, ...).

        Returns
        -------
        str
            ``json.dumps(self.to_dict(), **kw)``.
        """
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_json(cls, text: str | bytes) -> LanePlan:
        """Read a plan from JSON text (and :meth:`validate` it).

        Parameters
        ----------
        text
            JSON of a plan document.

        Returns
        -------
        LanePlan
            The validated plan.

        Raises
        ------
        InvalidScheduleError
            Not JSON (or nested too deeply, or a number too long to read), or as
            :meth:`from_dict`.
        CycleError
            As :meth:`from_dict`.
        """
        try:
            d = json.loads(text)
        except (ValueError, TypeError, RecursionError) as err:  # JSONDecodeError is a ValueError
            raise InvalidScheduleError(f"lane plan is not valid JSON: "
                                       f"{one_line(err, with_type=True)}") from err
        return cls.from_dict(d)

    def summary(self) -> str:
        """One line: steps, lanes, waits, arena bytes.

        Returns
        -------
        str
            For logs and ``repr``.
        """
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


def _short(x: Any) -> str:
    try:
        return reprlib.repr(x)
    except (ValueError, RecursionError):  # an int of more than 4300 digits, a deep nesting
        return f"a {type(x).__name__}"


def _field(d: Mapping[str, Any], key: str, what: str = "plan") -> Any:
    if key not in d:
        raise InvalidScheduleError(f"malformed lane plan document: {what} has no {key!r}")
    return d[key]


def _mapping(d: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise InvalidScheduleError(f"malformed lane plan document: {what} is a "
                                   f"{type(d).__name__}, not an object")
    return d


def _list(x: Any, what: str) -> Sequence[Any]:
    if isinstance(x, (str, bytes, Mapping)) or not isinstance(x, Sequence):
        raise InvalidScheduleError(f"malformed lane plan document: {what} is a "
                                   f"{type(x).__name__}, not a list")
    return x


def _int(x: Any, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise InvalidScheduleError(f"malformed lane plan document: {what} is "
                                   f"{_short(x)}, not an integer")
    if not -_I64 <= int(x) < _I64:
        raise InvalidScheduleError(f"malformed lane plan document: {what} does not fit in 64 "
                                   "bits")
    return int(x)


def _ints(x: Any, what: str) -> tuple[int, ...]:
    return tuple(_int(v, f"{what}[{i}]") for i, v in enumerate(_list(x, what)))


def _str(x: Any, what: str) -> str:
    if not isinstance(x, str):
        raise InvalidScheduleError(f"malformed lane plan document: {what} is {_short(x)}, not "
                                   "a string")
    return x
