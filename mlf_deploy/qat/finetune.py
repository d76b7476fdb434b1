"""Quantization-aware fine-tuning of a trained checkpoint on the integer grid of its deployment.

The forward pass is :class:`~mlf_deploy.qat.forward.IntegerForward` (the int graph's arithmetic,
straight-through gradients), BN statistics stay frozen so the fold the quantizer will see is the
one trained through, and the parameters stay float32 tensors exactly as the checkpoint stores
them. The written checkpoint is an ordinary one (every command takes it); its ``finetune`` entry
records the weight width, and ``metrics.test_accuracy`` is the integer forward's accuracy of the
saved weights on the test split, which is the accuracy of the int graph that export and verify
build from it (equal spikes, equal logits).
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from mlf_deploy.checkpoint import build_model, read_checkpoint, save_checkpoint
from mlf_deploy.data import augment, input_kind, load_split, model_input
from mlf_deploy.data.ranges import tensor_range
from mlf_deploy.data.streaming import TensorSplit
from mlf_deploy.device import resolve_device
from mlf_deploy.errors import UserError
from mlf_deploy.fileio import atomic_write_text, check_writable
from mlf_deploy.ir.semantics import WEIGHT_BITS_RANGE, valid_weight_bits
from mlf_deploy.limits import check_graph_run
from mlf_deploy.lowering import lower
from mlf_deploy.outputs import output_lock
from mlf_deploy.ownership import allow_replace
from mlf_deploy.qat.forward import IntegerForward, IntGrid, integer_logits
from mlf_deploy.quantization import input_max_of_range
from mlf_deploy.training import evaluate
from mlf_deploy.training_files import TRAIN_BYTES_PER_NEURON_STEP


@dataclass
class FinetuneConfig:
    checkpoint: str                   # the trained checkpoint to start from
    out_dir: str                      # writes checkpoint.pt and metrics.jsonl here
    weight_bits: int = 4              # signed weight mantissa bits of the deployment (2..8)
    epochs: int = 5                   # a few epochs recover most of the post-training loss
    lr: float = 0.01                  # a tenth of training's: the weights only move to the grid
    momentum: float = 0.9
    weight_decay: float = 0.0         # decay would pull weights off the grid they settle on
    batch_size: int | None = None     # None: the checkpoint's training batch size
    seed: int = 0                     # shuffling and augmentation
    max_samples: int | None = None    # only the first N train samples (quick runs); tests all
    data_dir: str | None = None       # files of non-embedded data sets
    force: bool = False               # replace an existing OUT/checkpoint.pt
    device: str = "cpu"               # cpu, cuda or auto (mlf_deploy.device.resolve_device)


def check_config(cfg: FinetuneConfig) -> None:
    if not valid_weight_bits(cfg.weight_bits):
        raise UserError("--weight-bits must be an integer from {} to {}, got {}".format(
            *WEIGHT_BITS_RANGE, cfg.weight_bits))
    for name in ("epochs", "batch_size", "max_samples"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if not (math.isfinite(cfg.lr) and math.isfinite(cfg.weight_decay)) or not cfg.lr > 0 \
            or cfg.weight_decay < 0 or not 0 <= cfg.momentum < 1:
        raise UserError("need a finite lr > 0, a finite weight_decay >= 0 and 0 <= momentum < 1")
    target = Path(cfg.out_dir) / "checkpoint.pt"
    if Path(cfg.checkpoint).resolve() == target.resolve():
        raise UserError(f"--out {cfg.out_dir} holds the input checkpoint; choose another folder")
    resolve_device(cfg.device)
    for path in (target, target.with_name("metrics.jsonl")):
        if cfg.force:  # only earlier outputs of this tool (checked by content hash)
            allow_replace(path)
        check_writable(path, overwrite=cfg.force)


def _int_accuracy(model, grid, x, y) -> float:
    return float((integer_logits(model, grid, model_input(x)).argmax(1) == y.numpy()).mean())


def finetune(cfg: FinetuneConfig, progress: bool = True, log=print) -> dict:
    """Fine-tune ``cfg.checkpoint`` for ``cfg.weight_bits``-bit weights; see the module docstring.

    Returns:
        ``checkpoint``, ``weight_bits``, ``post_training_accuracy`` (the integer accuracy before),
        ``test_accuracy`` (after), ``float_accuracy`` (the source model in float), ``history``,
        ``seconds``.

    A lock beside ``out_dir`` keeps a second command from writing the same folder meanwhile.
    """
    check_config(cfg)
    Path(cfg.out_dir).parent.mkdir(parents=True, exist_ok=True)
    with output_lock(cfg.out_dir):
        return _finetune(cfg, progress, log)


def _finetune(cfg: FinetuneConfig, progress: bool, log) -> dict:
    start = time.perf_counter()
    ckpt = read_checkpoint(cfg.checkpoint)
    device = resolve_device(cfg.device)
    model = build_model(ckpt, cfg.checkpoint).to(device)
    spec = ckpt["dataset"]
    x_tr, y_tr = load_split(spec, "train", cfg.data_dir)
    x_te, y_te = load_split(spec, "test", cfg.data_dir)
    # The whole split's range, as the pipeline takes it (stored by train; measured for older files).
    inputs = ckpt.get("input") or tensor_range(x_tr, f"the training split of {spec['name']!r}")
    events = input_kind(spec) == "events"
    graph = lower(model, tuple(inputs["shape"]), "events" if events else "static",
                  inputs["timesteps"])
    input_max = input_max_of_range(graph, inputs)
    grid = IntGrid.of(model, cfg.weight_bits, graph.input.encoding, input_max)
    if cfg.max_samples:
        x_tr, y_tr = x_tr[:cfg.max_samples], y_tr[:cfg.max_samples]
    batch = cfg.batch_size or ckpt.get("config", {}).get("batch_size") or 32  # checked on load
    check_graph_run(graph, batch, "fine-tuning", "--batch-size", TRAIN_BYTES_PER_NEURON_STEP)
    source_float = evaluate(model, TensorSplit(x_te, y_te), device=device)
    before = _int_accuracy(model, grid, x_te, y_te)
    log(f"{cfg.weight_bits}-bit post-training integer accuracy {before:.4f} (float {source_float:.4f})")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    batches = -(-len(x_tr) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * batches)
    fwd = IntegerForward(model, grid)
    history = []
    model.eval()  # frozen BN statistics: IntegerForward folds the running ones
    for epoch in range(cfg.epochs):
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        order = torch.randperm(len(x_tr), generator=gen)
        loss_sum, correct, t0 = 0.0, 0, time.perf_counter()
        for i in tqdm(range(0, len(order), batch), desc=f"finetune {epoch + 1}/{cfg.epochs}",
                      disable=not progress or not sys.stderr.isatty(), leave=False, unit="batch"):
            idx = order[i:i + batch]
            xb, yb = augment(x_tr[idx], spec, gen).to(device), y_tr[idx].to(device)
            logits = fwd(model_input(xb))
            loss = torch.nn.functional.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        row = dict(epoch=epoch + 1, loss=loss_sum / len(order), train_accuracy=correct / len(order),
                   test_accuracy=_int_accuracy(model, grid, x_te, y_te),
                   samples_per_s=len(order) / (time.perf_counter() - t0))
        history.append(row)
        atomic_write_text(Path(cfg.out_dir) / "metrics.jsonl",
                          "".join(json.dumps(r) + "\n" for r in history))
        log(f"finetune {epoch + 1}/{cfg.epochs} loss {row['loss']:.4f} train {row['train_accuracy']:.4f} "
            f"test (integer, {cfg.weight_bits}-bit) {row['test_accuracy']:.4f} "
            f"{row['samples_per_s']:.0f} samples/s")
    after = history[-1]["test_accuracy"] if history else before
    info = dict(weight_bits=cfg.weight_bits, source=str(cfg.checkpoint), epochs=cfg.epochs,
                post_training_accuracy=before, source_float_accuracy=source_float,
                input_max=input_max, config=asdict(cfg), seconds=time.perf_counter() - start)
    metrics = {**history[-1], "test_accuracy": after, "backend": "torch-int"} if history else \
        {"test_accuracy": after}
    out = Path(cfg.out_dir)
    model.cpu()  # a checkpoint holds CPU tensors whatever device trained it
    save_checkpoint(out / "checkpoint.pt", copy.deepcopy(dict(
        model_args=ckpt["model_args"], state_dict=model.state_dict(), config=ckpt.get("config", {}),
        dataset=spec, input=inputs, metrics=metrics, epoch=ckpt.get("epoch"), history=ckpt.get("history", []),
        finetune={**info, "history": history})))
    return dict(checkpoint=str(out / "checkpoint.pt"), weight_bits=cfg.weight_bits,
                post_training_accuracy=before, test_accuracy=after, float_accuracy=source_float,
                epochs=len(history), history=history, seconds=time.perf_counter() - start)
