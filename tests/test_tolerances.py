"""The tolerance table: each check fails exactly past the limit its rule states, and the table in
docs/verdict.md is the one the code generates."""

from pathlib import Path

import pytest

from mlf_deploy.verification.backend_report import BackendReport
from mlf_deploy.verification.backends import BACKENDS, rules_table
from mlf_deploy.verification.tolerances import Limits

ROOT = Path(__file__).resolve().parents[1]


def _report(name, **fields):
    rep = BackendReport(name, BACKENDS[name].reference, accuracy=0.9, top1_agreement=1.0,
                        logits_max_abs_diff=0.0, state_mismatches=0,
                        populations=[{"agreement": 1.0}])
    for k, v in fields.items():
        setattr(rep, k, v)
    return rep


def test_the_docs_show_the_generated_table():
    assert rules_table() in (ROOT / "docs" / "verdict.md").read_text()


LIMITED = [n for n, b in BACKENDS.items() if isinstance(b.tolerance, Limits)]


@pytest.mark.parametrize("name", LIMITED)
def test_each_limit_holds_at_its_value_and_fails_past_it(name):
    tol = BACKENDS[name].tolerance
    assert tol(_report(name), 0.9)[0], BACKENDS[name].rule
    if tol.agreement is None:
        ok, why = tol(_report(name, spike_mismatches=1), 0.9)
        assert not ok and "1 spike mismatch" in why and BACKENDS[name].reference in why
    else:
        assert tol(_report(name, populations=[{"agreement": tol.agreement}]), 0.9)[0]
        assert not tol(_report(name, populations=[{"agreement": tol.agreement - 1e-6}]), 0.9)[0]
    if tol.logits is not None:
        assert tol(_report(name, logits_vs_ref=tol.logits), 0.9)[0]
        assert not tol(_report(name, logits_vs_ref=tol.logits + 1e-12), 0.9)[0]
        assert ("identical logits" if tol.logits == 0 else "logits within") in BACKENDS[name].rule
    else:
        assert tol(_report(name, logits_vs_ref=1.0), 0.9)[0] and "logits" not in BACKENDS[name].rule
    if tol.states is not None:
        assert not tol(_report(name, state_mismatches=1), 0.9)[0]
        assert "membrane" in BACKENDS[name].rule
        assert tol(_report(name, state_mismatches=None), 0.9)[0] is not tol.require_states
    else:
        assert tol(_report(name, state_mismatches=5), 0.9)[0]


def test_exact_is_said_only_of_exact_limits():
    for b in BACKENDS.values():
        if isinstance(b.tolerance, Limits):
            assert b.rule.startswith("exact") == b.tolerance.exact, b.rule
