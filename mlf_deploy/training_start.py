"""A training run's first state: the model (new, or the ``init`` checkpoint's), the optimizer and
learning-rate schedule, what the loss is computed through (the model, or its int graph's forward
for quantization-aware training, wrapped for DDP), and a resumed run's weights, optimizer,
schedule and RNG restored from its checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from mlf_deploy.checkpoint import build_model
from mlf_deploy.models import DSResNet
from mlf_deploy.neuron_kernel import resolve_neuron_kernel, set_neuron_kernel
from mlf_deploy.qat.integer_training import start_integer_training
from mlf_deploy.training_files import restore_run
from mlf_deploy.training_loop import TrainingRun, evaluate


class Placement(NamedTuple):
    """Where this process trains: its torchrun rank of ``world``, device and data workers."""

    rank: int
    world: int
    device: torch.device
    workers: int


def _schedule(opt, cfg, batches_per_epoch: int):
    if cfg.lr_schedule == "cosine":  # stepped per batch, down to zero at the last one
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * batches_per_epoch)
    return torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step, cfg.lr_gamma)


def _new_model(cfg, init: dict | None, model_args: dict, device) -> DSResNet:
    torch.manual_seed(cfg.seed)
    model = DSResNet(**model_args) if init is None else build_model(init, cfg.init)
    # Quantization-aware training keeps BN statistics frozen (eval mode): the fold trained
    # through is the fold the quantizer sees.
    model = model.to(device).train(cfg.weight_bits is None)
    set_neuron_kernel(model, resolve_neuron_kernel(cfg.neuron_kernel, device))
    return model


def start_run(cfg, init, spec, model_args, inputs, resumed, where: Placement, splits, log):
    """The :class:`TrainingRun` of a resolved config, ready for its first (or next) epoch."""
    train_set, test_set = splits
    model = _new_model(cfg, init, model_args, where.device)
    # DistributedSampler shuffles with seed + epoch, so the order depends on nothing else.
    sampler = DistributedSampler(train_set, num_replicas=where.world, rank=where.rank,
                                 shuffle=True, seed=cfg.seed)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = _schedule(opt, cfg, -(-len(sampler) // cfg.batch_size))
    out = Path(cfg.out_dir)
    history, first = [], 0
    if resumed is not None:
        history, first = restore_run(resumed, model, opt, sched, out / "checkpoint.pt")
        if first >= cfg.epochs:
            log(f"nothing to do: {out / 'checkpoint.pt'} already finished all {cfg.epochs} "
                "epochs; pass a larger --epochs to train further")
        else:
            log(f"resuming {out / 'checkpoint.pt'} after epoch {first}")
    forward, extra = model, {}

    def test_accuracy(m, dataset, batch):
        return evaluate(m, dataset, batch, where.device, where.workers)
    if cfg.weight_bits is not None:
        integer, extra["finetune"] = start_integer_training(
            cfg, model, spec, inputs, test_set, resumed, where.device, where.workers, log)
        forward, test_accuracy = integer.forward(model), integer.accuracy
    net = DistributedDataParallel(forward) if where.world > 1 else forward
    if cfg.compile:
        log("warning: --compile (inductor) gave a gradient that differs from eager in a "
            "check on the CPU (docs/gpu.md); use it to experiment, not for a run to deploy")
        net = torch.compile(net)
    return TrainingRun(cfg, spec, model_args, inputs, model, net, opt, sched, train_set, test_set,
                       sampler, where.device, where.rank, where.world, where.workers, out,
                       test_accuracy, extra, history, first)
