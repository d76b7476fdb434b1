r"""The Multi-Level-Firing (MLF) neuron of Feng et al., IJCAI 2022 (arXiv 2210.06386).

A K-level MLF neuron is K leaky integrate-and-fire compartments that receive the same input current
:math:`x[t]`, each with its own threshold and hard reset. For level :math:`k = 0..K-1`:

.. math::
    u_k[t] = \tau\, u_k[t-1]\,(1 - s_k[t-1]) + x[t], \qquad
    s_k[t] = H(u_k[t] - \vartheta_k), \qquad \vartheta_k = V_{th} + k\,\Delta, \qquad
    o[t] = \sum_k s_k[t]

with :math:`H` the strict step (``u > vth`` fires), :math:`\tau = 0.25`, :math:`V_{th} = 0.6`,
:math:`\Delta = 1`. The gradient of :math:`H` is the rectangle
:math:`\frac{1}{a}1\{|u-\vartheta_k| < a/2\}` (width ``a = 1``), and by default it also flows
through the reset term, as in STBP.

Two forms: :func:`mlf_step`, a pure step with explicit state (runtimes, streaming), and
:class:`MLF`, the module over a ``(T, B, ...)`` sequence. The module runs the whole sequence inside
one autograd function: the K levels are one tensor axis and the backward pass is hand-written BPTT,
so no autograd graph is built per timestep. On CUDA the same sequence runs as two fused Triton
kernels (:mod:`mlf_deploy.neuron_triton`), chosen by
:func:`mlf_deploy.neuron_kernel.set_neuron_kernel`; this torch path
stays the reference they are tested against.
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


# Elements per level processed together. The update is a dozen elementwise passes per timestep,
# each memory-bound on CPU, so they run on a slice that stays in the caches (K x 64K floats,
# 768 KiB for K=3) rather than on whole layers; Python dispatch per slice sets the lower bound on
# the size (measured on ResNet-20 layers: 16K-128K are within noise of each other, 4K is slower).
_CHUNK = 1 << 16


def _chunks(n, device):
    step = n if device.type != "cpu" else _CHUNK  # a GPU wants whole tensors per kernel
    return [(i, min(i + step, n)) for i in range(0, n, step)]


def _integrate(u, x_t, tau, first):
    """``u <- tau * u + x_t`` in place, rounded like the paper's ``tau * u * (1 - s) + x``
    (no FMA)."""
    if first:
        return u.copy_(x_t.expand_as(u))  # u[-1] = 0, and 0 + x == x
    return u.mul_(tau).add_(x_t)


class _MLFSequence(torch.autograd.Function):
    """Whole-sequence MLF over ``x`` ``(T, N)``, the K levels one tensor axis, hand-written BPTT.

    Only ``x`` is saved: the backward pass recomputes the membranes of one cache-sized slice at a
    time, which costs a few elementwise passes and saves K membranes per element (the per-step
    autograd graph of the paper's code keeps several tensors per level and timestep). Masks are
    kept as 0/1 floats: on CPU, comparisons into bool and ``masked_fill``/``where`` are several
    times slower than the float arithmetic they replace, and multiplying by 1 or 0 is exact.
    """

    @staticmethod
    def forward(ctx, x, th, tau, width, detach_reset, record):
        steps, n = x.shape
        levels = th.shape[0]
        out = torch.empty_like(x)
        spikes = x.new_empty((levels, steps, n) if record else (0,))
        states = x.new_empty((levels, steps, n) if record else (0,))
        chunks = _chunks(n, x.device)
        width_max = chunks[0][1]
        u_buf = x.new_empty((levels, width_max))
        quiet_buf = torch.empty_like(u_buf)
        for lo, hi in chunks:
            u = u_buf[:, :hi - lo]
            quiet = quiet_buf[:, :hi - lo]  # 1 - s: the level did not fire
            for t in range(steps):
                _integrate(u, x[t, lo:hi], tau, t == 0)
                torch.le(u, th, out=quiet)
                u.mul_(quiet)  # hard reset: u * (1 - s)
                count = out[t, lo:hi]
                torch.sum(quiet, 0, out=count)
                count.neg_().add_(levels)  # small integers: exact
                if record:
                    torch.sub(1, quiet, out=spikes[:, t, lo:hi])
                    states[:, t, lo:hi] = u
        ctx.save_for_backward(x, th)
        ctx.tau, ctx.width, ctx.detach_reset = tau, width, detach_reset
        ctx.mark_non_differentiable(spikes, states)
        return out, spikes, states

    @staticmethod
    def backward(ctx, grad_out, _grad_spikes, _grad_states):
        # With W = rect(u[t]) (the surrogate window, 0/1) and R = 1 - s[t], the chain rule through
        # u[t+1] = tau*u[t]*(1 - s[t]) + x[t+1] gives
        #   dL/du[t] = W/a * (dL/do[t] - tau*g*u[t]) + tau*g*R,   g = dL/du[t+1]
        #            = W/a * dL/do[t] + Q * g,                    Q = tau*(R - W*u[t]/a)
        # (Q = tau*R when the reset is detached), and dL/dx[t] = sum_k dL/du_k[t]. Q and W depend
        # on the forward pass only, so the reverse sweep is two passes and a sum per timestep.
        x, th = ctx.saved_tensors
        tau, width, detach_reset = ctx.tau, ctx.width, ctx.detach_reset
        steps, n = x.shape
        levels = th.shape[0]
        grad_out = grad_out.contiguous()
        if width != 1:
            grad_out = grad_out / width
        grad_x = torch.empty_like(x)
        chunks = _chunks(n, x.device)
        # one set of slice buffers, reused: fresh multi-MiB allocations would page-fault each time
        bufs = x.new_empty((2 * steps + 3, levels, chunks[0][1]))
        for lo, hi in chunks:
            window, q, rest = bufs[:, :, :hi - lo].split([steps, steps, 3])
            u, quiet, g = rest
            for t in range(steps):  # recompute this slice's membranes, keep W and Q
                _integrate(u, x[t, lo:hi], tau, t == 0)
                torch.le(u, th, out=quiet)
                torch.sub(u, th, out=window[t]).abs_()
                torch.lt(window[t], width / 2, out=window[t])
                torch.mul(quiet, tau, out=q[t])
                if not detach_reset:
                    q[t].addcmul_(window[t], u, value=-tau / width)
                u.mul_(quiet)
            for t in range(steps - 1, -1, -1):
                if t == steps - 1:
                    torch.mul(window[t], grad_out[t, lo:hi], out=g)
                else:
                    g.mul_(q[t]).addcmul_(window[t], grad_out[t, lo:hi])
                torch.sum(g, 0, out=grad_x[t, lo:hi])
        return grad_x, None, None, None, None, None


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
        self.kernel = "torch"  # or "triton" (float32 only; see neuron_kernel.set_neuron_kernel)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.p._asdict().items())

    # torch.compile leaves the layer to its own kernels (a graph break): inductor, inlining the
    # T-step recurrence of a whole network, did not finish compiling (docs/gpu.md)
    @torch.compiler.disable
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        th = torch.tensor(self.p.thresholds(), dtype=x.dtype, device=x.device).view(-1, 1)
        flat = x.reshape(x.shape[0], -1)
        sequence = _MLFSequence.apply
        if self.kernel == "triton" and x.dtype == torch.float32:  # the kernels are float32
            from mlf_deploy.neuron_triton import mlf_sequence_triton as sequence
        out, spikes, states = sequence(flat, th, self.p.tau, self.p.surrogate_width,
                                       self.p.detach_reset, self.record)
        if self.record:
            shape = (self.p.levels, *x.shape)
            self.recorded = {"spikes": spikes.view(shape).to(torch.uint8),
                             "state": states.view(shape)}
        return out.view(x.shape)
