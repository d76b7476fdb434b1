r"""The torch model computed on the deployment's integer grid: what fine-tuning trains and deploys.

:class:`IntegerForward` walks a :class:`~mlf_deploy.models.DSResNet` the way lowering does and
computes each MLF layer as the int graph that :func:`~mlf_deploy.quantization.quantize` would make
of it, from the torch parameters (so gradients reach them):

* tdBN folded into its convolution with the running statistics (frozen while fine-tuning), in
  float64 as lowering folds it;
* one weight step per layer, ``max|W| / (2^(bits-1) - 1)`` over every projection into it, the
  weight exponent and the threshold mantissas chosen by the quantizer's own functions, weights and
  biases rounded to their mantissas (straight-through gradients);
* the membrane in units of 1/64 current unit, ``v = trunc0(v r / 2^12) + (64 a wrapped to 24 bits)
  + (b << e_b)``, saturated at ``+-(2^23 - 1)``, ``s = v > 64 theta``, reset to 0 (see
  :class:`mlf_deploy.ir.Population`); a negative weight exponent floors each projection apart.

With ``record=True`` (evaluation) it keeps every population's spikes and integer membranes under the
names lowering gives them; they equal the integer reference's bit for bit (``tests/test_qat.py``).
Only the surrogate gradient of the spike and the straight-through roundings are not the integer
network's: they exist in the backward pass alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mlf_deploy.ir.semantics import (
    MEMBRANE_GAIN,
    exact_in_float32,
    int_membrane,
    membrane_threshold,
    overflows,
    population_name,
    retention_mant,
    saturate,
    signed_limit,
    wrap_state,
)
from mlf_deploy.models import DSResNet
from mlf_deploy.qat.ste import floor_ste, int_spike, round_ste, trunc_ste
from mlf_deploy.quantization import (
    THRESHOLD_BITS,
    bias_exponent,
    input_grid,
    layer_exponent,
    weight_step,
)
from mlf_deploy.quantization.rules import BIAS_MANT_MAX


@dataclass(frozen=True)
class IntGrid:
    """What fixes the integer grid besides the weights (the quantizer's arguments)."""

    weight_bits: int  # signed weight mantissa bits
    input_scale: float  # float value of one integer input unit (1.0 for event counts)
    input_bits: int  # signed bits of an integer input value
    threshold_bits: int = THRESHOLD_BITS

    @classmethod
    def of(cls, model: DSResNet, weight_bits: int, encoding: str, input_max: float | None):
        """The grid :func:`~mlf_deploy.quantization.quantize` picks for this model's graph."""
        scale, bits = input_grid(encoding == "static" or model.input_bn is not None, input_max)
        return cls(int(weight_bits), scale, bits)


@dataclass
class _Conv:
    weight: torch.Tensor  # (C_out, C_in, k, k) float64, BN folded
    bias: torch.Tensor  # (C_out,) float64
    stride: int
    padding: int
    sources: list  # tensors (T, B, C, H, W) whose sum the conv reads (the multiset)


def _fold(cbn, sources) -> _Conv:
    bn = cbn.bn
    scale, shift = bn.scale_shift(bn.running_mean.double(), bn.running_var.double())
    weight = cbn.conv.weight.double() * scale[:, None, None, None]
    return _Conv(weight, shift, cbn.conv.stride[0], cbn.conv.padding[0], sources)


def _exact_conv(src, mant, stride, padding):
    """``conv2d`` of integer-valued tensors, exact: in float32 (several times faster on CPU) when no
    partial sum can reach 2^24, where float32 stops holding every integer, else in float64. On a
    GPU, whose convolution algorithms are inexact even on integers, in float64 rounded to the
    nearest integer (the error is orders below 0.5; the gradient passes the rounding unchanged)."""
    if src.device.type != "cpu":
        a = F.conv2d(src.double(), mant.double(), stride=stride, padding=padding)
        return a + (a.detach().round() - a.detach())
    bound = float(mant.detach().abs().flatten(1).sum(1).max()) * float(src.detach().abs().max())
    if exact_in_float32(bound):
        return F.conv2d(src.float(), mant.float(), stride=stride, padding=padding).double()
    return F.conv2d(src, mant, stride=stride, padding=padding)


class IntegerForward(torch.nn.Module):
    """``model`` on ``grid``; call it with raw input ``(B, C, H, W)`` or ``(T, B, C, H, W)``.

    Returns logits ``(B, classes)`` float64. Differentiable unless run under ``torch.no_grad()``.
    A module holding ``model``'s parameters, so that DistributedDataParallel can wrap it.
    """

    def __init__(self, model: DSResNet, grid: IntGrid, record: bool = False):
        super().__init__()
        self.model, self.grid, self.record = model, grid, record
        self.spikes: dict = {}
        self.states: dict = {}
        self.overflow: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, g = self.model, self.grid
        self.spikes, self.states, self.overflow = {}, {}, {}
        x = m.encode(x.to(m.fc.weight.device)).double()
        if m.input_bn is not None:
            bn = m.input_bn
            gain, offset = bn.scale_shift(bn.running_mean.double(), bn.running_var.double())
            x = x * gain.detach()[:, None, None] + offset.detach()[:, None, None]
        limit = signed_limit(g.input_bits)
        x = torch.clamp(torch.round(x / g.input_scale), -limit, limit)
        current = self._layer("stem_mlf", m.stem_mlf, [_fold(m.stem, [x])], g.input_scale)
        for i, block in enumerate(m.blocks):
            pre = f"blocks.{i}"
            conv1 = _fold(block.branch1, current)
            h = self._layer(f"{pre}.mlf1", block.mlf1, [conv1])
            conv2 = _fold(block.branch2, h)
            if block.variant == "ds":
                skip = current
                if block.shortcut is not None:
                    sc = _fold(block.shortcut, current)
                    skip = self._layer(f"{pre}.mlf_shortcut", block.mlf_shortcut, [sc])
                current = self._layer(f"{pre}.mlf2", block.mlf2, [conv2]) + skip
                continue
            if block.shortcut is not None:
                sc = _fold(block.shortcut, current)
            else:
                eye = torch.eye(conv2.weight.shape[0], dtype=torch.float64,
                                device=conv2.weight.device)[:, :, None, None]
                sc = _Conv(eye, torch.zeros_like(conv2.bias), 1, 0, current)
            current = self._layer(f"{pre}.mlf2", block.mlf2, [conv2, sc], bias=conv2.bias + sc.bias)
        return self._readout(current)

    def _layer(self, name, mlf, convs, src_unit=1.0, bias=None) -> list:
        """One MLF layer on the grid; returns its K level spike tensors ``(T, B, C, H, W)``."""
        bits = self.grid.weight_bits
        limit = signed_limit(bits)
        step = weight_step(max(float(c.weight.detach().abs().max()) for c in convs), bits)
        unit0 = step * src_unit
        thresholds = mlf.p.thresholds()
        exp = layer_exponent(unit0, max(thresholds), self.grid.threshold_bits)
        unit = unit0 * 2.0 ** -exp
        current = 0
        for c in convs:
            mant = torch.clamp(round_ste(c.weight / step), -limit, limit)
            # a negative exponent floors each projection, so each source population apart
            parts = [sum(c.sources)] if exp >= 0 else c.sources
            for src in parts:
                a = _exact_conv(src.flatten(0, 1), mant, c.stride, c.padding)
                current = current + (a * 2.0 ** exp if exp >= 0 else floor_ste(a / 2.0 ** -exp))
        bias = convs[0].bias if bias is None else bias
        bias_v = bias / unit * MEMBRANE_GAIN
        bias_exp = bias_exponent(float(bias_v.detach().abs().max()))
        bias_int = torch.clamp(round_ste(bias_v / 2 ** bias_exp), -BIAS_MANT_MAX, BIAS_MANT_MAX)
        bias_int = (bias_int * 2.0 ** bias_exp)[:, None, None]
        th = torch.tensor([membrane_threshold(round(t / unit), True) for t in thresholds],
                          dtype=torch.float64, device=bias_int.device)
        steps = convs[0].sources[0].shape[0]
        u = current * MEMBRANE_GAIN
        u = u.view(steps, -1, *u.shape[1:])
        wrapped = int(overflows(u.detach()).sum())
        if wrapped:  # Lava's 24-bit wrap of u (rare); the gradient passes it unchanged
            u = u + (wrap_state(u.detach()) - u.detach())
        return self._dynamics(name, mlf, u, bias_int, th, unit / MEMBRANE_GAIN, wrapped)

    def _dynamics(self, name, mlf, u, bias_int, th, v_unit, overflow) -> list:
        levels = len(th)
        th = th.view(levels, *[1] * (u.dim() - 1))
        retention = retention_mant(mlf.p.tau)
        drive = u + bias_int
        v = u.new_zeros((levels, *u.shape[1:]))
        spikes, states = [], []
        for t in range(u.shape[0]):
            v = int_membrane(v, drive[t], retention, trunc_ste)
            v, clipped = saturate(v)  # rare
            overflow += clipped
            s = int_spike(v, th, v_unit, mlf.p.surrogate_width)
            v = v * (1 - (s.detach() if mlf.p.detach_reset else s))
            spikes.append(s)
            if self.record:
                states.append(v.detach())
        s = torch.stack(spikes)  # (T, K, B, C, H, W)
        if overflow:
            self.overflow[name] = overflow
        if self.record:
            v_all = torch.stack(states)
            for k in range(levels):
                pop = population_name(name, k)
                self.spikes[pop] = s[:, k].detach().to(torch.uint8).cpu().numpy()
                self.states[pop] = v_all[:, k].to(torch.int64).cpu().numpy()
        return [s[:, k] for k in range(levels)]

    def _readout(self, sources) -> torch.Tensor:
        fc, bits = self.model.fc, self.grid.weight_bits
        limit = signed_limit(bits)
        counts = sum(s.sum(dim=(0, 3, 4)) for s in sources)  # (B, C), exact integers
        step = weight_step(float(fc.weight.detach().abs().max()), bits)
        mant = torch.clamp(round_ste(fc.weight.double() / step), -limit, limit)
        steps, _, _, h, w = sources[0].shape
        return (counts @ mant.T) * step / (steps * h * w) + fc.bias.double()

