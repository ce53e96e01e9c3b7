"""Build candidate orders: the TIR kernels once per model and target, per candidate only the VM.

A binding order changes the Relax VM bytecode (which kernel is called when, which storage is
reused) but not the kernels. So :class:`Builder` lowers the module once in its own order and
builds its TIR functions into one kernel library; a candidate then costs the Relax pipeline on
the reordered module, VM code generation and a link without TIR (``relax.ExecBuilder``,
``vm_build._vmcodegen``, ``VMLink`` with no library: tens of milliseconds). The executable is
bytecode and constants only; the runner imports the kernel library into it on the device.

The fast path leans on ``tvm.relax.vm_build``'s internal helpers (``_vmcodegen``, ``_filter_tir``,
``_extract_attrs``, ``_ffi_api.VMLink``), which are not public API. If they are missing, if a
candidate's lowered kernels differ from the library's (checked by structural hash), or if the
module carries external libraries, the builder falls back to a full ``tvm.compile`` and says so
once in the log.

:class:`OrderBuilder` is the builder :func:`tvm_sched.tune.objective.search` takes (it implements
:class:`~tvm_sched.tune.candidate.CandidateBuilder`, as the lane path's
:class:`~tvm_sched.tune.lanes.LaneBuilder` does): it builds a candidate's orders and keeps each
:class:`Built` by candidate hash, for the records. (:class:`Builder` is the model's builder,
not that role; the name is kept for the callers of ``tvm_sched.tune.Builder``.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import tvm
import tvm_ffi
from tvm import relax

from tvm_sched.errors import one_line
from tvm_sched.relax.arena import PlanArena, arena_pipeline, planned_storage
from tvm_sched.relax.reorder import apply
from tvm_sched.tune.candidate import CandidateBuilder, OrderCandidate
from tvm_sched.tune.model import TuneModel

__all__ = ["Builder", "Built", "OrderBuilder"]

log = logging.getLogger(__name__)


@dataclass
class Built:
    """A built candidate: a VM executable (bytecode only when ``needs_kernels``) or an error."""

    executable: Any | None
    needs_kernels: bool
    seconds: float
    error: str | None = None
    #: The reordered Relax module it was built from (None when the order was rejected).
    module: tvm.IRModule | None = None
    #: Bytes of storage the executable allocates for intermediates (``alloc_storage`` sizes).
    allocated_bytes: int | None = None


def _module_attrs(mod: tvm.IRModule):
    """External libraries and named constants a lowered module carries (as ``relax.build``
    reads them from the module's attributes)."""
    attrs = dict(mod.attrs) if mod.attrs else {}
    return attrs.get("external_mods", []), attrs.get("const_name_to_constant", {})


def _first_line(err: BaseException) -> str:
    return one_line(err, last=True, with_type=True)


class Builder:
    """Builds :class:`TuneModel` candidates for one target.

    Parameters
    ----------
    model
        The model.
    target
        A ``tvm.target.Target``.
    fast
        Use the kernels-once fast path when possible (``False``: always ``tvm.compile``).
    arena
        Lower with :class:`~tvm_sched.relax.PlanArena` after TVM's memory planner (one arena
        with offsets; the kernels are the same), as the ``tvm_sched`` pipeline does.
    """

    def __init__(self, model: TuneModel, target: tvm.target.Target, *, fast: bool = True,
                 arena: bool = True):
        self.model = model
        self.target = target
        self.fast = fast
        self.arena = arena
        self.kernels: tvm.runtime.Module | None = None
        self.kernel_seconds = 0.0
        self.fallbacks = 0
        self._kernel_hash: int | None = None
        self._warned = False
        self._internals = None
        if fast:
            try:
                from tvm.relax import vm_build

                self._internals = (vm_build._vmcodegen, vm_build._filter_tir,
                                   _module_attrs, vm_build._ffi_api.VMLink)
            except AttributeError as err:
                self._fallback_note(f"TVM's VM build internals are missing ({err})")

    # -- helpers -----------------------------------------------------------------------------
    def _fallback_note(self, why: str, *, stop: bool = True) -> None:
        if stop:
            self.fast = False
        if not self._warned:
            log.warning("building candidates with full tvm.compile: %s", why)
            self._warned = True

    def _pipeline(self):
        if self.arena:
            return arena_pipeline(PlanArena())
        is_gpu = "gpu" in self.target.keys
        if is_gpu:
            try:
                return relax.get_default_pipeline(self.target)
            except (ValueError, AttributeError):
                pass
        return relax.get_pipeline("default")

    def _lower(self, mod: tvm.IRModule) -> tvm.IRModule:
        with self.target:
            return self._pipeline()(mod)

    def module(self, orders) -> tvm.IRModule:
        """The fused module rewritten into ``orders`` (one order per graph).

        Parameters
        ----------
        orders
            One binding order per operator graph of the model, in the model's graph order.

        Returns
        -------
        tvm.IRModule
            The reordered Relax module (not lowered).

        Raises
        ------
        ValueError
            When the number of orders differs from the number of graphs.
        InvalidScheduleError
            When an order is not a topological order of its graph.
        ExtractionError
            When a graph no longer matches the model's module.
        """
        return apply(self.model.mod, list(zip(self.model.graphs, orders, strict=True)))

    # -- building ----------------------------------------------------------------------------
    def build_kernels(self) -> None:
        """Build the kernel library from the module's own order (once)."""
        if not self.fast or self.kernels is not None:
            return
        t0 = time.perf_counter()
        _, filter_tir, extract_attrs, _ = self._internals
        low = self._lower(self.model.mod)
        ext_libs, _ = extract_attrs(low)
        tir = filter_tir(low)
        if ext_libs or tir is None:
            self._fallback_note("the module has external libraries or no TIR kernels")
            return
        self._kernel_hash = tvm_ffi.structural_hash(tir)
        self.kernels = tvm.tirx.build(tir, target=self.target)
        self.kernel_seconds = time.perf_counter() - t0
        log.info("built %d kernels in %.2f s", len(tir.get_global_vars()), self.kernel_seconds)

    def build(self, orders) -> Built:
        """Build one candidate; errors come back in :attr:`Built.error`, never raised.

        Parameters
        ----------
        orders
            One binding order per operator graph (as for :meth:`module`).

        Returns
        -------
        Built
            The executable (bytecode only, ``needs_kernels``, on the fast path), the build's
            seconds and the bytes it allocates; or ``executable=None`` and the error's first
            line.
        """
        t0 = time.perf_counter()
        try:
            mod = self.module(orders)
        except Exception as err:  # noqa: BLE001 - an invalid order is a recorded failure
            return Built(None, False, time.perf_counter() - t0, _first_line(err))
        if self.fast:
            self.build_kernels()
        if self.fast:
            try:
                exe = self._fast(mod)
            except Exception as err:  # noqa: BLE001
                return Built(None, False, time.perf_counter() - t0, _first_line(err), mod)
            if exe is not None:
                exe, allocated = exe
                return Built(exe, True, time.perf_counter() - t0, module=mod,
                             allocated_bytes=allocated)
        try:
            exe = tvm.compile(mod, self.target, relax_pipeline=self._pipeline())
            with self.target:
                allocated = int(sum(planned_storage(self._pipeline()(mod))))
        except Exception as err:  # noqa: BLE001
            return Built(None, False, time.perf_counter() - t0, _first_line(err), mod)
        self.fallbacks += 1
        return Built(exe, False, time.perf_counter() - t0, module=mod, allocated_bytes=allocated)

    def _fast(self, mod: tvm.IRModule):
        vmcodegen, filter_tir, extract_attrs, vmlink = self._internals
        low = self._lower(mod)
        ext_libs, constants = extract_attrs(low)
        tir = filter_tir(low)
        if ext_libs or tir is None or tvm_ffi.structural_hash(tir) != self._kernel_hash:
            # only this candidate falls back
            self._fallback_note("a candidate's kernels differ from the shared kernel library",
                                stop=False)
            return None
        builder = relax.ExecBuilder()
        vmcodegen(builder, low, "bytecode")
        exe = relax.VMExecutable(vmlink(builder, self.target, None, [], dict(constants)))
        return exe, int(sum(planned_storage(low)))


class OrderBuilder(CandidateBuilder):
    """The VM-order path's :class:`~tvm_sched.tune.candidate.CandidateBuilder` (what
    :func:`~tvm_sched.tune.objective.search` builds with): ``build(c)`` builds ``c.orders`` of
    an :class:`~tvm_sched.tune.candidate.OrderCandidate` with ``builder`` and keeps the
    :class:`Built` in :attr:`built` under ``c.hash`` (a record reads the bytes the executable
    allocates and the build's seconds from it).

    Parameters
    ----------
    builder
        The :class:`Builder` of the model and target.
    """

    def __init__(self, builder: Builder):
        self.builder = builder
        self.built: dict[str, Built] = {}

    def build(self, c: OrderCandidate) -> Built:
        """Build ``c.orders`` and keep the result under ``c.hash``.

        Parameters
        ----------
        c
            The candidate.

        Returns
        -------
        Built
            :meth:`Builder.build`'s result (an error is in it, not raised).
        """
        self.built[c.hash] = b = self.builder.build(c.orders)
        return b
