"""The paper-semantics MLF loop, written as plainly as the paper's code computes it: one
autograd function per level, one Python iteration per timestep. It is the test oracle and the
benchmark baseline; it shares no code with mlf_deploy.neuron."""

import torch


class StepSurrogate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, vth, a):
        ctx.save_for_backward(u)
        ctx.vth, ctx.a = vth, a
        return torch.gt(u - vth, 0).float().to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * ((u - ctx.vth).abs() < ctx.a / 2).to(grad.dtype) / ctx.a, None, None


def mlf_loop(x, levels=3, vth=0.6, level_step=1.0, tau=0.25, a=1.0, detach_reset=False):
    """x: (T, B, ...) -> spike counts (T, B, ...), per-level list of (T, B, ...) spikes."""
    thresholds = [vth + k * level_step for k in range(levels)]
    u = [torch.zeros_like(x[0]) for _ in thresholds]
    s = [torch.zeros_like(x[0]) for _ in thresholds]
    out, per_level = [], [[] for _ in thresholds]
    for t in range(x.shape[0]):
        total = 0
        for k, th in enumerate(thresholds):
            reset = s[k].detach() if detach_reset else s[k]
            u[k] = tau * u[k] * (1 - reset) + x[t]
            s[k] = StepSurrogate.apply(u[k], th, a)
            per_level[k].append(s[k])
            total = total + s[k]
        out.append(total)
    return torch.stack(out), [torch.stack(p) for p in per_level]
