"""From a checkpoint to everything a backend needs: the model, its float and int graphs, its data.

Each command (export, verify, energy, evaluate, demo) starts here, so they all lower, quantize and
sample the checkpoint's own test split the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mlf_deploy.checkpoint import load_model
from mlf_deploy.data import input_kind, input_pipeline, load_split, model_input
from mlf_deploy.errors import UserError
from mlf_deploy.ir import Graph, load_graph
from mlf_deploy.ir.semantics import input_normalisation
from mlf_deploy.lowering import lower
from mlf_deploy.models import DSResNet
from mlf_deploy.quantization import QuantizationReport, quantize
from mlf_deploy.training import weights_sha256


def check_samples(samples: int | None) -> int | None:
    if samples is not None and samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    return samples


@dataclass
class Pipeline:
    path: str
    model: DSResNet
    ckpt: dict
    graph_float: Graph
    graph_int: Graph
    quant_report: QuantizationReport
    input_max: float | None
    weight_bits: int
    data_dir: str | None = None
    onnx_file: tuple | None = None  # (path, numeric): run that onnx backend from an exported file
    _splits: dict = field(default_factory=dict)

    @property
    def spec(self) -> dict:
        return self.ckpt["dataset"]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in self._splits:
            if name not in ("train", "test"):
                raise UserError(f"--split must be 'train' or 'test', got {name!r}")
            self._splits[name] = load_split(self.spec, name, self.data_dir)
        return self._splits[name]

    def use_graph_file(self, path) -> Graph:
        """Replace the float or int graph with a previously exported graph file of this model."""
        graph = load_graph(path)
        if graph.metadata.get("model_sha256") != self.graph_float.metadata["model_sha256"]:
            raise UserError(f"graph file {path} was exported from another model than "
                            f"{self.path}; export it again from this checkpoint")
        if graph.numeric == "int":
            self.graph_int = graph
        else:
            self.graph_float = graph
        return graph

    def use_onnx_file(self, path) -> str:
        """Run the onnx backend of the file's numeric type from ``path``; returns that backend."""
        from runtimes.onnx import check_model_matches, load_onnx
        model = load_onnx(path)
        meta = {p.key: p.value for p in model.metadata_props}
        numeric = meta.get("numeric")
        if numeric not in ("float", "int"):
            raise UserError(f"{path} is not an mlf-deploy ONNX export; export it with "
                            "`mlf-deploy export --to onnx`")
        check_model_matches(model, self.graph_int if numeric == "int" else self.graph_float, str(path))
        self.onnx_file = (str(path), numeric)
        return f"onnx-{numeric}"

    def data(self, split: str = "test", samples: int | None = None):
        """``(x, y)``: the first ``samples`` of a split, ``x`` in the model's input layout."""
        x, y = self.split(split)
        if check_samples(samples) is not None:
            x, y = x[:samples], y[:samples]
        return model_input(x), y


def load_pipeline(ckpt_path, weight_bits: int = 8, data_dir: str | None = None) -> Pipeline:
    """Load a checkpoint, lower it and quantize it to ``weight_bits``."""
    model, ckpt = load_model(ckpt_path)
    spec = ckpt["dataset"]
    train_split = load_split(spec, "train", data_dir)
    x_train = train_split[0]
    if len(x_train) == 0:
        raise UserError(f"the training split of dataset {spec.get('name')!r} is empty")
    events = input_kind(spec) == "events"
    shape = tuple(x_train.shape[2:] if events else x_train.shape[1:])
    timesteps = x_train.shape[1] if events else None
    graph = lower(model, shape, "events" if events else "static", timesteps)
    # Ties exported files to the weights they came from (verify --graph checks it), and carries
    # the raw-input pipeline into every artifact, so each one can be run without the checkpoint.
    graph_float = Graph(graph.nodes, graph.numeric,
                        {**graph.metadata, "model_sha256": weights_sha256(model),
                         "input_pipeline": input_pipeline(spec)})
    input_max = _input_max(graph_float, x_train, events)
    graph_int, report = quantize(graph_float, weight_bits, input_max=input_max)
    return Pipeline(str(ckpt_path), model, ckpt, graph_float, graph_int, report, input_max,
                    weight_bits, data_dir, _splits={"train": train_split})


def _input_max(graph: Graph, x_train: torch.Tensor, events: bool) -> float | None:
    """Largest |value| the Input delivers over the training split (after the optional input
    normalisation); None for raw event counts, which are integers already."""
    norm = input_normalisation(graph)
    if norm is None:
        return None if events else float(x_train.abs().max())
    dims = (0, 1, 3, 4) if events else (0, 2, 3)
    lo, hi = x_train.amin(dim=dims).double(), x_train.amax(dim=dims).double()
    gain, offset = (torch.from_numpy(a.reshape(-1)) for a in norm)
    return float(torch.maximum((lo * gain + offset).abs(), (hi * gain + offset).abs()).max())
