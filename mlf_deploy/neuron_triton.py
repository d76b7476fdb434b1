r"""The MLF sequence as two fused Triton kernels: the training path of
:class:`mlf_deploy.neuron.MLF` on CUDA.

Same mathematics and the same float32 rounding as the torch path (:class:`mlf_deploy.neuron.
_MLFSequence`, the reference; docs/gpu.md): each program owns a block of neurons with its K
membranes as one ``(K, BLOCK)`` register tile, and one launch covers all T timesteps of a layer.

* Forward: ``u <- tau * u + x[t]``, fire where ``u > th_k``, hard reset to 0; only the spike count
  leaves the kernel (and, when recording, each level's spikes and membranes). Nothing is saved
  for backward beyond ``x``, which autograd holds anyway.
* Backward (hand-written BPTT, ``t = T-1 .. 0``): with ``W`` the surrogate window ``|u - th| < a/2``
  and ``g`` the membrane gradient (in registers),
  ``g <- g * Q[t] + W[t] * dL/do[t]``, ``Q = tau * (1 - s) - (tau / a) * W * u`` (``tau * (1 - s)``
  with ``detach_reset``), ``dL/dx[t] = sum_k g``. The pre-reset membrane ``u[t]`` is rebuilt from
  ``x[0..t]``: T(T+1)/2 reads of a row the program has just read (cache hits) instead of K stored
  membranes per element and timestep.

T and K are compile-time constants, so ``tl.static_range`` unrolls the time loop. Multiply and add
are kept apart (``enable_fp_fusion=False``): the torch path rounds ``tau * u`` before adding ``x``,
and a fused multiply-add would move membranes near a threshold across it.

Importing this module imports triton; :mod:`mlf_deploy.neuron` imports it only when the kernel is
used. With ``TRITON_INTERPRET=1`` set before this import, the kernels run on CPU tensors (the
tests).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 512  # neurons per program: x K levels of float32 state in registers


@triton.jit
def _forward_kernel(x_ptr, th_ptr, out_ptr, spikes_ptr, states_ptr, n, level_stride, tau,
                    STEPS: tl.constexpr, LEVELS: tl.constexpr, LEVELS_P2: tl.constexpr,
                    BLOCK: tl.constexpr, RECORD: tl.constexpr):
    cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = cols < n
    level = tl.arange(0, LEVELS_P2)
    # padding levels (K rounded up to a power of two) get an infinite threshold: never fire
    th = tl.load(th_ptr + level, mask=level < LEVELS, other=float("inf"))[:, None]
    u = tl.zeros((LEVELS_P2, BLOCK), dtype=tl.float32)
    x_row, out_row = x_ptr + cols, out_ptr + cols  # walked a row at a time: no t * n products
    # recording: (K, T, n) per-level spikes and post-reset membranes, as the torch path keeps them
    record_at = level[:, None] * level_stride + cols[None, :]
    record_live = (level[:, None] < LEVELS) & live[None, :]
    for _ in tl.static_range(STEPS):
        u = u * tau + tl.load(x_row, mask=live, other=0.0)[None, :]
        fired = u > th
        tl.store(out_row, tl.sum(fired.to(tl.float32), axis=0), mask=live)
        u = tl.where(fired, 0.0, u)
        if RECORD:
            tl.store(spikes_ptr + record_at, fired.to(tl.float32), mask=record_live)
            tl.store(states_ptr + record_at, u, mask=record_live)
            record_at += n
        x_row += n
        out_row += n


@triton.jit
def _backward_kernel(x_ptr, th_ptr, grad_out_ptr, grad_x_ptr, n, tau, half_width, reset_slope,
                     STEPS: tl.constexpr, LEVELS: tl.constexpr, LEVELS_P2: tl.constexpr,
                     BLOCK: tl.constexpr, DETACH_RESET: tl.constexpr):
    cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = cols < n
    level = tl.arange(0, LEVELS_P2)
    th = tl.load(th_ptr + level, mask=level < LEVELS, other=float("inf"))[:, None]
    g = tl.zeros((LEVELS_P2, BLOCK), dtype=tl.float32)
    grad_row, grad_x_row = grad_out_ptr + cols, grad_x_ptr + cols
    for _ in tl.static_range(STEPS - 1):
        grad_row += n
        grad_x_row += n
    for i in tl.static_range(STEPS):
        # rebuild the pre-reset membrane of step t = T-1-i from x[0..t]
        x_row = x_ptr + cols
        u = tl.zeros((LEVELS_P2, BLOCK), dtype=tl.float32)
        for _ in range(0, STEPS - 1 - i):
            u = u * tau + tl.load(x_row, mask=live, other=0.0)[None, :]
            u = tl.where(u > th, 0.0, u)
            x_row += n
        u = u * tau + tl.load(x_row, mask=live, other=0.0)[None, :]
        window = (tl.abs(u - th) < half_width).to(tl.float32)
        q = tl.where(u > th, 0.0, tau)
        if not DETACH_RESET:
            q = q + reset_slope * window * u
        g = g * q + window * tl.load(grad_row, mask=live, other=0.0)[None, :]
        tl.store(grad_x_row, tl.sum(g, axis=0), mask=live)
        grad_row -= n
        grad_x_row -= n


class MLFSequenceTriton(torch.autograd.Function):
    """``x`` ``(T, N)`` float32, ``th`` ``(K, 1)`` -> spike counts ``(T, N)``, and with ``record``
    per-level spikes and post-reset membranes ``(K, T, N)`` (empty otherwise); the arguments and
    results of the torch path's function."""

    @staticmethod
    def forward(ctx, x, th, tau, width, detach_reset, record):
        steps, n = x.shape
        levels = th.shape[0]
        x = x.contiguous()
        th = th.reshape(-1).contiguous()
        out = torch.empty_like(x)
        spikes = x.new_empty((levels, steps, n) if record else (0,))
        states = x.new_empty((levels, steps, n) if record else (0,))
        grid = (triton.cdiv(n, BLOCK),)
        _forward_kernel[grid](x, th, out, spikes, states, n, steps * n, tau, STEPS=steps,
                              LEVELS=levels, LEVELS_P2=triton.next_power_of_2(levels),
                              BLOCK=BLOCK, RECORD=bool(record), enable_fp_fusion=False)
        ctx.save_for_backward(x, th)
        ctx.tau, ctx.width, ctx.detach_reset = tau, width, detach_reset
        ctx.mark_non_differentiable(spikes, states)
        return out, spikes, states

    @staticmethod
    def backward(ctx, grad_out, _grad_spikes, _grad_states):
        x, th = ctx.saved_tensors
        steps, n = x.shape
        levels = th.shape[0]
        grad_out = grad_out.contiguous()
        if ctx.width != 1:  # as the torch path: the 1/a of the surrogate applied once, up front
            grad_out = grad_out / ctx.width
        grad_x = torch.empty_like(x)
        grid = (triton.cdiv(n, BLOCK),)
        _backward_kernel[grid](x, th, grad_out, grad_x, n, ctx.tau, ctx.width / 2,
                               -ctx.tau / ctx.width, STEPS=steps, LEVELS=levels,
                               LEVELS_P2=triton.next_power_of_2(levels), BLOCK=BLOCK,
                               DETACH_RESET=bool(ctx.detach_reset), enable_fp_fusion=False)
        return grad_x, None, None, None, None, None


def mlf_sequence_triton(x, th, tau: float, width: float, detach_reset: bool, record: bool):
    """:class:`MLFSequenceTriton` applied: ``(counts, spikes, states)``."""
    return MLFSequenceTriton.apply(x, th, tau, width, detach_reset, record)
