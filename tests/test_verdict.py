"""Verdicts that do not depend on the sample count: exact backends exact, the quantized graph
judged by a per-layer check (tests/test_planted_faults.py) and by an exact paired test of its
accuracy drop, the rule stated with the verdict."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import binom, binomtest

from mlf_deploy.commands.app import main
from mlf_deploy.verification.agreement import accuracy_verdict, clopper_pearson, one_sided_lower
from mlf_deploy.verification.backends import BACKENDS


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


def test_the_paired_drop_bounds_hold_their_level_at_any_sample_count():
    # Simulated pairs whose true drop is exactly the tolerance (p_b - p_c = 1 pp): the test may
    # fail them at most 5 % of the time, at every sample count and discordance.
    rng = np.random.default_rng(0)
    for n in (16, 64, 360, 2000):
        for p_c in (0.0, 0.02, 0.1):
            draws = rng.multinomial(n, [p_c + 0.01, p_c, 1 - 2 * p_c - 0.01], size=400)
            fails = sum(not accuracy_verdict(int(b), int(c), n)["passed"] for b, c, _ in draws)
            assert fails / 400 <= 0.05, (n, p_c, fails)


def test_a_real_drop_fails_and_no_drop_passes():
    assert accuracy_verdict(0, 0, 16)["passed"] and accuracy_verdict(4, 3, 360)["passed"]
    assert accuracy_verdict(40, 2, 360)["passed"] is False  # 10.6 pp lost, shown above 1 pp
    assert accuracy_verdict(40, 2, 360, tolerance=0.2)["passed"]  # a user who accepts 20 pp
    v = accuracy_verdict(12, 4, 360)
    assert v["drop"] == 8 / 360 and v["drop_ci95"][0] < v["drop"] < v["drop_ci95"][1]
    assert v["mcnemar_p"] == pytest.approx(binomtest(12, 16, 0.5).pvalue)


def test_every_backend_states_its_rule_in_json_and_table(ckpt):
    res = run("verify", ckpt, "--samples", "4", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.splitlines()[-1])
    for name, b in out["backends"].items():
        assert b["tolerance"] == BACKENDS[name].rule and b["samples"] == 4
        assert f"  {name}: {BACKENDS[name].rule}" in res.stdout
    st = out["backends"]["ir-int"]["statistics"]
    assert st["task"]["samples"] == 4 and len(st["task"]["drop_ci95"]) == 2
    assert st["deployment"]["passed"] and "95 % CI" in res.stdout
    assert "correct deployment? yes" in res.stdout and "good enough? yes" in res.stdout


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
    assert out["backends"]["ir-int"]["layer_check"]["failed_layers"] == ["stem_mlf"]
    assert "95 % CI" in res.stdout and "correct deployment? NO" in res.stdout
