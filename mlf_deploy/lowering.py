"""Lower a trained DS-ResNet to the float deployment graph.

* tdBN (eval mode, running statistics) is folded into the preceding convolution: ``W' = W * scale``
  per output channel and ``b = shift``, with the paper's ``alpha * Vth / (sqrt(var) + eps)`` scale
  (eps outside the square root).
* Each K-level MLF layer becomes one :class:`Layer` (the shared current) and K :class:`Population`
  nodes with thresholds ``vth + k * level_step``.
* Activations between layers are multisets of populations whose spikes sum to the torch tensor. A
  DS block's output is its ``mlf2`` populations plus the shortcut's multiset, so identity shortcuts
  chain and the fan-in of the next convolution grows along a stage: one projection per population,
  all with the same weights. The plain variant adds the shortcut before firing, as an identity (or
  folded 1x1) projection into the same layer.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mlf_deploy.errors import UserError
from mlf_deploy.ir import Graph, Input, Layer, Population, Projection, Readout
from mlf_deploy.ir.semantics import conv_output_size, population_name
from mlf_deploy.models import BasicBlock, ConvBN, DSResNet, TdBatchNorm
from mlf_deploy.neuron import MLF

_LOWERABLE = (DSResNet, BasicBlock, ConvBN, nn.Conv2d, TdBatchNorm, MLF, nn.Linear, nn.Sequential)


def fold_conv_bn(cbn: ConvBN) -> tuple[np.ndarray, np.ndarray]:
    """``(weight, bias)`` of the conv with its eval-mode tdBN folded in, computed in float64: the
    float graph is the trained network in exact-as-possible arithmetic, so that rounding of the
    fold itself (a float32 product lands 1e-8 from a threshold) does not show up as deployment
    error."""
    with torch.no_grad():
        bn = cbn.bn
        scale, shift = _bn_scale_shift(bn)
        weight = cbn.conv.weight.double() * scale[:, None, None, None]
    return weight.numpy(), shift.numpy()


def _bn_scale_shift(bn: TdBatchNorm):
    """Eval-mode tdBN as ``x * scale + shift``, in float64."""
    return _double_bn(bn).scale_shift(bn.running_mean.double(), bn.running_var.double())


def _double_bn(bn: TdBatchNorm) -> TdBatchNorm:
    import copy
    return copy.deepcopy(bn).double()


class _Builder:
    def __init__(self):
        self.nodes: dict = {}

    def add(self, node):
        if node.name in self.nodes:
            raise ValueError(f"duplicate node name {node.name!r}")
        self.nodes[node.name] = node

    def layer(self, name, mlf: MLF, shape, bias, inputs):
        """``inputs``: list of (role, sources, weight, stride, padding) feeding this layer."""
        pops = tuple(population_name(name, k) for k in range(mlf.p.levels))
        for role, sources, weight, stride, pad in inputs:
            for src in sources:
                self.add(Projection(f"{name}.{role}<-{src}", src, name, "conv2d", weight,
                                    (stride, stride), (pad, pad)))
        self.add(Layer(name, tuple(shape), bias.astype(np.float64), pops))
        for k, th in enumerate(mlf.p.thresholds()):
            self.add(Population(pops[k], name, k, tuple(shape), float(th), float(mlf.p.tau)))
        return list(pops)


def _check_lowerable(model: nn.Module):
    if not isinstance(model, DSResNet):
        raise UserError(f"cannot lower {type(model).__name__}: only DSResNet models are supported")
    for name, m in model.named_modules():
        if not isinstance(m, _LOWERABLE):
            raise UserError(f"cannot lower module {name!r} of type {type(m).__name__}")
        if isinstance(m, nn.Conv2d) and (m.bias is not None or m.groups != 1 or m.dilation != (1, 1)
                                         or m.padding_mode != "zeros"):
            raise UserError(f"cannot lower conv {name!r}: only bias-free, ungrouped, undilated, "
                            "zero-padded convolutions are supported")


def lower(model: DSResNet, input_shape, encoding: str = "static",
          timesteps: int | None = None) -> Graph:
    """The float deployment graph of ``model`` for inputs of ``input_shape`` ``(C, H, W)``.

    Args:
        encoding: "static" (one image, direct encoding) or "events" (a frame per timestep).
        timesteps: model timesteps (defaults to the model's).
    """
    _check_lowerable(model)
    if encoding not in ("static", "events"):
        raise UserError(f"encoding must be 'static' or 'events', got {encoding!r}")
    model = model.eval()
    c, h, w = (int(d) for d in input_shape)
    steps = int(timesteps or model.timesteps)
    b = _Builder()
    fold = {}
    if model.input_bn is not None:  # computed on the host: the Input's gain and offset
        with torch.no_grad():
            scale, shift = _bn_scale_shift(model.input_bn)
        fold = {"gain": tuple(scale.numpy().tolist()), "offset": tuple(shift.numpy().tolist())}
    b.add(Input("input", (c, h, w), encoding, steps, **fold))

    def conv_inputs(role, sources, cbn: ConvBN, shape):
        wgt, bias = fold_conv_bn(cbn)
        k, s, p = cbn.conv.kernel_size[0], cbn.conv.stride[0], cbn.conv.padding[0]
        out = (wgt.shape[0], conv_output_size(shape[1], k, s, p),
               conv_output_size(shape[2], k, s, p))
        return (role, sources, wgt, s, p), bias, out

    inp, bias, shape = conv_inputs("conv", ["input"], model.stem, (c, h, w))
    current = b.layer("stem_mlf", model.stem_mlf, shape, bias, [inp])
    for i, block in enumerate(model.blocks):
        pre = f"blocks.{i}"
        inp1, bias1, shape1 = conv_inputs("conv1", current, block.branch1, shape)
        h_pops = b.layer(f"{pre}.mlf1", block.mlf1, shape1, bias1, [inp1])
        inp2, bias2, shape2 = conv_inputs("conv2", h_pops, block.branch2, shape1)
        if block.variant == "ds":
            skip = current
            if block.shortcut is not None:
                sc, sc_bias, _ = conv_inputs("conv", current, block.shortcut, shape)
                skip = b.layer(f"{pre}.mlf_shortcut", block.mlf_shortcut, shape2, sc_bias, [sc])
            current = b.layer(f"{pre}.mlf2", block.mlf2, shape2, bias2, [inp2]) + skip
        else:
            if block.shortcut is not None:
                sc, sc_bias, _ = conv_inputs("shortcut", current, block.shortcut, shape)
                bias2 = bias2 + sc_bias
            else:
                eye = np.eye(shape[0], dtype=np.float64)[:, :, None, None]
                sc = ("shortcut", current, eye, 1, 0)
            current = b.layer(f"{pre}.mlf2", block.mlf2, shape2, bias2, [inp2, sc])
        shape = shape2
    fc = model.fc
    b.add(Readout("readout", tuple(current), fc.weight.detach().double().numpy(),
                  fc.bias.detach().double().numpy()))
    meta = {"levels": model.stem_mlf.p.levels, "variant": model.variant, "timesteps": steps,
            "vth": model.stem_mlf.p.vth, "level_step": model.stem_mlf.p.level_step,
            "tau": model.stem_mlf.p.tau}
    return Graph(b.nodes, "float", meta)
