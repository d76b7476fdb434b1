"""The MLF neuron against the paper-semantics oracle (tests/oracle.py).

Three implementations must agree: the fused module ``MLF`` (hand-written BPTT), the pure step
``mlf_step`` iterated over time (autograd through the surrogate), and the oracle loop (one autograd
function per level and timestep, as the paper's code). Inputs are biased towards the thresholds,
where a strict/non-strict comparison or a half-open surrogate window would show up.
"""

from contextlib import contextmanager

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlf_deploy import neuron
from mlf_deploy.neuron import MLF, MLFParameters, MLFState, initial_state, mlf_step

try:  # tests/ is a rootdir-less folder today; keep working if it becomes a package
    from oracle import mlf_loop
except ImportError:
    from tests.oracle import mlf_loop

# derandomize: the same examples on every run, so a failure reproduces and CI never flakes.
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
TOL = dict(rtol=1e-6, atol=1e-6)


def near(values, eps=(0.0, 1e-7, -1e-7, 1e-6, -1e-6)):
    return [v + e for v in values for e in eps]


# Exactly on / just around each default threshold and surrogate edge (vth +- a/2), and constant
# inputs whose decayed sum lands on a threshold: x + tau*x = 0.6 -> x = 0.48; 1.6 -> 1.28;
# 2.6 -> 2.08.
SPECIAL = near([0.6, 1.6, 2.6, 3.6, 0.1, 1.1, 2.1, 3.1]) + [0.48, 1.28, 2.08, 0.0, -0.5, 0.5, 1.0,
                                                             2.0, 3.0]


@st.composite
def mlf_cases(draw, levels=st.integers(1, 4)):
    p = MLFParameters(
        levels=draw(levels),
        vth=draw(st.sampled_from([0.6, 0.5, 1.0])),
        level_step=draw(st.sampled_from([1.0, 0.5, 0.75])),
        tau=draw(st.sampled_from([0.25, 0.0, 0.5, 0.9, 1.0])),
        surrogate_width=draw(st.sampled_from([1.0, 0.5, 2.0])),
        detach_reset=draw(st.booleans()),
    )
    shape = draw(st.tuples(st.integers(1, 6), st.integers(1, 3)) .flatmap(
        lambda tb: st.sampled_from([tb, (*tb, 2), (*tb, 2, 3)])))
    n = 1
    for d in shape:
        n *= d
    thresholds = p.thresholds()
    pool = st.one_of(
        st.sampled_from(SPECIAL + near(thresholds)),
        st.floats(-1.0, p.vth + p.levels * p.level_step + 0.5),  # cast to float32 below
    )
    if draw(st.booleans()):
        # constant over time: u then lands on vth after the decay for x = vth/(1+tau) etc.
        per_step = draw(st.lists(pool, min_size=n // shape[0], max_size=n // shape[0]))
        values = per_step * shape[0]
    else:
        values = draw(st.lists(pool, min_size=n, max_size=n))
    return p, torch.tensor(values, dtype=torch.float32).view(shape)


def oracle(x, p):
    return mlf_loop(x, p.levels, p.vth, p.level_step, p.tau, p.surrogate_width, p.detach_reset)


def run_steps(x, p):
    """``mlf_step`` iterated over time: counts ``(T, ...)``, spikes ``(K, T, ...)``, states."""
    state, outs, spikes, states = None, [], [], []
    for t in range(x.shape[0]):
        o, s, state = mlf_step(x[t], state, p)
        outs.append(o)
        spikes.append(s)
        states.append(state.u)
    return torch.stack(outs), torch.stack(spikes, 1), torch.stack(states, 1)


@contextmanager
def slice_size(n):
    """The fused module works on slices of ``_CHUNK`` elements; small ones test the seams."""
    old, neuron._CHUNK = neuron._CHUNK, n
    try:
        yield
    finally:
        neuron._CHUNK = old


def module(p):
    return MLF(p.levels, p.vth, p.level_step, p.tau, p.surrogate_width, p.detach_reset)


def forward_backward(fn, x, weight):
    """Output and ``d(sum(out * weight))/dx``; ``weight`` makes every output's gradient distinct."""
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    (out * weight).sum().backward()
    return out.detach(), x.grad


CHUNKS = st.sampled_from([1 << 16, 1, 4, 5])


@SETTINGS
@given(case=mlf_cases(), seed=st.integers(0, 2**16), chunk=CHUNKS)
def test_module_and_step_match_oracle(case, seed, chunk):
    p, x = case
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))

    ref_out, ref_grad = forward_backward(lambda z: oracle(z, p)[0], x, weight)
    with slice_size(chunk):
        mod_out, mod_grad = forward_backward(module(p), x, weight)
    step_out, step_grad = forward_backward(lambda z: run_steps(z, p)[0], x, weight)

    assert torch.equal(mod_out, ref_out)
    assert torch.equal(step_out, ref_out)
    # gradients are compared relative to their scale: with tau near 1 and a narrow surrogate
    # they grow geometrically over time, and float32 rounding grows with them.
    scale = max(1.0, ref_grad.abs().max().item())
    torch.testing.assert_close(mod_grad / scale, ref_grad / scale, **TOL)
    torch.testing.assert_close(step_grad / scale, ref_grad / scale, **TOL)


@SETTINGS
@given(case=mlf_cases(), chunk=CHUNKS)
def test_recorded_spikes_and_states(case, chunk):
    p, x = case
    m = module(p)
    m.record = True
    with slice_size(chunk):
        out = m(x)
    _, ref_levels = oracle(x, p)
    _, step_spikes, step_states = run_steps(x, p)

    spikes = m.recorded["spikes"]
    assert spikes.dtype == torch.uint8 and spikes.shape == (p.levels, *x.shape)
    assert torch.equal(spikes, torch.stack(ref_levels).to(torch.uint8))
    assert torch.equal(spikes, step_spikes.to(torch.uint8))
    assert torch.equal(out, spikes.sum(0).to(out.dtype))
    assert torch.equal(m.recorded["state"], step_states)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(case=mlf_cases(), seed=st.integers(0, 2**16), chunk=CHUNKS)
def test_float64(case, seed, chunk):
    p, x = case
    x = x.double()
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed),
                         dtype=torch.float64)
    ref_out, ref_grad = forward_backward(lambda z: oracle(z, p)[0], x, weight)
    for fn in (module(p), lambda z: run_steps(z, p)[0]):
        with slice_size(chunk):
            out, grad = forward_backward(fn, x, weight)
        assert out.dtype == torch.float64
        assert torch.equal(out, ref_out)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x, expected", [
    (0.5, [0, 1, 0, 1]),
    (1.0, [1, 1, 1, 1]),
    (2.0, [2, 2, 3, 2]),
    (3.0, [3, 3, 3, 3]),
])
def test_paper_sanity_sequence(x, expected):
    # docs/references.md §1: T=4, constant input, default K=3 neuron
    xs = torch.full((4, 1), x)
    expected = torch.tensor(expected, dtype=torch.float32)
    assert torch.equal(MLF()(xs)[:, 0], expected)
    assert torch.equal(run_steps(xs, MLFParameters())[0][:, 0], expected)
    assert torch.equal(mlf_loop(xs)[0][:, 0], expected)


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_exactly_on_threshold_does_not_fire_but_has_gradient(levels):
    p = MLFParameters(levels=levels)
    th = torch.tensor(p.thresholds())
    x = torch.stack([th, th + 1e-6, th - 1e-6]).view(1, 3, levels)  # (T=1, B=3, levels)
    out, grad = forward_backward(MLF(levels), x, torch.ones_like(x))
    k = torch.arange(levels, dtype=torch.float32)
    assert torch.equal(out[0, 0], k)  # strict '>': on vth_k, levels below k fire, k itself not
    assert torch.equal(out[0, 1], k + 1)
    assert torch.equal(out[0, 2], k)
    # the rectangle is open, |u - vth| < a/2, so exactly on vth_k levels k-1 and k+1 are outside
    # (|1| = a), and only level k contributes 1/a
    assert torch.equal(grad[0, 0], torch.ones(levels))


def test_initial_state_and_step_shapes():
    p = MLFParameters(levels=2)
    x = torch.rand(3, 4)
    s0 = initial_state(x, p)
    assert isinstance(s0, MLFState) and s0.u.shape == (2, 3, 4) and not s0.u.any()
    o, s, s1 = mlf_step(x, None, p)
    assert o.shape == (3, 4) and s.shape == (2, 3, 4) and s1.u.shape == (2, 3, 4)
    o2, _, _ = mlf_step(x, s0, p)
    assert torch.equal(o, o2)


def test_rejects_zero_levels():
    with pytest.raises(ValueError, match="levels"):
        MLF(levels=0)


@pytest.mark.parametrize("device", [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")),
])
def test_runs_on_input_device(device):
    x = (torch.rand(4, 2, 3, generator=torch.Generator().manual_seed(0)) * 3).to(device)
    x.requires_grad_(True)
    m = MLF()
    m.record = True
    out = m(x)
    out.sum().backward()
    assert out.device == x.device and x.grad.device == x.device
    assert m.recorded["spikes"].device == x.device and m.recorded["state"].device == x.device
    ref_out, ref_grad = forward_backward(lambda z: mlf_loop(z)[0], x.detach().cpu(),
                                         torch.ones(4, 2, 3))
    assert torch.equal(out.detach().cpu(), ref_out)
    torch.testing.assert_close(x.grad.cpu(), ref_grad, **TOL)
