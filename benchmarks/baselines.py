"""Baseline neurons for benchmarks/train_step.py, dropped into a DS-ResNet in place of ``MLF``.

``PaperLoopMLF`` computes the MLF neuron the way the paper's code does (docs/references.md §1):
time folded into the batch as ``[T*B, ...]``, a Python loop over timesteps, and for every level and
timestep its own surrogate autograd function, so autograd records and saves a graph per step and
level. It is written here from the equations, independently of ``mlf_deploy.neuron`` and of the
test oracle, so the benchmark measures the approach and not a shared helper.

``ReLUNeuron`` replaces the neuron by a ReLU: the network's convolution and tdBN work alone, the
floor any spiking neuron is measured against.
"""

import torch
from torch import nn

from mlf_deploy.neuron import MLF


class _RectSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, vth, width):
        ctx.save_for_backward(u)
        ctx.vth, ctx.width = vth, width
        return u.gt(vth).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        window = (u - ctx.vth).abs() < ctx.width / 2
        return grad * window.to(grad.dtype) / ctx.width, None, None


class PaperLoopMLF(nn.Module):
    """MLF over ``(T, B, ...)`` computed per timestep and per level, as in the paper's code."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        steps, batch = x.shape[:2]
        x = x.flatten(0, 1)  # the paper's layout: [T*B, ...], time-major
        p = self.p
        u = [torch.zeros_like(x[:batch]) for _ in range(p.levels)]
        s = [torch.zeros_like(x[:batch]) for _ in range(p.levels)]
        out = []
        for t in range(steps):
            x_t = x[t * batch:(t + 1) * batch]
            total = 0
            for k, vth in enumerate(p.thresholds()):
                reset = s[k].detach() if p.detach_reset else s[k]
                u[k] = p.tau * u[k] * (1 - reset) + x_t
                s[k] = _RectSpike.apply(u[k], vth, p.surrogate_width)
                total = total + s[k]
            out.append(total)
        return torch.cat(out).view(steps, batch, *x.shape[1:])


class ReLUNeuron(nn.Module):
    def __init__(self, p=None):
        super().__init__()

    def forward(self, x):
        return torch.relu(x)


def swap_neurons(model: nn.Module, factory) -> nn.Module:
    """Replace every ``MLF`` submodule of ``model`` by ``factory(mlf.p)``, in place."""
    for name, child in list(model.named_children()):
        if isinstance(child, MLF):
            setattr(model, name, factory(child.p))
        else:
            swap_neurons(child, factory)
    return model
