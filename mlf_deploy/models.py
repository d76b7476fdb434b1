r"""Spiking DS-ResNets with MLF neurons (Feng et al., IJCAI 2022), and the plain spiking ResNet
baseline.

Tensors inside the network are ``(T, B, C, H, W)``; convolutions and tdBN fold time into the batch.
A block computes ``h = MLF(tdBN(conv(x)))``, ``r = tdBN(conv(h))`` and then

* ``variant="ds"`` (dormant-suppressed, fire before the add): ``out = MLF(r) + shortcut(x)``;
* ``variant="plain"`` (fire after the add): ``out = MLF(r + shortcut(x))``.

A downsampling shortcut is ``conv1x1(stride) -> tdBN`` (``-> MLF`` in the DS variant). The stem is
``conv3x3 -> tdBN -> MLF``; the readout is a global average pool and a linear layer per timestep,
the logits averaged over time.
"""

from __future__ import annotations

import torch
from torch import nn

from mlf_deploy.neuron import MLF


class TdBatchNorm(nn.BatchNorm2d):
    r"""Threshold-dependent BatchNorm, as the paper's code computes it.

    .. math:: y = \gamma\,\frac{\alpha V_{th} (x - \mu)}{\sqrt{\sigma^2} + \epsilon} + \beta

    Statistics per channel over time, batch and space; eps is added *outside* the square root; the
    running variance is stored unbiased. Input ``(N, C, H, W)`` with time folded into N.
    """

    def __init__(self, channels, alpha=1.0, vth=0.6, eps=1e-5, momentum=0.1, affine=True):
        super().__init__(channels, eps=eps, momentum=momentum, affine=affine)
        self.alpha, self.vth = alpha, vth

    def forward(self, x):
        # Under autocast the conv hands over bf16/fp16: statistics and the membrane input it feeds
        # stay float32 (bf16 cannot be lerped into the float32 running buffers, and a bf16
        # threshold of 0.6 would read 0.6016). A no-op for float32 and float64 input.
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        if self.training:
            var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
            n = x.numel() / x.shape[1]
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        scale, shift = self.scale_shift(mean, var)
        return x * scale[:, None, None] + shift[:, None, None]

    def scale_shift(self, mean, var):
        """Per-channel ``(scale, shift)`` with ``y = x * scale + shift`` (also used to fold BN)."""
        scale = self.alpha * self.vth / (var.sqrt() + self.eps)
        if self.affine:
            scale = scale * self.weight
        shift = -mean * scale
        if self.affine:
            shift = shift + self.bias
        return scale, shift


def _per_step(module, x):
    """Apply a 2-D module to ``(T, B, C, H, W)`` by folding time into the batch."""
    y = module(x.flatten(0, 1))
    return y.view(*x.shape[:2], *y.shape[1:])


class ConvBN(nn.Module):
    """``conv (no bias) -> tdBN`` over ``(T, B, C, H, W)``."""

    def __init__(self, cin, cout, kernel, stride, vth):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)
        self.bn = TdBatchNorm(cout, vth=vth)

    def forward(self, x):
        return _per_step(lambda z: self.bn(self.conv(z)), x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, variant, mlf_kwargs):
        super().__init__()
        vth = mlf_kwargs["vth"]
        self.variant = variant
        self.branch1 = ConvBN(cin, cout, 3, stride, vth)
        self.mlf1 = MLF(**mlf_kwargs)
        self.branch2 = ConvBN(cout, cout, 3, 1, vth)
        self.mlf2 = MLF(**mlf_kwargs)
        self.shortcut = None
        self.mlf_shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = ConvBN(cin, cout, 1, stride, vth)
            if variant == "ds":
                self.mlf_shortcut = MLF(**mlf_kwargs)

    def forward(self, x):
        r = self.branch2(self.mlf1(self.branch1(x)))
        skip = x
        if self.shortcut is not None:
            skip = self.shortcut(x)
            if self.mlf_shortcut is not None:
                skip = self.mlf_shortcut(skip)
        if self.variant == "ds":
            return self.mlf2(r) + skip
        return self.mlf2(r + skip)


class DSResNet(nn.Module):
    """Spiking (DS-)ResNet over static images ``(B, C, H, W)`` or event frames ``(T, B, C, H, W)``.

    Returns logits ``(B, num_classes)`` averaged over time. Set ``record=True`` (``set_recording``)
    to keep every MLF layer's per-level spikes and states of the last call (``activity()``).
    """

    def __init__(self, depth=20, widths=(16, 32, 64), in_channels=3, num_classes=10, levels=3,
                 timesteps=4, variant="ds", input_bn=False, vth=0.6, level_step=1.0, tau=0.25,
                 surrogate_width=1.0, detach_reset=False):
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (14, 20, 32, ...), got {depth}")
        if variant not in ("ds", "plain"):
            raise ValueError(f"variant must be 'ds' or 'plain', got {variant!r}")
        if len(widths) != 3:
            raise ValueError(f"widths must give 3 stage widths, got {widths}")
        self.timesteps, self.variant = timesteps, variant
        mlf_kwargs = dict(levels=levels, vth=vth, level_step=level_step, tau=tau,
                          surrogate_width=surrogate_width, detach_reset=detach_reset)
        self.input_bn = TdBatchNorm(in_channels, vth=vth, affine=False) if input_bn else None
        self.stem = ConvBN(in_channels, widths[0], 3, 1, vth)
        self.stem_mlf = MLF(**mlf_kwargs)
        blocks, cin = [], widths[0]
        for stage, width in enumerate(widths):
            for i in range((depth - 2) // 6):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(cin, width, stride, variant, mlf_kwargs))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def encode(self, x):
        """Static ``(B, C, H, W)`` repeated over T (direct encoding), or frames used as they are."""
        if x.dim() == 4:
            return x.unsqueeze(0).expand(self.timesteps, *x.shape)
        if x.dim() == 5:
            return x
        raise ValueError("expected (B, C, H, W) or (T, B, C, H, W) input, got shape "
                         f"{tuple(x.shape)}")

    def forward(self, x):
        x = self.encode(x)
        if self.input_bn is not None:
            x = _per_step(self.input_bn, x)
        x = self.blocks(self.stem_mlf(self.stem(x)))
        return self.fc(x.mean(dim=(0, 3, 4)))

    def mlf_layers(self) -> dict[str, MLF]:
        return {name: m for name, m in self.named_modules() if isinstance(m, MLF)}

    def set_recording(self, on: bool = True):
        for m in self.mlf_layers().values():
            m.record, m.recorded = on, {}
        return self

    def activity(self) -> dict[str, dict[str, torch.Tensor]]:
        """Per MLF layer: ``spikes`` ``(K, T, B, C, H, W)`` uint8 and post-reset ``state``."""
        return {name: m.recorded for name, m in self.mlf_layers().items()}

    def spike_counts(self) -> dict[str, float]:
        """Total spike count (sum over levels) per MLF layer for the last recorded call."""
        return {n: float(r["spikes"].sum()) for n, r in self.activity().items() if r}


PRESETS = {
    "cifar10": dict(depth=20, widths=(64, 128, 256), in_channels=3, num_classes=10, timesteps=4),
    "dvs_gesture": dict(depth=20, widths=(16, 32, 64), in_channels=2, num_classes=11, timesteps=40,
                        input_bn=True),
    "cifar10_dvs": dict(depth=14, widths=(32, 64, 128), in_channels=2, num_classes=10,
                        timesteps=10),
    "digits": dict(depth=14, widths=(16, 32, 64), in_channels=1, num_classes=10, timesteps=4),
}


def ds_resnet(depth, widths=(16, 32, 64), in_channels=3, num_classes=10, levels=3, timesteps=4,
              variant="ds", **kwargs) -> DSResNet:
    return DSResNet(depth=depth, widths=tuple(widths), in_channels=in_channels,
                    num_classes=num_classes, levels=levels, timesteps=timesteps, variant=variant,
                    **kwargs)


def preset_args(name: str, **overrides) -> dict:
    """The constructor arguments of a named preset, with overrides applied."""
    key = name.replace("-", "_")
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    args = {"levels": 3, "variant": "ds", **PRESETS[key]}
    args.update({k: v for k, v in overrides.items() if v is not None})
    if "widths" in args:
        args["widths"] = tuple(args["widths"])
    return args


def preset(name: str, **overrides) -> DSResNet:
    return DSResNet(**preset_args(name, **overrides))
