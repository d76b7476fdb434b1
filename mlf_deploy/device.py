"""The torch device a command computes on: ``cpu``, ``cuda`` (``cuda:N``) or ``auto``.

Verification and evaluation run torch code (the float64 model copy, the model on the integer grid,
the reference simulator), so they run where torch runs; ONNX Runtime and Lava stay on the CPU.
"""

from __future__ import annotations

import torch

from mlf_deploy.errors import UserError, option

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(name: str | torch.device = "cpu") -> torch.device:
    """``auto``: the first CUDA device when torch sees one, else the CPU. ``cuda`` without a CUDA
    device is one clear error rather than torch's traceback at the first tensor moved there."""
    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text != "cpu" and text.split(":")[0] != "cuda":
        raise UserError(f"{option('device')} must be one of {', '.join(DEVICES)}, got {name!r}")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{option('device', text)}: torch sees no CUDA device here (torch "
                        f"{torch.__version__}, built {'with' if torch.version.cuda else 'without'}"
                        f" CUDA); use {option('device', 'cpu')}, or auto to take a GPU when "
                        "there is one")
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise UserError(f"{option('device', repr(name))}: {exc}") from exc
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"{option('device', text)}: only {torch.cuda.device_count()} CUDA "
                        "device(s) here")
    return device
