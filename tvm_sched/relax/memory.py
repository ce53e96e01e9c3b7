"""What TVM's static memory planner allocates for a module as ordered.

``planned_bytes`` runs the passes of TVM's default build pipeline up to its memory planner
(``LegalizeOps``, ``RewriteDataflowReshape``, ``ToNonDataflow``, ``RemovePurityChecking``,
``CallTIRRewrite``, ``StaticPlanBlockMemory``) on a copy of the module
and sums the sizes of the ``relax.memory.alloc_storage`` calls -- the storage TVM reserves for
intermediate tensors (function outputs are allocated separately and not counted). No build:
about 10 ms for a small model.
"""

from __future__ import annotations

import tvm
from tvm import relax

__all__ = ["planned_bytes", "plan_memory"]

_PLAN = None


def plan_memory(mod: tvm.IRModule) -> tvm.IRModule:
    """The module after the planning passes (for inspection).

    Parameters
    ----------
    mod
        A fused Relax module (not modified).

    Returns
    -------
    tvm.IRModule
        The module after ``StaticPlanBlockMemory``.
    """
    global _PLAN
    if _PLAN is None:
        _PLAN = tvm.transform.Sequential([
            relax.transform.LegalizeOps(),
            relax.transform.RewriteDataflowReshape(),
            relax.transform.ToNonDataflow(),
            relax.transform.RemovePurityChecking(),
            relax.transform.CallTIRRewrite(),
            relax.transform.StaticPlanBlockMemory(),
        ])
    return _PLAN(mod)


def planned_bytes(mod: tvm.IRModule, func: str = "main") -> int:
    """Bytes of storage TVM's planner allocates in ``mod[func]``.

    Examples are in ``tests/relax``: the number changes with the binding order.

    Parameters
    ----------
    mod
        A fused Relax module (not modified).
    func
        The function whose storage is counted.

    Returns
    -------
    int
        The sum of the ``alloc_storage`` sizes of ``mod[func]`` after planning.
    """
    planned = plan_memory(mod)
    alloc = tvm.ir.Op.get("relax.memory.alloc_storage")
    total = 0

    def visit(expr) -> None:
        nonlocal total
        if isinstance(expr, relax.Call) and expr.op.same_as(alloc):
            shape = expr.args[0]
            size = 1
            for d in shape.values:
                size *= int(d)
            total += size

    relax.analysis.post_order_visit(planned[func].body, visit)
    return total
