"""How each kind of backend in :data:`mlf_deploy.verification.backends.BACKENDS` is run: everything
a run needs that does not depend on the samples (ONNX sessions, the reference's weight groups, the
float64 torch copy, the integer grid) is built once by :func:`prepare_backend`, and the returned
function is called on every chunk of samples."""

from __future__ import annotations

from collections.abc import Callable

from mlf_deploy.errors import UserError
from mlf_deploy.ir.reference import ReferenceSimulator
from mlf_deploy.results import RunResult
from mlf_deploy.runtimes.torch_backend import recording_copy, run_copy, run_torch_int
from mlf_deploy.verification.backends import BACKENDS
from mlf_deploy.workflows.pipeline import Pipeline

Runner = Callable[..., RunResult]  # raw model input -> its run


def _prepare_torch(pipe: Pipeline, graph) -> Runner:
    model = recording_copy(pipe.model, device=pipe.device)
    return lambda x: run_copy(model, x)


def _prepare_reference(pipe: Pipeline, graph) -> Runner:
    return ReferenceSimulator(graph, device=pipe.device).run


def _prepare_lava(pipe: Pipeline, graph) -> Runner:
    from mlf_deploy.runtimes.lava import run_lava
    return lambda x: run_lava(graph, x, timeout=pipe.lava_timeout)


def _prepare_onnx(pipe: Pipeline, graph) -> Runner:
    from mlf_deploy.runtimes.onnx import OnnxRunner
    supplied = pipe.onnx_file
    if supplied is not None and (supplied.numeric, supplied.spikes) == (graph.numeric,
                                                                          graph.spikes):
        return OnnxRunner(graph, supplied.path).run
    return OnnxRunner(graph, None, "sequence").run


def _prepare_torch_int(pipe: Pipeline, graph) -> Runner:
    from mlf_deploy.qat import IntGrid
    q = graph.metadata["quantization"]  # the grid of the very graph ir-int runs
    grid = IntGrid.of(pipe.model, q["weight_bits"], graph.input.encoding, q["input_max"])
    return lambda x: run_torch_int(pipe.model, grid, x, device=pipe.device)


def _prepare_sanafe(pipe: Pipeline, graph) -> Runner:
    from mlf_deploy.hardware.loihi1 import LOIHI1
    from mlf_deploy.hardware.mapping import map_graph
    from mlf_deploy.ir.semantics import readout_logits
    from mlf_deploy.runtimes.sanafe_check import sanafe_spikes
    reference, mapping = ReferenceSimulator(graph, record_states=False), map_graph(graph, LOIHI1)

    def run(x):
        spikes = sanafe_spikes(graph, reference.run(x), mapping)
        return RunResult("sanafe", "int", spikes, {}, readout_logits(graph, spikes))
    return run


# What is costly and the same for every batch (a float64 model copy, an ONNX export and session,
# the reference's weight groups, an integer grid) is built by these once per verify.
PREPARERS = {"torch": _prepare_torch, "torch-int": _prepare_torch_int,
             "reference": _prepare_reference, "lava": _prepare_lava, "onnx": _prepare_onnx,
             "sanafe": _prepare_sanafe}


def prepare_backend(name: str, pipe: Pipeline) -> Runner:
    """A function that runs backend ``name`` on a batch of raw model input."""
    backend = BACKENDS.get(name)
    if backend is None:
        raise UserError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    return PREPARERS[backend.kind](pipe, pipe.graph(backend.numeric, backend.spikes))
