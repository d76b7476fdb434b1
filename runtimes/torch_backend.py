"""The trained torch model as a backend: the ground truth every deployed backend is compared with."""

from __future__ import annotations

import numpy as np
import torch

from mlf_deploy.models import DSResNet
from mlf_deploy.results import RunResult


@torch.no_grad()
def run_torch(model: DSResNet, x: torch.Tensor, batch_size: int = 256,
              record_states: bool = True) -> RunResult:
    """Run ``model`` (eval mode) on raw input ``x`` and record every MLF level as a population named
    like the lowering names it (``f"{layer}/L{k}"``)."""
    model = model.eval().set_recording(True)
    events = x.dim() == 5
    parts = []
    try:
        for i in range(0, x.shape[1 if events else 0], batch_size):
            xb = x[:, i:i + batch_size] if events else x[i:i + batch_size]
            logits = model(xb)
            spikes, states = {}, {}
            for layer, rec in model.activity().items():
                for k in range(rec["spikes"].shape[0]):
                    spikes[f"{layer}/L{k}"] = rec["spikes"][k].numpy()
                    if record_states:
                        states[f"{layer}/L{k}"] = rec["state"][k].numpy()
            parts.append(RunResult("torch", "float", spikes, states,
                                   logits.double().numpy().astype(np.float64)))
    finally:
        model.set_recording(False)
    return parts[0] if len(parts) == 1 else RunResult.concat(parts)
