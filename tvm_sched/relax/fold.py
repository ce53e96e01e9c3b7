"""Fold inference BatchNorm into the convolution's weights (issue 22).

Contract
--------
:class:`FoldBatchNormIntoWeights` rewrites ``batch_norm(conv2d(x, w), gamma, beta, mean, var)[0]``
(NCHW data, OIHW weights, BatchNorm over the channel axis, inference mode) into
``conv2d(x, w * s) + t`` with ``s = gamma / sqrt(var + eps)`` and ``t = beta - mean * s``
(per output channel). Only where every one of ``w, gamma, beta, mean, var`` is *weight-only*:
a constant, or, with ``weight_params=True``, a parameter of ``main`` after its ``num_input``
inputs. Then ``FoldConstant`` (constants) or ``LiftTransformParams`` (weight parameters) computes
``w * s`` and ``t`` once, at compile or load time, and every call runs a plain convolution whose
epilogue is one add: what ONNX Runtime does to a Conv+BatchNormalization pair.

Why not TVM's ``relax.transform.FoldBatchnormToConv2D``: it matches constants only, so it does
nothing on the modules the tuner sees (weights are ``main``'s parameters, lifted into
``main_transform_params``). Without it, ``DecomposeOpsForInference`` turns the BatchNorm into a
subtract, a divide, a multiply and an add on every output element of the convolution: on a
depthwise 3x3 convolution (9 multiply-adds per output) the divide alone costs about as much as
the convolution.

Numerics: the folded weights round differently from the unfolded epilogue; outputs agree with
the source model to float32 rounding (``tests/relax/test_fold.py`` checks 1e-5 relative).
"""

from __future__ import annotations

import tvm
from tvm import relax, tirx
from tvm.relax.dpl import TupleGetItemPattern, is_op, rewrite_call, wildcard

__all__ = ["FoldBatchNormIntoWeights"]


def _weight_vars(func: relax.Function, weight_params: bool) -> set:
    """The parameters of ``func`` that hold weights (after ``num_input``), when asked."""
    if not weight_params:
        return set()
    attrs = dict(func.attrs) if func.attrs is not None else {}
    if "num_input" not in attrs:
        return set()
    return set(list(func.params)[int(attrs["num_input"]):])


def _channels(expr: relax.Expr) -> int | None:
    """The static length of a 1-D tensor, or None."""
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
        return None
    dims = list(ty.shape.values)
    if len(dims) != 1 or not isinstance(dims[0], tirx.IntImm):
        return None
    return int(dims[0])


@relax.transform.function_pass(opt_level=0, name="FoldBatchNormIntoWeights")
class FoldBatchNormIntoWeights:
    """Fold inference BatchNorm after a convolution into the convolution's weights.

    Parameters
    ----------
    weight_params
        Also fold where the weights are ``main``'s weight parameters (those after its
        ``num_input`` attribute), not only constants. Use it before ``LiftTransformParams``,
        which then moves the weight arithmetic out of ``main``; elsewhere the arithmetic would
        run on every call.
    """

    def __init__(self, weight_params: bool = False):
        self.weight_params = weight_params
        self.data = wildcard()
        self.weight = wildcard()
        self.conv = is_op("relax.nn.conv2d")(self.data, self.weight)
        self.gamma, self.beta, self.mean, self.var = (wildcard() for _ in range(4))
        self.bn = is_op("relax.nn.batch_norm")(self.conv, self.gamma, self.beta, self.mean,
                                               self.var)
        self.pattern = TupleGetItemPattern(self.bn, 0)

    def transform_function(self, func: relax.Function, mod: tvm.IRModule,
                           ctx: tvm.transform.PassContext) -> relax.Function:
        """Rewrite every foldable Conv2D + BatchNorm pair of ``func``.

        Parameters
        ----------
        func, mod, ctx
            As TVM's function passes receive them.

        Returns
        -------
        relax.Function
            ``func`` with the pairs folded (unchanged when there are none, or ``func`` is a
            primitive function).
        """
        if func.attrs is not None and int(dict(func.attrs).get("Primitive", 0)) != 0:
            return func
        weights = _weight_vars(func, self.weight_params)

        def weight_only(expr) -> bool:
            return isinstance(expr, tvm.ir.expr.Constant) or expr in weights

        def rewriter(expr, matches):
            conv, bn = matches[self.conv], matches[self.bn]
            operands = [matches[p] for p in (self.weight, self.gamma, self.beta, self.mean,
                                             self.var)]
            if not all(weight_only(e) for e in operands):
                return expr
            if (conv.attrs.data_layout != "NCHW" or conv.attrs.kernel_layout != "OIHW"
                    or conv.attrs.out_layout not in ("", "NCHW") or int(bn.attrs.axis) != 1
                    or bool(bn.attrs.training)):
                return expr
            weight, gamma, beta, mean, var = operands
            channels = _channels(mean)
            dtype = str(var.ty.dtype)
            if (channels is None or not dtype.startswith("float")
                    or any(str(e.ty.dtype) != dtype for e in (weight, gamma, beta, mean))):
                return expr  # e.g. a quantised convolution: its weights are not scaled here
            eps = relax.const(float(bn.attrs.epsilon), dtype)
            scale = relax.op.divide(relax.const(1.0, dtype),
                                    relax.op.sqrt(relax.op.add(var, eps)))
            if bool(bn.attrs.scale):
                scale = relax.op.multiply(gamma, scale)
            shift = relax.op.negative(relax.op.multiply(mean, scale))
            if bool(bn.attrs.center):
                shift = relax.op.add(beta, shift)
            folded = relax.op.multiply(weight, relax.op.reshape(scale, (channels, 1, 1, 1)))
            out = relax.Call(conv.op, (matches[self.data], folded), conv.attrs)
            return relax.op.add(out, relax.op.reshape(shift, (1, channels, 1, 1)))

        return rewrite_call(self.pattern, rewriter, func)
