"""The fused Triton MLF kernels against the torch path, without a GPU.

Triton's interpreter (``TRITON_INTERPRET=1``, which must be set before triton is first imported:
tests/conftest.py does it) runs the kernels' own code with numpy on CPU tensors, so
the forward and backward arithmetic below is the kernels', not a re-implementation. The torch path
(``mlf_deploy.neuron._MLFSequence``) is the reference: counts, per-level spikes identical;
membranes and input gradients within 1e-6. Shapes: the presets' K = 1..4, T = 1..10 (T = 40, the
dvs_gesture preset, is slow), sizes that leave a partial block, both reset gradient paths.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from mlf_deploy.neuron import MLF, _MLFSequence
from mlf_deploy.neuron_kernel import resolve_neuron_kernel, set_neuron_kernel

TOL = dict(rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def kernels():
    """``mlf_deploy.neuron_triton``, its kernels run in the interpreter on CPU tensors
    (tests/conftest.py sets ``TRITON_INTERPRET=1`` before triton is imported), or compiled on
    CUDA tensors when the environment sets ``TRITON_INTERPRET=0`` on a GPU machine."""
    pytest.importorskip("triton")
    from triton import knobs
    if not knobs.runtime.interpret and not torch.cuda.is_available():
        pytest.skip("TRITON_INTERPRET=0 compiles the kernels, which needs a CUDA device")
    module = importlib.import_module("mlf_deploy.neuron_triton")
    module.test_device = "cpu" if knobs.runtime.interpret else "cuda"
    return module


def thresholds(levels, vth=0.6, step=1.0):
    return torch.tensor([vth + k * step for k in range(levels)], dtype=torch.float32).view(-1, 1)


def inputs(steps, n, seed):
    """Currents spread over every level's threshold and surrogate window (0.6 .. 4.1), with some
    exactly on a threshold, where a strict/non-strict mix-up would show."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, n, generator=g) * 1.5 + 0.8
    x.view(-1)[::7] = 0.6
    x.view(-1)[3::11] = 1.6
    return x


def compare(kernels, steps, levels, n, detach_reset, width=1.0, tau=0.25, seed=0):
    on = kernels.test_device
    x = inputs(steps, n, seed).to(on)
    th = thresholds(levels).to(on)
    grad = torch.randn(steps, n, generator=torch.Generator().manual_seed(seed + 1)).to(on)
    results = []
    for fn in (_MLFSequence.apply, kernels.mlf_sequence_triton):
        xr = x.clone().requires_grad_(True)
        counts, _, _ = fn(xr, th, tau, width, detach_reset, False)
        counts.backward(grad)
        _, spikes, states = fn(x, th, tau, width, detach_reset, True)
        results.append((counts.detach(), spikes, states, xr.grad))
    (c_ref, s_ref, v_ref, g_ref), (c_tri, s_tri, v_tri, g_tri) = results
    assert torch.equal(c_tri, c_ref), (c_tri != c_ref).nonzero()[:5]
    assert torch.equal(s_tri, s_ref), (s_tri != s_ref).nonzero()[:5]
    torch.testing.assert_close(v_tri, v_ref, **TOL)
    torch.testing.assert_close(g_tri, g_ref, **TOL)
    # not silent: every level fired and the surrogate passed gradient somewhere
    assert bool((s_ref.sum(dim=(1, 2)) > 0).all()) and g_ref.abs().sum() > 0
    return g_ref


# (T, K, N): each preset's T with its K range; N leaves a partial block (BLOCK = 512) or is tiny
CASES = [(1, 1, 37), (1, 3, 513), (2, 2, 1), (3, 4, 1025), (4, 3, 700), (4, 1, 64), (4, 4, 33),
         (5, 2, 999), (7, 3, 129), (10, 3, 515), (10, 4, 77), (10, 1, 300)]


@pytest.mark.parametrize("steps,levels,n", CASES)
@pytest.mark.parametrize("detach_reset", [False, True])
def test_kernel_matches_torch_path(kernels, steps, levels, n, detach_reset):
    compare(kernels, steps, levels, n, detach_reset, seed=steps * 31 + levels * 7 + n)


def test_reset_gradient_path_is_exercised(kernels):
    """The reset term changes the gradient, and the kernel follows both settings."""
    with_reset = compare(kernels, 4, 3, 300, detach_reset=False, seed=5)
    detached = compare(kernels, 4, 3, 300, detach_reset=True, seed=5)
    assert not torch.allclose(with_reset, detached)


@pytest.mark.parametrize("width,tau", [(0.5, 0.25), (2.0, 0.5)])
def test_other_surrogate_width_and_tau(kernels, width, tau):
    compare(kernels, 4, 3, 200, detach_reset=False, width=width, tau=tau, seed=9)


@pytest.mark.slow
def test_dvs_gesture_timesteps(kernels):
    compare(kernels, 40, 3, 600, detach_reset=False, seed=40)


def test_module_runs_the_kernel_when_chosen(kernels):
    """``MLF`` with ``kernel = 'triton'`` calls the kernels (``(T, B, C, H, W)`` in and out) and
    gives the torch module's spikes and gradients."""
    x = inputs(4, 2 * 3 * 5 * 5, 3).view(4, 2, 3, 5, 5).to(kernels.test_device)
    outs = []
    for kernel in ("torch", "triton"):
        layer = MLF(levels=3)
        layer.kernel = kernel
        xr = x.clone().requires_grad_(True)
        out = layer(xr)
        out.pow(2).sum().backward()
        outs.append((out.detach(), xr.grad))
    assert torch.equal(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[1][1], outs[0][1], **TOL)


def test_kernel_choice():
    assert resolve_neuron_kernel("auto", "cpu") == "torch"
    assert resolve_neuron_kernel("torch", "cuda") == "torch"
    with pytest.raises(ValueError, match="neuron kernel"):
        resolve_neuron_kernel("cupy", "cpu")
    layer = torch.nn.Sequential(MLF(), torch.nn.Identity(), MLF())
    set_neuron_kernel(layer, "triton")
    assert [m.kernel for m in layer if isinstance(m, MLF)] == ["triton", "triton"]


@pytest.mark.slow
def test_train_with_the_triton_kernel(kernels, tmp_path):
    """``train --neuron-kernel triton`` reaches every MLF layer and is recorded in the checkpoint:
    one epoch on eight digits gives the torch path's loss and accuracies."""
    from mlf_deploy.checkpoint import read_checkpoint
    from mlf_deploy.training import TrainConfig, train

    if kernels.test_device != "cpu":
        pytest.skip("the interpreter's CPU run; on a GPU train_step.py times the compiled kernels")
    runs = {}
    for kernel in ("torch", "triton"):
        cfg = TrainConfig(dataset="digits", epochs=1, batch_size=4, max_samples=8, threads=1,
                          neuron_kernel=kernel, out_dir=str(tmp_path / kernel))
        runs[kernel] = train(cfg, progress=False, log=lambda *a: None)
    assert runs["triton"]["loss"] == pytest.approx(runs["torch"]["loss"], rel=1e-5)
    assert runs["triton"]["train_accuracy"] == runs["torch"]["train_accuracy"]
    assert runs["triton"]["test_accuracy"] == runs["torch"]["test_accuracy"]
    ckpt = read_checkpoint(runs["triton"]["checkpoint"])
    assert ckpt["config"]["neuron_kernel"] == "triton"
