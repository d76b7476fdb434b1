"""The demo report prints the lowerings' tables once: evaluate leaves them to the energy section."""

from __future__ import annotations

from mlf_deploy.workflows.analysis import energy_report, evaluate_report
from mlf_deploy.workflows.options import EnergyOptions, EvaluateOptions
from mlf_deploy.workflows.pipeline import load_pipeline

TABLES = ("binary (one LIF per level) against graded", "Loihi 1 per-event bill (SANA-FE")


def test_evaluate_can_leave_the_lowerings_to_the_energy_section(ckpt):
    pipe = load_pipeline(ckpt)
    energy_text, _ = energy_report(pipe, EnergyOptions(samples=4))
    sweep = EvaluateOptions(weight_bits=(8,), timesteps=(4,), samples=4)
    full, full_dict = evaluate_report(pipe, sweep)
    short, short_dict = evaluate_report(pipe, sweep, lowerings_text=False)
    for table in TABLES:
        assert energy_text.count(table) == full.count(table) == 1
        assert table not in short
    assert full.startswith(short)
    assert short_dict["forms"] == full_dict["forms"]  # the JSON keeps them
