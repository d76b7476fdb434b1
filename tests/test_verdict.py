"""Verdicts that do not depend on the sample count: exact backends exact, the quantized graph
judged by a binomial test on its paired top-1 disagreements, the rule stated with the verdict."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import binom

from mlf_deploy.commands.app import main
from mlf_deploy.runtimes.agreement import clopper_pearson, disagreement_verdict, one_sided_lower
from mlf_deploy.runtimes.backends import BACKENDS


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("k,n", [(0, 16), (1, 16), (3, 16), (1, 360), (12, 360), (16, 16)])
def test_clopper_pearson_matches_the_binomial_tails(k, n):
    lo, hi = clopper_pearson(k, n)
    # The exact interval's ends are where a binomial tail equals 2.5 % (scipy's binom, not beta).
    if k > 0:
        assert binom.sf(k - 1, n, lo) == pytest.approx(0.025, rel=1e-6)
    else:
        assert lo == 0.0
    if k < n:
        assert binom.cdf(k, n, hi) == pytest.approx(0.025, rel=1e-6)
    else:
        assert hi == 1.0
    if k > 0:
        assert binom.sf(k - 1, n, one_sided_lower(k, n)) == pytest.approx(0.05, rel=1e-6)


def test_a_faithful_backend_passes_at_any_sample_count():
    # The measured quantized digits model: 1 class change in 360; at 2 % the test holds its level.
    for n, k in [(16, 0), (16, 1), (64, 1), (360, 1), (360, 9)]:
        assert disagreement_verdict(k, n)["passed"], (k, n)
    for n in (16, 64, 360, 2000):
        p_fail = binom.sf(np.arange(n + 1), n, 0.02)  # P(K > k) at the bound's rate
        first_failing = next(k for k in range(n + 1) if not disagreement_verdict(k, n)["passed"])
        assert p_fail[first_failing - 1] <= 0.05  # failing a 2 % backend has probability <= 5 %


def test_an_unfaithful_backend_fails():
    assert not disagreement_verdict(3, 16)["passed"]
    assert not disagreement_verdict(20, 360)["passed"]
    v = disagreement_verdict(3, 16)
    assert v["ci95"][0] < 3 / 16 < v["ci95"][1] and v["bound"] == 0.02


def test_every_backend_states_its_rule_in_json_and_table(ckpt):
    res = run("verify", ckpt, "--samples", "4", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.splitlines()[-1])
    for name, b in out["backends"].items():
        assert b["tolerance"] == BACKENDS[name].rule and b["samples"] == 4
        assert f"  {name}: {BACKENDS[name].rule}" in res.stdout
    st = out["backends"]["ir-int"]["statistics"]
    assert st["samples"] == 4 and len(st["ci95"]) == 2 and "95 % CI" in res.stdout


@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory):
    """The digits model trained as `demo --quick` trains it (4 epochs; test accuracy ~0.97)."""
    from mlf_deploy.training import TrainConfig, train
    out = tmp_path_factory.mktemp("digits")
    return train(TrainConfig(dataset="digits", out_dir=str(out), seed=0, epochs=4),
                 progress=False, log=lambda *a: None)["checkpoint"]


def with_threshold_doubled(graph_file, out):
    """The exported int graph with the first population's threshold doubled: a deployment bug
    that the checkpoint, and so torch and ir-float, do not share."""
    import dataclasses

    from mlf_deploy.ir import Graph, load_graph, save_graph
    graph = load_graph(graph_file)
    pop = graph.populations[0]
    nodes = dict(graph.nodes)
    nodes[pop.name] = dataclasses.replace(pop, v_threshold=2 * pop.v_threshold)
    save_graph(Graph(nodes, graph.numeric, graph.metadata), out)
    return pop.name


@pytest.mark.slow
def test_default_verify_passes_a_good_model_and_fails_a_corrupted_one(trained_digits, tmp_path):
    for samples in (16, 64, 360):
        res = run("verify", trained_digits, "--samples", samples, "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout.splitlines()[-1])["passed"] is True
    assert run("export", trained_digits, "-o", tmp_path / "good.mlfg").exit_code == 0
    with_threshold_doubled(tmp_path / "good.mlfg", tmp_path / "bad.mlfg")
    res = run("verify", trained_digits, "--graph", tmp_path / "bad.mlfg", "--json")  # 16 samples
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["backends"]["ir-int"]["within_tolerance"] is False
    assert out["backends"]["ir-float"]["within_tolerance"] is True
    assert "95 % CI" in res.stdout


def test_the_spike_rule_applies_from_8_bits_and_does_not_scale_with_samples():
    from mlf_deploy.runtimes.agreement import spike_verdict
    assert spike_verdict(213, 10_000, 8)["passed"] and not spike_verdict(515, 10_000, 8)["passed"]
    assert spike_verdict(515, 10_000, 6)["passed"] and not spike_verdict(515, 10_000, 6)["applies"]
    assert spike_verdict(2134, 100_000, 8) == spike_verdict(21_340, 1_000_000, 8)
