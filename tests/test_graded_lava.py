"""Lava runs the graded lowering (our GradedMLF process sending the level count into Lava's graded
Conv and DelaySparse) and reproduces the *binary* graph on the reference simulator: per-level
spikes and membranes bit for bit in fixed point, spikes in float. Small nets, few runs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_graphs, make_model, sample_input
from test_graded import assert_equivalent

from mlf_deploy.exporters.lava.lava_import import lava_available
from mlf_deploy.graded_lowering import to_graded
from mlf_deploy.ir.reference import run_reference

pytestmark = [pytest.mark.lava,
              pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")]


def test_lava_fixed_graded_equals_binary_ir_int_k3_ds():
    from mlf_deploy.runtimes.lava import run_lava
    _, q = make_graphs(make_model())
    x = sample_input(2)
    result = run_lava(to_graded(q), x)
    assert result.backend == "lava-fixed-graded"
    assert_equivalent(result, run_reference(q, x), "int")


def test_lava_graded_k2_events_fixed_and_float():
    from mlf_deploy.runtimes.lava import run_lava
    g, q = make_graphs(make_model(levels=2, events=True), events=True)
    x = sample_input(2, events=True)
    assert_equivalent(run_lava(to_graded(q), x), run_reference(q, x), "int")
    result, ref = run_lava(to_graded(g), x), run_reference(g, x)
    assert result.backend == "lava-float-graded"
    for name in ref.spikes:
        assert np.array_equal(result.spikes[name], ref.spikes[name]), name


@pytest.mark.timeout(900)  # its Lava run alone may take the default 600 s on a loaded machine
def test_exported_graded_loader_runs_standalone_and_matches(tmp_path):
    import subprocess
    import sys

    from mlf_deploy.exporters.lava.export import export_lava

    _, q = make_graphs(make_model(widths=(2, 4, 4)))
    graded = to_graded(q)
    out = export_lava(graded, tmp_path / "net")
    x = sample_input(2)
    np.save(tmp_path / "x.npy", x.numpy())
    # -I: isolated mode, so the loader cannot import this project (nor its GradedMLF) by accident
    subprocess.run([sys.executable, "-I", str(out / "run_lava_network.py"), "--input",
                    str(tmp_path / "x.npy"), "--out", str(tmp_path / "r.npz")],
                   check=True, capture_output=True, timeout=600, cwd=tmp_path)
    ref = run_reference(q, x)
    with np.load(tmp_path / "r.npz") as r:
        np.testing.assert_allclose(r["logits"], ref.logits, rtol=0, atol=1e-12)
        for name in graded.readout.sources:
            count = sum(ref.spikes[level] for level in graded.sender_levels(name))
            np.testing.assert_array_equal(r[name.replace("/", "__")], count)


def test_graded_export_is_the_first_lava_use_of_a_fresh_process(tmp_path):
    # The demo exports before anything else has imported Lava: the export must apply the
    # Python 3.11 import fix itself.
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/tests']\n"
            "from conftest import make_graphs, make_model\n"
            "from mlf_deploy.graded_lowering import to_graded\n"
            "from mlf_deploy.exporters.lava.export import export_lava\n"
            "export_lava(to_graded(make_graphs(make_model())[1]), sys.argv[2])\n")
    subprocess.run([sys.executable, "-c", code, str(root), str(tmp_path / "net")], check=True,
                   capture_output=True, text=True, timeout=300)
    assert (tmp_path / "net" / "run_lava_network.py").is_file()
