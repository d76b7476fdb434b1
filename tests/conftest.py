"""Shared factories: small seeded DS-ResNets with realistic activity, their graphs and inputs."""

from __future__ import annotations

import os

# Triton kernels run in triton's CPU interpreter during the tests (tests/test_neuron_triton.py).
# Triton reads this when its language module is first imported, so it is set before anything
# imports triton; TRITON_INTERPRET=0 in the environment runs them compiled on a GPU instead.
os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np  # noqa: E402
import pytest
import torch

from mlf_deploy.checkpoint import save_checkpoint
from mlf_deploy.data import dataset_spec
from mlf_deploy.lowering import lower
from mlf_deploy.models import TdBatchNorm, ds_resnet
from mlf_deploy.quantization import quantize


def make_model(depth=8, widths=(4, 8, 8), in_channels=1, levels=3, variant="ds", timesteps=4,
               num_classes=10, in_hw=(8, 8), events=False, seed=0):
    """A random DS-ResNet whose BN statistics come from a few training-mode passes and whose BN
    shifts are raised so that every level fires sometimes (an untrained net is nearly silent)."""
    torch.manual_seed(seed)
    model = ds_resnet(depth, widths, in_channels, num_classes, levels, timesteps, variant)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(sample_input(8, in_channels, in_hw, timesteps, events, seed))
        for m in model.modules():
            if isinstance(m, TdBatchNorm):
                m.weight.uniform_(1.0, 2.5)
                m.bias.uniform_(0.0, 0.8)
    return model.eval()


def sample_input(batch, in_channels=1, in_hw=(8, 8), timesteps=4, events=False, seed=1):
    """Static images in [0, 2), or integer event counts 0..3 shaped (T, B, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    if events:
        return torch.randint(0, 4, (timesteps, batch, in_channels, *in_hw), generator=g).float()
    return torch.rand(batch, in_channels, *in_hw, generator=g) * 2


def make_graphs(model, in_channels=1, in_hw=(8, 8), events=False, weight_bits=8):
    """(float graph, int graph) of ``model`` for static inputs in [0, 2) or event counts."""
    g = lower(model, (in_channels, *in_hw), "events" if events else "static")
    q, _ = quantize(g, weight_bits, input_max=None if events else 2.0)
    return g, q


TINY_ARGS = dict(depth=8, widths=(4, 8, 8), in_channels=1, num_classes=10, levels=3, timesteps=4,
                 variant="ds")


def write_checkpoint(path, seed=0, **changes):
    """A checkpoint of :func:`make_model` on the embedded digits data; ``changes`` replace
    entries."""
    model = make_model(seed=seed)
    ckpt = {"model_args": dict(TINY_ARGS), "state_dict": model.state_dict(),
            "dataset": dataset_spec("digits", seed=0), "config": {}, "metrics": {}, "epoch": 0}
    ckpt.update(changes)
    save_checkpoint(path, ckpt)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny checkpoint shared by the tests of one module (the CLI reads it, never changes it)."""
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "checkpoint.pt")


@pytest.fixture
def small_model():
    return make_model()


@pytest.fixture
def small_graphs(small_model):
    return make_graphs(small_model)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
