"""The range of a training split's inputs, measured once at training time and kept in the
checkpoint.

Quantization needs the largest value the network's input can deliver (``input_max``), which is a
property of the training data. Measuring it means reading the whole training split: 2.3 GB for
CIFAR-10, every recording of a DVS set. So ``train`` (and ``finetune``) measure it once and store
it in the checkpoint as ``ckpt['input']``; export, verify and energy read it from there. Only a
checkpoint written before the field existed makes them read the split again.

The stored record is what lowering and quantization need and nothing else: the sample ``shape``
``[C, H, W]``, the ``timesteps`` of event frames (None for static images) and the per-channel
``min`` and ``max``. Minima and maxima are exact (no summation), so a range measured batch by batch
equals one measured on the whole split in memory, and the graph made from it is the same.
"""

from __future__ import annotations

import torch

from mlf_deploy.data.streaming import batches
from mlf_deploy.errors import UserError


def _reduce(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel minimum and maximum of a ``(B, C, H, W)`` or ``(B, T, C, H, W)`` batch."""
    dims = (0, 1, 3, 4) if x.dim() == 5 else (0, 2, 3)
    return x.amin(dim=dims), x.amax(dim=dims)


def _record(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> dict:
    events = x.dim() == 5
    return {"shape": [int(s) for s in x.shape[-3:]],
            "timesteps": int(x.shape[1]) if events else None,
            "min": lo.double().tolist(), "max": hi.double().tolist()}


def tensor_range(x: torch.Tensor, what: str = "the training split") -> dict:
    """The range record of a whole split held as one tensor (as ``load_split`` returns it)."""
    if len(x) == 0:
        raise UserError(f"{what} is empty; the input range needs at least one sample")
    return _record(x, *_reduce(x))


def split_range(dataset, what: str = "the training split", workers: int = 0,
                batch_size: int = 256) -> dict:
    """The range record of a split read batch by batch (``open_split``'s Dataset): memory holds one
    batch, whatever the size of the split."""
    if len(dataset) == 0:
        raise UserError(f"{what} is empty; the input range needs at least one sample")
    lo = hi = first = None
    for x, _ in batches(dataset, range(len(dataset)), batch_size, workers):
        b_lo, b_hi = _reduce(x)
        lo = b_lo if lo is None else torch.minimum(lo, b_lo)
        hi = b_hi if hi is None else torch.maximum(hi, b_hi)
        first = x[:1] if first is None else first
    return _record(first, lo, hi)
