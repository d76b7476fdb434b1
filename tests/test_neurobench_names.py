"""The NeuroBench-named fields of `energy --json` equal NeuroBench 2.3.0's own metrics on the
same spikes."""

from __future__ import annotations

import pytest
import torch
from conftest import make_model, sample_input

from mlf_deploy.energy.neurobench_names import neurobench_fields
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.lowering import lower
from mlf_deploy.neuron import MLF

pytest.importorskip("neurobench")
from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.static import ConnectionSparsity  # noqa: E402
from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy  # noqa: E402
from neurobench.models import TorchModel  # noqa: E402


def test_fields_equal_neurobench_on_the_float_graph():
    model = make_model()
    with torch.no_grad():  # some zero weights, so that connection sparsity is not trivially 0
        model.stem.conv.weight[0].zero_()
        model.fc.weight[:, :2] = 0.0
    x = sample_input(12)
    y = torch.arange(12) % 10
    graph = lower(model, (1, 8, 8), "static")
    run = run_reference(graph, x)  # ir-float reproduces torch's spikes exactly
    accuracy = float((torch.from_numpy(run.logits).argmax(1) == y).float().mean())
    ours = neurobench_fields(graph, run, accuracy)

    nb_model = TorchModel(model)
    nb_model.add_activation_module(MLF)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=6)
    nb = Benchmark(nb_model, loader, [], [lambda out: out.argmax(-1)],
                   [[ConnectionSparsity],
                    [ActivationSparsity, ClassificationAccuracy]]).run(quiet=True)
    assert ours["activation_sparsity"] == pytest.approx(nb["ActivationSparsity"], abs=1e-12)
    # NeuroBench rounds connection sparsity to 4 decimals
    assert round(ours["connection_sparsity"], 4) == nb["ConnectionSparsity"]
    assert ours["classification_accuracy"] == pytest.approx(nb["ClassificationAccuracy"], abs=1e-12)
    assert 0 < ours["activation_sparsity"] < 1 and ours["connection_sparsity"] > 0
