"""The trained torch model as a backend: the ground truth every deployed backend is compared
with."""

from __future__ import annotations

import copy

import numpy as np
import torch

from mlf_deploy.ir.semantics import population_name
from mlf_deploy.models import DSResNet
from mlf_deploy.results import RunResult


@torch.no_grad()
def run_torch(model: DSResNet, x: torch.Tensor, batch_size: int = 256,
              record_states: bool = True, dtype=torch.float64, device="cpu") -> RunResult:
    """Run ``model`` (eval mode) on raw input ``x`` and record every MLF level as a population named
    like the lowering names it (:func:`mlf_deploy.ir.semantics.population_name`).

    By default a float64 copy of the model runs: the graph backends compute in float64 too, so the
    comparison measures the deployment (folding, lowering, quantization) rather than float32
    rounding, which flips spikes whose membrane lands within ~1e-7 of a threshold. Pass
    ``dtype=torch.float32`` for the model exactly as trained."""
    return run_copy(recording_copy(model, dtype, device), x, batch_size, record_states)


def recording_copy(model: DSResNet, dtype=torch.float64, device="cpu") -> DSResNet:
    """The copy :func:`run_copy` runs (on ``device``): made once per verify, not once per chunk."""
    return copy.deepcopy(model).to(device, dtype).eval()


@torch.no_grad()
def run_copy(model: DSResNet, x: torch.Tensor, batch_size: int = 256,
             record_states: bool = True) -> RunResult:
    """:func:`run_torch` on a :func:`recording_copy` (its dtype is the run's)."""
    model.set_recording(True)
    param = next(model.parameters())
    x = x.to(param.device, param.dtype)
    events = x.dim() == 5
    parts = []
    try:
        for i in range(0, x.shape[1 if events else 0], batch_size):
            xb = x[:, i:i + batch_size] if events else x[i:i + batch_size]
            logits = model(xb)
            spikes, states = {}, {}
            for layer, rec in model.activity().items():
                for k in range(rec["spikes"].shape[0]):
                    spikes[population_name(layer, k)] = rec["spikes"][k].cpu().numpy()
                    if record_states:
                        states[population_name(layer, k)] = rec["state"][k].cpu().numpy()
            parts.append(RunResult("torch", "float", spikes, states,
                                   logits.double().cpu().numpy().astype(np.float64)))
    finally:
        model.set_recording(False)
    return parts[0] if len(parts) == 1 else RunResult.concat(parts)


def run_torch_int(model: DSResNet, grid, x: torch.Tensor, batch_size: int = 256,
                  device="cpu") -> RunResult:
    """The torch model on the deployment's integer grid (:class:`mlf_deploy.qat.IntegerForward`,
    what fine-tuning trains): every population's spikes and integer membranes, as ir-int records
    them, computed from the torch modules rather than from the graph."""
    from mlf_deploy.qat import IntegerForward

    fwd = IntegerForward(copy.deepcopy(model).to(device).eval(), grid, record=True)
    events = x.dim() == 5
    parts = []
    with torch.no_grad():
        for i in range(0, x.shape[1 if events else 0], batch_size):
            logits = fwd(x[:, i:i + batch_size] if events else x[i:i + batch_size]).cpu().numpy()
            parts.append(RunResult("torch-int", "int", fwd.spikes, fwd.states, logits,
                                   dict(fwd.overflow)))
    return parts[0] if len(parts) == 1 else RunResult.concat(parts)
