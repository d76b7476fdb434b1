"""The figures of an energy run that NeuroBench 2.3.0 also reports, under NeuroBench's names.

Only where the definition is the same (differences measured in docs/nir.md):

* ``activation_sparsity``: zero activations / all activations of the activation modules, over all
  timesteps and samples (NeuroBench ``ActivationSparsity``). An MLF layer's activation is its graded
  output, non-zero where any of its K level populations fired.
* ``connection_sparsity``: zero weights / all weights of the connection layers (NeuroBench
  ``ConnectionSparsity``), here over the deployed graph's distinct weight tensors and its readout.
* ``classification_accuracy``: correct / samples (NeuroBench ``ClassificationAccuracy``).

NeuroBench's ``SynapticOperations`` is *not* one of them: it binarises graded inputs and calls every
MLF-fed layer a MAC layer, so our ``synops_per_inference`` (graded spikes by count) has no
NeuroBench name.
"""

from __future__ import annotations

import numpy as np

from mlf_deploy.ir import Graph
from mlf_deploy.results import RunResult
from mlf_deploy.run_totals import fired_samples


def neurobench_fields(graph: Graph, result: RunResult, accuracy: float) -> dict:
    zeros = total = 0
    for layer in graph.layers:
        size = result.timesteps * result.batch * int(np.prod(layer.shape))
        zeros += size - int(fired_samples(result, layer.populations).sum())
        total += size
    tensors = {}
    for p in graph.projections:
        tensors[(p.target, p.weight.tobytes())] = p.weight
    weights = [*tensors.values(), graph.readout.weight]
    n_weights = sum(w.size for w in weights)
    n_zero = sum(int(w.size - np.count_nonzero(w)) for w in weights)
    return {"activation_sparsity": zeros / total if total else 0.0,
            "connection_sparsity": n_zero / n_weights,
            "classification_accuracy": float(accuracy)}
