r"""The Multi-Level-Firing (MLF) neuron of Feng et al., IJCAI 2022 (arXiv 2210.06386).

A K-level MLF neuron is K leaky integrate-and-fire compartments that receive the same input current
:math:`x[t]`, each with its own threshold and hard reset. For level :math:`k = 0..K-1`:

.. math::
    u_k[t] = \tau\, u_k[t-1]\,(1 - s_k[t-1]) + x[t], \qquad
    s_k[t] = H(u_k[t] - \vartheta_k), \qquad \vartheta_k = V_{th} + k\,\Delta, \qquad
    o[t] = \sum_k s_k[t]

with :math:`H` the strict step (``u > vth`` fires), :math:`\tau = 0.25`, :math:`V_{th} = 0.6`,
:math:`\Delta = 1`. The gradient of :math:`H` is the rectangle :math:`\frac{1}{a}1\{|u-\vartheta_k| < a/2\}`
(width ``a = 1``), and by default it also flows through the reset term, as in STBP.

Two forms: :func:`mlf_step`, a pure step with explicit state (runtimes, streaming), and
:class:`MLF`, the module over a ``(T, B, ...)`` sequence. The module runs the whole sequence inside
one autograd function: the K levels are one tensor axis and the backward pass is hand-written BPTT,
so no autograd graph is built per timestep.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class MLFParameters(NamedTuple):
    """Parameters of an MLF neuron.

    Parameters:
        levels (int): number of levels K (each one a LIF compartment).
        vth (float): threshold of the first level, in input-current units.
        level_step (float): spacing of the thresholds, ``vth_k = vth + k * level_step``.
        tau (float): membrane retention per timestep (dimensionless, 0..1).
        surrogate_width (float): width ``a`` of the rectangular surrogate around each threshold.
        detach_reset (bool): if True, no gradient flows through the reset term.
    """

    levels: int = 3
    vth: float = 0.6
    level_step: float = 1.0
    tau: float = 0.25
    surrogate_width: float = 1.0
    detach_reset: bool = False

    def thresholds(self) -> list[float]:
        return [self.vth + k * self.level_step for k in range(self.levels)]


class MLFState(NamedTuple):
    """State of an MLF layer: ``u`` is the membrane after the reset, shape ``(K, B, ...)``."""

    u: torch.Tensor


def _threshold_tensor(p: MLFParameters, like: torch.Tensor) -> torch.Tensor:
    th = torch.tensor(p.thresholds(), dtype=like.dtype, device=like.device)
    return th.view(-1, *([1] * like.dim()))


class _RectHeaviside(torch.autograd.Function):
    """``u > th`` forward, rectangle of width ``a`` around ``th`` backward."""

    @staticmethod
    def forward(ctx, u, th, width):
        ctx.save_for_backward(u, th)
        ctx.width = width
        return (u - th > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        u, th = ctx.saved_tensors
        window = ((u - th).abs() < ctx.width / 2).to(grad.dtype) / ctx.width
        return grad * window, None, None


def initial_state(x: torch.Tensor, p: MLFParameters) -> MLFState:
    """Zero state for one timestep's input ``x`` of shape ``(B, ...)``."""
    return MLFState(u=x.new_zeros((p.levels, *x.shape)))


def mlf_step(x: torch.Tensor, state: MLFState | None, p: MLFParameters = MLFParameters()):
    """One timestep: ``x`` ``(B, ...)`` -> (spike count ``(B, ...)`` in 0..K, per-level spikes
    ``(K, B, ...)``, new state). Differentiable through the surrogate."""
    if state is None:
        state = initial_state(x, p)
    th = _threshold_tensor(p, x)
    u = p.tau * state.u + x
    s = _RectHeaviside.apply(u, th, p.surrogate_width)
    keep = 1 - (s.detach() if p.detach_reset else s)
    return s.sum(0), s, MLFState(u=u * keep)


class _MLFSequence(torch.autograd.Function):
    """Whole-sequence MLF with the K levels vectorised and a hand-written backward (BPTT)."""

    @staticmethod
    def forward(ctx, x, th, tau, width, detach_reset):
        steps = x.shape[0]
        u_prev = x.new_zeros((th.shape[0], *x.shape[1:]))
        us = x.new_empty((steps, *u_prev.shape))
        for t in range(steps):
            us[t] = u_prev
            us[t].mul_(tau).add_(x[t])
            u_prev = us[t] * (us[t] <= th)
        spikes = us > th
        ctx.save_for_backward(us, th)
        ctx.tau, ctx.width, ctx.detach_reset = tau, width, detach_reset
        ctx.mark_non_differentiable(spikes)
        return spikes.sum(1, dtype=x.dtype), spikes

    @staticmethod
    def backward(ctx, grad_out, _grad_spikes):
        us, th = ctx.saved_tensors
        tau, width = ctx.tau, ctx.width
        grad_x = torch.empty_like(grad_out)
        g_next = torch.zeros_like(us[0])  # dL/du_k[t+1]; nothing follows the last step
        for t in range(us.shape[0] - 1, -1, -1):
            u = us[t]
            fired = u > th
            g_carry = g_next * tau
            g_spike = grad_out[t].unsqueeze(0).expand_as(u)
            if not ctx.detach_reset:
                g_spike = g_spike - g_carry * u
            window = (u - th).abs() < width / 2
            g_u = g_spike * window / width + g_carry * ~fired
            grad_x[t] = g_u.sum(0)
            g_next = g_u
        return grad_x, None, None, None, None


class MLF(nn.Module):
    """MLF layer over a sequence ``(T, B, ...)``; returns spike counts of the same shape (0..K).

    With ``record = True`` the last call's per-level spikes ``(K, T, B, ...)`` and post-reset
    membranes are kept in ``self.recorded`` (for verification against deployed backends).
    """

    def __init__(self, levels=3, vth=0.6, level_step=1.0, tau=0.25, surrogate_width=1.0,
                 detach_reset=False):
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be at least 1, got {levels}")
        self.p = MLFParameters(levels, vth, level_step, tau, surrogate_width, detach_reset)
        self.record = False
        self.recorded: dict[str, torch.Tensor] = {}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.p._asdict().items())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        th = _threshold_tensor(self.p, x[0])
        out, spikes = _MLFSequence.apply(x, th, self.p.tau, self.p.surrogate_width,
                                         self.p.detach_reset)
        if self.record:
            self.recorded = {"spikes": spikes.transpose(0, 1).to(torch.uint8),
                             "state": self._post_reset_states(x.detach(), th)}
        return out

    def _post_reset_states(self, x, th):
        u = x.new_zeros((self.p.levels, *x.shape[1:]))
        out = []
        for t in range(x.shape[0]):
            u = self.p.tau * u + x[t]
            u = u * (u <= th)
            out.append(u)
        return torch.stack(out, 1)
