"""What quantization-aware training adds to a training run (``train --init CKPT --weight-bits N``,
docs/qat.md): the integer grid of the checkpoint's N-bit int graph, the forward pass through it,
the int graph's accuracy as the run's test accuracy, and the checkpoint's ``finetune`` entry, which
makes later commands quantize to N bits by default.

BN statistics stay frozen (the model stays in eval mode), so the fold the quantizer will see is
the one trained through; the parameters stay float32 tensors exactly as a checkpoint stores them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlf_deploy.data import input_kind
from mlf_deploy.lowering import lower
from mlf_deploy.qat.forward import IntegerForward, IntGrid
from mlf_deploy.quantization import input_max_of_range
from mlf_deploy.training_loop import evaluate


def integer_grid(model, spec: dict, inputs: dict, weight_bits: int) -> tuple[IntGrid, float | None]:
    """The grid :func:`~mlf_deploy.quantization.quantize` picks for the model's graph, and its
    ``input_max``: lowering gives the input encoding, the stored split range the input step."""
    graph = lower(model, tuple(inputs["shape"]), input_kind(spec), inputs["timesteps"])
    input_max = input_max_of_range(graph, inputs)
    return IntGrid.of(model, weight_bits, graph.input.encoding, input_max), input_max


@dataclass
class IntegerTraining:
    """The int graph a quantization-aware run trains through and measures."""

    grid: IntGrid
    device: torch.device
    workers: int

    def forward(self, model) -> IntegerForward:
        return IntegerForward(model, self.grid)

    def accuracy(self, model, dataset, batch_size: int) -> float:
        """The int graph's top-1 accuracy on ``dataset``: the integer forward equals the integer
        reference running the quantized graph spike for spike (``verify --backends torch-int``)."""
        return evaluate(model, dataset, batch_size, self.device, self.workers,
                        forward=IntegerForward(model, self.grid))


def start_integer_training(cfg, model, spec: dict, inputs: dict, test_set, resumed: dict | None,
                           device, workers: int, log) -> tuple[IntegerTraining, dict]:
    """The run's integer grid and the checkpoint's ``finetune`` entry: the width, the starting
    checkpoint, and its accuracies before training (measured once, kept on resume)."""
    grid, input_max = integer_grid(model, spec, inputs, cfg.weight_bits)
    integer = IntegerTraining(grid, device, workers)
    record = (resumed or {}).get("finetune")
    if record is None:
        batch = 4 * cfg.batch_size
        record = dict(weight_bits=cfg.weight_bits, source=str(cfg.init), input_max=input_max,
                      post_training_accuracy=integer.accuracy(model, test_set, batch),
                      source_float_accuracy=evaluate(model, test_set, batch, device, workers))
    log(f"{cfg.weight_bits}-bit post-training integer accuracy "
        f"{record['post_training_accuracy']:.4f} (float {record['source_float_accuracy']:.4f})")
    return integer, record
