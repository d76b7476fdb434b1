"""What quantization-aware training adds to a training run (``train --init CKPT --weight-bits N``,
docs/qat.md): the integer grid of the checkpoint's N-bit int graph, the forward pass through it,
the int graph's accuracy as the run's test accuracy, and the checkpoint's ``finetune`` entry, which
makes later commands quantize to N bits by default.

The accuracy is measured as ``verify`` measures ir-int's: the weights are lowered and quantized
and the core's integer reference runs the graph. The forward trained through is a second, torch
computation of the same integers (``tests/test_qat.py``), so the two can be compared.

BN statistics stay frozen (the model stays in eval mode), so the fold the quantizer will see is
the one trained through; the parameters stay float32 tensors exactly as a checkpoint stores them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlf_deploy.data import input_kind
from mlf_deploy.ir import Graph
from mlf_deploy.ir.reference import ReferenceSimulator
from mlf_deploy.lowering import lower
from mlf_deploy.qat.forward import IntegerForward, IntGrid
from mlf_deploy.quantization import input_max_of_range, quantize
from mlf_deploy.training_loop import evaluate


@dataclass
class IntegerTraining:
    """The N-bit int graph a quantization-aware run trains through and measures."""

    spec: dict          # the data set (its input kind)
    inputs: dict        # the training split's range, which fixes the input step
    weight_bits: int
    device: torch.device
    workers: int

    def int_graph(self, model) -> Graph:
        """The graph ``export`` and ``verify`` make of ``model``'s weights at this width."""
        graph = lower(model, tuple(self.inputs["shape"]), input_kind(self.spec),
                      self.inputs["timesteps"])
        return quantize(graph, self.weight_bits, input_max_of_range(graph, self.inputs))[0]

    def forward(self, model) -> IntegerForward:
        """The int graph's arithmetic as torch computes it, with straight-through gradients; its
        grid is the quantized graph's own (input step and widths)."""
        graph = self.int_graph(model)
        q = graph.metadata["quantization"]
        return IntegerForward(model, IntGrid.of(model, q["weight_bits"], graph.input.encoding,
                                                q["input_max"]))

    def accuracy(self, model, dataset, batch_size: int) -> float:
        """The int graph's top-1 accuracy on ``dataset``, on the integer reference."""
        simulator = ReferenceSimulator(self.int_graph(model), record_states=False,
                                       device=self.device)
        return evaluate(model, dataset, batch_size, self.device, self.workers,
                        forward=lambda x: simulator.run(x, batch_size).logits)


def start_integer_training(cfg, model, spec: dict, inputs: dict, test_set, resumed: dict | None,
                           device, workers: int, log) -> tuple[IntegerTraining, dict]:
    """The run's int graph and the checkpoint's ``finetune`` entry: the width, the starting
    checkpoint, and its accuracies before training (measured once, kept on resume)."""
    integer = IntegerTraining(spec, inputs, cfg.weight_bits, device, workers)
    input_max = integer.int_graph(model).metadata["quantization"]["input_max"]
    record = (resumed or {}).get("finetune")
    if record is None:
        batch = 4 * cfg.batch_size
        record = dict(weight_bits=cfg.weight_bits, source=str(cfg.init), input_max=input_max,
                      post_training_accuracy=integer.accuracy(model, test_set, batch),
                      source_float_accuracy=evaluate(model, test_set, batch, device, workers))
    log(f"{cfg.weight_bits}-bit post-training integer accuracy "
        f"{record['post_training_accuracy']:.4f} (float {record['source_float_accuracy']:.4f})")
    return integer, record
