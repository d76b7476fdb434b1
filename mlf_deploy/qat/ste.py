"""Straight-through roundings and the integer spike, for training through the fixed-point grid.

Each rounding returns the exactly rounded value forward and passes the gradient of the identity
backward (the straight-through estimator, as lava-dl's quantize hook does). The rounding mode is
part of the name: ``ROUND`` (half to even, as numpy and torch round), ``TRUNC`` (toward zero, the
Loihi membrane decay) and ``FLOOR`` (the arithmetic right shift of a negative weight exponent).
"""

from __future__ import annotations

import torch


class _StraightThrough(torch.autograd.Function):
    """``fn(x)`` forward, the identity's gradient backward (one node, no extra tensors kept)."""

    @staticmethod
    def forward(ctx, x, fn):
        return fn(x)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return _StraightThrough.apply(x, torch.round)


def trunc_ste(x: torch.Tensor) -> torch.Tensor:
    return _StraightThrough.apply(x, torch.trunc)


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    return _StraightThrough.apply(x, torch.floor)


class IntSpike(torch.autograd.Function):
    """``v > th`` on integer membranes forward; the float model's rectangular surrogate backward.

    ``unit`` is the float value of one membrane unit, so the window ``|v - th| unit < width / 2``
    and the height ``unit / width`` are those of the float neuron (width in current units): the
    gradient the float training used, carried into the integer units the membrane lives in.
    """

    @staticmethod
    def forward(ctx, v, th, unit, width):
        ctx.save_for_backward(v, th)
        ctx.unit, ctx.width = unit, width
        return (v > th).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        v, th = ctx.saved_tensors
        window = ((v - th).abs() * ctx.unit < ctx.width / 2).to(grad.dtype)
        return grad * window * (ctx.unit / ctx.width), None, None, None


def int_spike(v: torch.Tensor, th: torch.Tensor, unit, width: float) -> torch.Tensor:
    """``unit``: a float or a tensor broadcastable to ``v`` (one value per level)."""
    return IntSpike.apply(v, th, unit, width)
