"""DS-ResNet construction and tdBN semantics (docs/references.md §1)."""

import math

import pytest
import torch

from mlf_deploy.models import PRESETS, ConvBN, DSResNet, TdBatchNorm, ds_resnet, preset
from mlf_deploy.neuron import MLF

TINY = (2, 4, 8)  # stage widths that keep deep variants fast


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, count", [
    ("cifar10", 4_327_754), ("dvs_gesture", 272_395), ("cifar10_dvs", 696_330),
])
def test_preset_parameter_counts(name, count):
    # the counts the paper's code gives (docs/references.md §1), BN affine included
    assert n_params(preset(name)) == count
    assert n_params(preset(name, variant="plain")) == count


def test_preset_names():
    assert {"cifar10", "dvs_gesture", "cifar10_dvs"} <= PRESETS.keys()
    assert n_params(preset("cifar10-dvs")) == 696_330
    with pytest.raises(ValueError, match="unknown preset"):
        preset("imagenet")


@pytest.mark.parametrize("depth", [8, 14, 20, 32, 44, 56])
def test_every_6n_plus_2_depth_builds(depth):
    torch.manual_seed(0)
    model = ds_resnet(depth, widths=TINY, timesteps=2)
    n = (depth - 2) // 6
    assert len(model.blocks) == 3 * n
    # convs: stem + 2 per block + the 2 downsampling 1x1 shortcuts; +1 linear = depth + 2 layers
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == depth - 1 + 2
    assert model(torch.randn(1, 3, 8, 8, generator=gen())).shape == (1, 10)


@pytest.mark.parametrize("depth", [7, 9, 15, 21, 2, 0, -4, 20.0])
def test_bad_depth_names_the_rule(depth):
    with pytest.raises(ValueError, match=r"6n\+2"):
        DSResNet(depth=depth)


def test_bad_variant_and_widths():
    with pytest.raises(ValueError, match="variant"):
        DSResNet(depth=14, variant="resnet")
    with pytest.raises(ValueError, match="widths"):
        DSResNet(depth=14, widths=(4, 8))


@pytest.mark.parametrize("variant", ["ds", "plain"])
def test_variants_wire_the_shortcut_as_specified(variant):
    model = ds_resnet(14, widths=TINY, variant=variant)
    block = model.blocks[2]  # first block of stage 2: downsampling shortcut
    assert block.shortcut is not None
    assert (block.mlf_shortcut is not None) == (variant == "ds")
    assert model.blocks[0].shortcut is None  # same width, stride 1: identity
    # DS adds after firing, so block outputs exceed K; plain fires last, so they stay in 0..K
    model.set_recording(True)
    acts = []
    model.blocks[1].register_forward_hook(lambda m, i, o: acts.append(o))
    model(torch.randn(2, 3, 8, 8, generator=gen()) * 3)
    out = acts[0]
    assert torch.equal(out, out.round()) and out.min() >= 0
    if variant == "plain":
        assert out.max() <= 3
    else:
        assert out.max() <= 9  # stem (<=3) + two DS blocks (<=3 each)


def test_static_input_is_repeated_over_time():
    torch.manual_seed(0)
    model = ds_resnet(14, widths=TINY, timesteps=3).eval()
    x = torch.randn(2, 3, 6, 6, generator=gen())
    static = model(x)
    event = model(x.unsqueeze(0).expand(3, *x.shape).contiguous())
    assert static.shape == (2, 10)
    torch.testing.assert_close(static, event, rtol=0, atol=0)


def test_event_input_uses_its_own_length():
    model = preset("dvs_gesture", widths=TINY)  # T=40 preset, input tdBN on raw counts
    frames = torch.randint(0, 5, (7, 2, 2, 9, 9), generator=gen()).float()
    assert model(frames).shape == (2, 11)
    with pytest.raises(ValueError, match="input"):
        model(torch.zeros(2, 9, 9))


@pytest.mark.parametrize("hw", [(7, 9), (5, 5), (1, 1), (32, 32)])
def test_odd_input_sizes(hw):
    model = ds_resnet(14, widths=TINY, timesteps=2)
    assert model(torch.randn(3, 3, *hw, generator=gen())).shape == (3, 10)


def tdbn_formula(x, mean, var, alpha, vth, eps, gamma, beta):
    shape = (1, -1, 1, 1)
    y = alpha * vth * (x - mean.view(shape)) / (var.view(shape).sqrt() + eps)
    return y * gamma.view(shape) + beta.view(shape)


def test_tdbn_training_formula_and_running_stats():
    torch.manual_seed(0)
    c = 4
    x = torch.randn(6, c, 3, 5, generator=gen(1), dtype=torch.float64) * 2 + 1
    x[:, 3] = 0.5 + 1e-3 * x[:, 3]  # tiny variance: eps outside the sqrt matters here (~2%)
    bn = TdBatchNorm(c, alpha=0.7, vth=0.6).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, -0.5, 1.5]))
        bn.bias.copy_(torch.tensor([0.0, 0.1, -0.2, 0.3]))
    y = bn(x)

    flat = x.transpose(0, 1).reshape(c, -1)  # statistics per channel over batch(time) and space
    mean, var = flat.mean(1), flat.var(1, unbiased=False)
    expected = tdbn_formula(x, mean, var, 0.7, 0.6, 1e-5, bn.weight.detach(), bn.bias.detach())
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    # the torch BN formula differs measurably on the low-variance channel
    bn_std = 0.7 * 0.6 * (x[:, 3] - mean[3]) / (var[3] + 1e-5).sqrt() * 1.5 + 0.3
    assert not torch.allclose(y[:, 3], bn_std, rtol=1e-3)

    n = flat.shape[1]
    torch.testing.assert_close(bn.running_mean, 0.1 * mean)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * var * n / (n - 1))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * flat.var(1, unbiased=True))
    assert int(bn.num_batches_tracked) == 1

    bn.eval()
    x2 = torch.randn(2, c, 3, 5, generator=gen(2), dtype=torch.float64)
    eval_expected = tdbn_formula(x2, bn.running_mean, bn.running_var, 0.7, 0.6, 1e-5,
                                 bn.weight.detach(), bn.bias.detach())
    torch.testing.assert_close(bn(x2), eval_expected, rtol=1e-12, atol=1e-12)
    scale, shift = bn.scale_shift(bn.running_mean, bn.running_var)
    torch.testing.assert_close(x2 * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1),
                               eval_expected)


def test_tdbn_without_affine():
    bn = TdBatchNorm(3, affine=False)
    x = torch.randn(4, 3, 2, 2, generator=gen(3))
    flat = x.transpose(0, 1).reshape(3, -1)
    expected = tdbn_formula(x, flat.mean(1), flat.var(1, unbiased=False), 1.0, 0.6, 1e-5,
                            torch.ones(3), torch.zeros(3))
    torch.testing.assert_close(bn(x), expected)


def test_conv_bn_statistics_span_time_and_batch():
    layer = ConvBN(2, 3, 1, 1, vth=0.6)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
    x = torch.randn(4, 2, 2, 5, 5, generator=gen(4))
    x[1] += 3  # a timestep with another mean: per-timestep statistics would remove it
    y = layer(x)
    assert y.shape == (4, 2, 3, 5, 5)
    z = layer.conv(x.flatten(0, 1))
    flat = z.detach().transpose(0, 1).reshape(3, -1)
    expected = tdbn_formula(z, flat.mean(1), flat.var(1, unbiased=False), 1.0, 0.6, 1e-5,
                            torch.ones(3), torch.zeros(3))
    torch.testing.assert_close(y.flatten(0, 1), expected, rtol=1e-5, atol=1e-5)
    per_step_mean = y.detach().mean(dim=(1, 3, 4))  # (T, C)
    assert (per_step_mean[1] > per_step_mean[0] + 0.5).all()


@pytest.mark.parametrize("variant", ["ds", "plain"])
def test_gradients_reach_every_parameter(variant):
    torch.manual_seed(0)
    model = ds_resnet(14, widths=(4, 8, 8), timesteps=3, variant=variant)
    x = torch.randn(4, 3, 8, 8, generator=gen(5))
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_recording_and_activity_shapes():
    torch.manual_seed(0)
    model = ds_resnet(14, widths=TINY, timesteps=3, levels=2)
    layers = model.mlf_layers()
    # stem, two per block, and the MLF on each of the two DS downsampling shortcuts
    assert len(layers) == 1 + 2 * 6 + 2 and all(isinstance(m, MLF) for m in layers.values())
    x = torch.randn(2, 3, 7, 9, generator=gen(6))
    model(x)
    assert all(not rec for rec in model.activity().values())  # off by default

    model.set_recording(True)
    model(x)
    act = model.activity()
    assert act.keys() == layers.keys()
    widths = {"stem_mlf": (2, 7, 9)}
    for name, rec in act.items():
        spikes, state = rec["spikes"], rec["state"]
        assert spikes.dtype == torch.uint8 and spikes.shape[:3] == (2, 3, 2), name
        assert state.shape == spikes.shape and state.dtype == torch.float32, name
        assert spikes.max() <= 1
        if name in widths:
            assert spikes.shape[3:] == widths[name]
    assert act["blocks.5.mlf2"]["spikes"].shape == (2, 3, 2, 8, 2, 3)
    counts = model.spike_counts()
    assert counts.keys() == layers.keys()
    assert counts["stem_mlf"] == float(act["stem_mlf"]["spikes"].sum())

    model.set_recording(False)
    model(x)
    assert all(not rec for rec in model.activity().values())


def test_forward_is_deterministic_and_finite():
    torch.manual_seed(0)
    model = preset("cifar10_dvs", widths=TINY, timesteps=2).eval()
    x = torch.randn(1, 2, 2, 42, 42, generator=gen(7))
    a, b = model(x), model(x)
    assert torch.equal(a, b) and torch.isfinite(a).all() and not math.isnan(float(a.detach().sum()))


def test_bf16_autocast_keeps_neurons_in_float32():
    torch.manual_seed(0)
    model = ds_resnet(14, widths=(4, 8, 8), timesteps=3)
    x = torch.randn(4, 3, 8, 8, generator=gen(6))
    model.set_recording(True)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert model.stem.bn.running_mean.dtype == torch.float32
    assert all(r["state"].dtype == torch.float32 for r in model.activity().values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
