"""Golden traces (lava-dl netx style): every population's spikes and states, error == 0, against
traces stored when the semantics were last reviewed. A change in lowering cannot hide here: the
stored graph files are run as they are."""

from pathlib import Path

import numpy as np
import pytest

from mlf_deploy.ir import load_graph
from mlf_deploy.ir.reference import run_reference

GOLDEN = Path(__file__).parent.parent / "golden"


@pytest.mark.parametrize("numeric", ["int", "float"])
def test_reference_reproduces_golden_trace(numeric):
    graph = load_graph(GOLDEN / f"ds8_{numeric}.mlfg")
    x = np.load(GOLDEN / "input.npy")
    trace = np.load(GOLDEN / f"ds8_{numeric}_trace.npz")
    res = run_reference(graph, x)
    assert len(res.spikes) == len(graph.populations) == 27
    for pop in res.spikes:
        s_gt, v_gt = trace[f"{pop}|s"], trace[f"{pop}|v"]
        s, v = res.spikes[pop], res.states[pop]
        assert (s != s_gt).sum() == 0, \
            f"{pop}: spikes differ at {np.argwhere(s != s_gt)[:5].tolist()}"
        if numeric == "int":
            assert (v != v_gt).sum() == 0, \
                f"{pop}: states differ: {v[v != v_gt][:5]} vs {v_gt[v != v_gt][:5]}"
        else:
            np.testing.assert_allclose(v, v_gt, rtol=0, atol=1e-12, err_msg=pop)
    assert np.array_equal(res.logits, trace["logits"]) if numeric == "int" else \
        np.allclose(res.logits, trace["logits"], atol=1e-12)
    assert sum(int(trace[f"{p}|s"].sum()) for p in res.spikes) > 100  # the trace is not silent
