"""Which implementation runs the MLF layers of a model: the torch reference path or the fused Triton
kernels (:mod:`mlf_deploy.neuron_triton`). Kept apart from both so that choosing never imports
triton.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import nn

from mlf_deploy.neuron import MLF

NEURON_KERNELS = ("auto", "torch", "triton")


def resolve_neuron_kernel(kernel: str, device) -> str:
    """``auto`` -> ``triton`` on CUDA when triton is installed, else ``torch``; ``triton`` on a
    device without CUDA is refused unless ``TRITON_INTERPRET=1`` (triton's CPU interpreter)."""
    if kernel not in NEURON_KERNELS:
        raise ValueError(f"neuron kernel must be one of {', '.join(NEURON_KERNELS)}, "
                         f"got {kernel!r}")
    on_cuda = torch.device(device).type == "cuda"
    has_triton = importlib.util.find_spec("triton") is not None
    if kernel == "auto":
        return "triton" if on_cuda and has_triton else "torch"
    if kernel == "triton" and not has_triton:
        raise ValueError("neuron kernel 'triton' needs the triton package (pip install triton)")
    if kernel == "triton" and not on_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("neuron kernel 'triton' runs on CUDA devices (or in triton's CPU "
                         "interpreter, TRITON_INTERPRET=1, which is for tests); use torch or auto")
    return kernel


def set_neuron_kernel(model: nn.Module, kernel: str) -> None:
    """Run every :class:`MLF` of ``model`` with ``kernel`` (``torch`` or ``triton``, resolved)."""
    if kernel not in ("torch", "triton"):
        raise ValueError(f"set_neuron_kernel takes 'torch' or 'triton', got {kernel!r}")
    for module in model.modules():
        if isinstance(module, MLF):
            module.kernel = kernel
