"""From a checkpoint to everything a backend needs: the model, its float and int graphs, its data.

Each command (export, verify, energy, evaluate, demo) starts here, so they all lower, quantize and
sample the checkpoint's own test split the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mlf_deploy.checkpoint import load_model
from mlf_deploy.data import input_kind, input_pipeline, load_split, model_input, open_split
from mlf_deploy.data.ranges import split_range
from mlf_deploy.data.streaming import TensorSplit, batches
from mlf_deploy.device import resolve_device
from mlf_deploy.errors import UserError
from mlf_deploy.graded_lowering import to_graded
from mlf_deploy.ir import Graph, load_graph
from mlf_deploy.ir.graph_diff import graph_differences
from mlf_deploy.ir.normalisation import with_input_pipeline
from mlf_deploy.ir.semantics import valid_weight_bits
from mlf_deploy.limits import check_graph_run
from mlf_deploy.lowering import lower
from mlf_deploy.models import DSResNet
from mlf_deploy.quantization import QuantizationReport, input_max_of_range, quantize
from mlf_deploy.training_files import weights_sha256


def check_spikes(spikes: str) -> str:
    if spikes not in ("binary", "graded"):
        raise UserError(f"--spikes must be 'binary' or 'graded', got {spikes!r}")
    return spikes


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
    input_max: float | None
    weight_bits: int
    data_dir: str | None = None
    onnx_file: tuple | None = None  # (path, numeric, spikes): run that onnx backend from a file
    graph_file: dict | None = None  # path and differences from this checkpoint's own lowering
    lava_timeout: float | None = None  # seconds per Lava run; None: derived from the network
    device: torch.device = torch.device("cpu")  # where torch, torch-int and the reference run
    _splits: dict = field(default_factory=dict)
    _graded: dict = field(default_factory=dict)
    _int: tuple | None = None  # (int graph, quantization report), made on first use

    def _quantized(self) -> tuple:
        # On first use only: a float export or a float backend never quantizes, so it never
        # meets a fixed-point rule and never pays for quantizing a large network.
        if self._int is None:
            self._int = quantize(self.graph_float, self.weight_bits, input_max=self.input_max)
        return self._int

    @property
    def graph_int(self) -> Graph:
        return self._quantized()[0]

    @property
    def quant_report(self) -> QuantizationReport:
        return self._quantized()[1]

    def graph(self, numeric: str, spikes: str = "binary") -> Graph:
        """The float or int graph in the binary or graded lowering (graded: rewritten from the
        binary graph of the same numeric, so both carry the same numbers)."""
        binary = self.graph_int if numeric == "int" else self.graph_float
        if spikes == "binary":
            return binary
        check_spikes(spikes)
        source, graded = self._graded.get(numeric, (None, None))
        if source is not binary:  # rewritten again after use_graph_file replaced the binary graph
            graded = to_graded(binary)
            self._graded[numeric] = (binary, graded)
        return graded

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
        """Replace the float or int graph with a previously exported graph file of this model. A
        graded file replaces the graded form; the binary graph it is compared with is then this
        checkpoint's own at the file's weight width."""
        graph = load_graph(path)
        if graph.metadata.get("model_sha256") != self.graph_float.metadata["model_sha256"]:
            raise UserError(f"graph file {path} was exported from another model than "
                            f"{self.path}; export it again from this checkpoint")
        if graph.numeric == "int":
            quant = graph.metadata.get("quantization")
            bits = quant.get("weight_bits") if isinstance(quant, dict) else None
            # The file's own width when it is one we could have written; a forged one shows up
            # in the differences below either way.
            own, report = quantize(self.graph_float, bits, input_max=self.input_max) \
                if valid_weight_bits(bits) else self._quantized()
            self._int = (own if graph.graded else graph, report)
        else:
            own = self.graph_float
            if not graph.graded:
                self.graph_float = graph
        if graph.graded:
            own = self.graph(graph.numeric, "graded")
            self._graded[graph.numeric] = (self.graph_int if graph.numeric == "int"
                                           else self.graph_float, graph)
        diffs = graph_differences(graph, own)
        self.graph_file = {"path": str(path), "identical": not diffs, "differences": diffs,
                           "spikes": "graded" if graph.graded else "binary"}
        self.file_graph = graph  # run at its own timesteps: checked by check_run
        return graph

    def use_onnx_file(self, path) -> str:
        """Run the onnx backend of the file's numeric type and lowering from ``path``; returns
        that backend's name."""
        from mlf_deploy.runtimes.onnx import check_model_matches, load_onnx
        model = load_onnx(path)
        meta = {p.key: p.value for p in model.metadata_props}
        numeric = meta.get("numeric")
        if numeric not in ("float", "int"):
            raise UserError(f"{path} is not an mlf-deploy ONNX export; export it with "
                            "`mlf-deploy export --to onnx`")
        spikes = meta.get("spikes", "binary")
        check_model_matches(model, self.graph(numeric, check_spikes(spikes)), str(path))
        self.onnx_file = (str(path), numeric, spikes)
        return f"onnx-{numeric}" + ("-graded" if spikes == "graded" else "")

    def data(self, split: str = "test", samples: int | None = None):
        """``(x, y)``: the first ``samples`` of a split, ``x`` in the model's input layout."""
        x, y = self.split(split)
        if check_samples(samples) is not None:
            x, y = x[:samples], y[:samples]
        self.check_run(len(x))
        return model_input(x), y

    def check_run(self, samples: int, graph=None, **run) -> None:
        """The run-size check for ``graph`` (None: the checkpoint's) and a supplied graph file
        (its own T); ``run``: what the run keeps (:func:`check_graph_run`)."""
        check_graph_run(graph or self.graph_float, samples, f"running {self.path}", **run)
        if getattr(self, "file_graph", None) is not None:
            check_graph_run(self.file_graph, samples, f"running {self.graph_file['path']}")

    def batches(self, split: str, samples: int | None, size: int, **run):
        """The first ``samples`` of a split (None: all) as ``(x, y)`` chunks of ``size`` samples,
        ``x`` in the model's input layout. An event set is read from disk chunk by chunk, so
        memory holds one chunk whatever the number of samples. ``run``: :meth:`check_run`'s."""
        check_samples(samples)
        if split not in ("train", "test"):
            raise UserError(f"--split must be 'train' or 'test', got {split!r}")
        dataset = TensorSplit(*self._splits[split]) if split in self._splits else \
            open_split(self.spec, split, self.data_dir)
        n = len(dataset) if samples is None else min(samples, len(dataset))
        self.check_run(min(size, max(n, 1)), **run)
        for x, y in batches(dataset, range(n), size):
            yield model_input(x), y


def load_pipeline(ckpt_path, weight_bits: int | None = None, data_dir: str | None = None,
                  device="cpu") -> Pipeline:
    """Load a checkpoint and lower it; the int graph (``weight_bits``, None: the width the
    checkpoint was fine-tuned for, else 8) is made when first used. ``device``: see
    :func:`mlf_deploy.device.resolve_device`."""
    device = resolve_device(device)
    model, ckpt = load_model(ckpt_path)
    if weight_bits is None:
        weight_bits = finetuned_bits(ckpt) or 8
    spec = ckpt["dataset"]
    info = ckpt.get("input")
    if info is None:  # written before train stored the input range: measure it, streaming
        info = split_range(open_split(spec, "train", data_dir),
                           f"the training split of dataset {spec.get('name')!r}")
    events = input_kind(spec) == "events"
    graph = lower(model, tuple(info["shape"]), "events" if events else "static", info["timesteps"])
    # Ties exported files to the weights they came from (verify --graph checks it), and carries
    # the raw-input pipeline into every artifact, so each one can be run without the checkpoint.
    graph_float = with_input_pipeline(Graph(graph.nodes, graph.numeric, {
        **graph.metadata, "model_sha256": weights_sha256(model)}), input_pipeline(spec))
    return Pipeline(str(ckpt_path), model, ckpt, graph_float, input_max_of_range(graph_float, info),
                    weight_bits, data_dir, device=device)


def finetuned_bits(ckpt: dict) -> int | None:
    """The weight width a checkpoint was fine-tuned for (``mlf-deploy finetune``), or None."""
    return (ckpt.get("finetune") or {}).get("weight_bits")
