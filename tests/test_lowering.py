"""Lowering: every architecture variant lowers, and the float graph reproduces torch spikes."""

import numpy as np
import pytest
import torch
from conftest import make_model, sample_input
from torch import nn

from mlf_deploy.errors import UserError
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.lowering import fold_conv_bn, lower
from mlf_deploy.runtimes.torch_backend import run_torch

VARIANTS = [
    dict(depth=8, levels=3, variant="ds"),
    dict(depth=8, levels=2, variant="ds"),
    dict(depth=8, levels=1, variant="plain"),
    dict(depth=14, levels=3, variant="plain"),
    dict(depth=14, levels=3, variant="ds", in_hw=(7, 9)),
    dict(depth=8, levels=3, variant="ds", in_hw=(5, 5), events=True, in_channels=2),
    dict(depth=20, levels=2, variant="ds", in_hw=(3, 4)),
]


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_float_graph_reproduces_torch(cfg):
    cfg = dict(cfg)
    in_hw, events = cfg.pop("in_hw", (8, 8)), cfg.pop("events", False)
    cin = cfg.pop("in_channels", 1)
    model = make_model(in_hw=in_hw, events=events, in_channels=cin, **cfg)
    graph = lower(model, (cin, *in_hw), "events" if events else "static")
    x = sample_input(12, cin, in_hw, events=events)
    rt, rf = run_torch(model, x), run_reference(graph, x)
    assert set(rt.spikes) == {p.name for p in graph.populations}
    total = sum(s.size for s in rt.spikes.values())
    mism = sum(int((rt.spikes[k] != rf.spikes[k]).sum()) for k in rt.spikes)
    assert mism <= total * 1e-4, f"{mism} of {total} spikes differ"
    assert sum(int(s.sum()) for s in rt.spikes.values()) > 0.02 * total  # the test has activity
    assert (rt.logits.argmax(1) == rf.logits.argmax(1)).all()
    np.testing.assert_allclose(rf.logits, rt.logits, atol=1e-4)


def test_structure_of_ds_fan_in_and_levels():
    model = make_model(depth=14, levels=3)  # 2 blocks per stage
    g = lower(model, (1, 8, 8))
    assert [p.v_threshold for p in g.populations_of("stem_mlf")] == pytest.approx([0.6, 1.6, 2.6])
    # stage 1: stem (3) -> block 0 adds 3 -> block 1 conv1 reads 6 populations, same weights
    into = g.projections_into("blocks.1.mlf1")
    assert len(into) == 6 and all(np.array_equal(p.weight, into[0].weight) for p in into)
    # the readout reads the last downsampling shortcut's 3 populations plus 2 blocks' mlf2 levels
    assert len(g.readout.sources) == 9
    assert g.summary()["max_fan_in"] == 9


def test_plain_identity_shortcut_is_an_identity_projection():
    g = lower(make_model(depth=8, variant="plain"), (1, 8, 8))
    sc = [p for p in g.projections_into("blocks.0.mlf2") if ".shortcut<-" in p.name]
    assert len(sc) == 3
    assert np.array_equal(sc[0].weight[:, :, 0, 0], np.eye(4, dtype=np.float32))


def test_bn_folding_is_exact_with_eps_outside_sqrt():
    model = make_model()
    cbn = model.stem
    w, b = fold_conv_bn(cbn)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        ref = cbn.bn(cbn.conv(x))
        bn = cbn.bn
        manual = (bn.alpha * bn.vth * (cbn.conv(x) - bn.running_mean[:, None, None])
                  / (bn.running_var.sqrt() + bn.eps)[:, None, None] * bn.weight[:, None, None]
                  + bn.bias[:, None, None])
        folded = (torch.nn.functional.conv2d(x.double(), torch.from_numpy(w), padding=1)
                  + torch.from_numpy(b)[:, None, None]).float()
    torch.testing.assert_close(manual, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(folded, ref, atol=1e-5, rtol=1e-5)


def test_lowering_names_what_it_cannot_lower():
    model = make_model()
    model.blocks[0].extra = nn.ReLU()
    with pytest.raises(UserError, match="blocks.0.extra"):
        lower(model, (1, 8, 8))
    with pytest.raises(UserError, match="only DSResNet"):
        lower(nn.Linear(2, 2), (1, 8, 8))
    with pytest.raises(UserError, match="encoding"):
        lower(make_model(), (1, 8, 8), "poisson")


def test_lowering_does_not_change_the_model():
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lower(model, (1, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
