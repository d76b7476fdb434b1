"""The epochs of a training run: one pass over the shuffled split through the run's forward (the
float model, or the int graph's for quantization-aware training), the test split evaluated after
each, the metrics and the checkpoint written by rank 0, and Ctrl-C keeping the last whole epoch.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from mlf_deploy.checkpoint import save_checkpoint
from mlf_deploy.data import augment, model_input
from mlf_deploy.data.streaming import batches
from mlf_deploy.fileio import atomic_write_text


@dataclass
class TrainingRun:
    """Everything one run's epochs use, built by :func:`mlf_deploy.training.train`."""

    cfg: object                  # the resolved TrainConfig
    spec: dict                   # the data set (dataset_spec)
    model_args: dict
    inputs: dict | None          # the training split's range (quantization's input_max)
    model: torch.nn.Module       # the DSResNet whose weights are trained and saved
    net: torch.nn.Module         # what the loss is computed through (DDP, compiled, int graph's)
    opt: torch.optim.Optimizer
    sched: object                # StepLR stepped per epoch, or a cosine stepped per batch
    train_set: object
    test_set: object
    sampler: object              # DistributedSampler: the order is a function of seed and epoch
    device: torch.device
    rank: int
    world: int
    workers: int
    out: Path
    test_accuracy: Callable      # (model, dataset) -> accuracy; the int graph's under QAT
    extra: dict = field(default_factory=dict)  # more checkpoint entries (QAT's "finetune")
    history: list = field(default_factory=list)
    first_epoch: int = 0


@torch.no_grad()
def evaluate(model, dataset, batch_size: int = 256, device="cpu", workers: int = 0,
             forward=None) -> float:
    """Top-1 accuracy of ``forward`` (default: ``model``, in eval mode) on a split from
    :func:`mlf_deploy.data.open_split`, read in batches."""
    was_training = model.training
    model.eval()
    forward = forward or model
    correct = 0
    for xb, yb in batches(dataset, range(len(dataset)), batch_size, workers):
        logits = torch.as_tensor(forward(model_input(xb.to(device))))
        correct += int((logits.argmax(1).cpu() == yb).sum())
    model.train(was_training)
    return correct / max(len(dataset), 1)


def _train_epoch(run: TrainingRun, epoch: int, show_bar: bool) -> dict:
    cfg = run.cfg
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)  # augmentation only
    order = torch.tensor(list(iter(run.sampler)), dtype=torch.long)
    per_batch = cfg.lr_schedule == "cosine"
    loss_sum, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
    bar = tqdm(batches(run.train_set, order, cfg.batch_size, run.workers),
               total=-(-len(order) // cfg.batch_size), desc=f"epoch {epoch + 1}/{cfg.epochs}",
               disable=not show_bar or not sys.stderr.isatty(),  # a bar in a log file is noise
               leave=False, unit="batch")
    for xb, yb in bar:
        xb, yb = augment(xb, run.spec, gen).to(run.device), yb.to(run.device)
        logits = run.net(model_input(xb))
        loss = torch.nn.functional.cross_entropy(logits, yb)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        if per_batch:
            run.sched.step()
        loss_sum += float(loss.detach()) * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        seen += len(yb)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                        samples_s=f"{seen / (time.perf_counter() - t0):.0f}")
    row = dict(epoch=epoch + 1, loss=loss_sum / len(order), train_accuracy=correct / len(order),
               samples_per_s=len(order) / (time.perf_counter() - t0),
               lr=run.opt.param_groups[0]["lr"])
    if not per_batch:
        run.sched.step()
    return row


def checkpoint_state(run: TrainingRun, epoch: int) -> dict:
    """What ``checkpoint.pt`` holds after ``epoch`` epochs: all later commands and a resume need."""
    history = run.history
    return copy.deepcopy(dict(
        model_args=run.model_args, state_dict=run.model.state_dict(),
        config=dataclasses.asdict(run.cfg), dataset=run.spec, input=run.inputs,
        metrics=history[-1] if history else {}, epoch=epoch, history=history,
        optimizer=run.opt.state_dict(), scheduler=run.sched.state_dict(),
        rng={"torch": torch.get_rng_state()}, **run.extra))


def _one_epoch(run: TrainingRun, epoch: int, progress: bool) -> dict:
    run.sampler.set_epoch(epoch)
    row = _train_epoch(run, epoch, progress and run.rank == 0)
    if run.world > 1:  # BN running stats are per rank; keep rank 0's so all ranks agree
        for buf in run.model.buffers():
            dist.broadcast(buf, 0)
    batch = 4 * run.cfg.batch_size
    row["test_accuracy"] = run.test_accuracy(run.model, run.test_set, batch)
    return row


def run_epochs(run: TrainingRun, progress: bool, log) -> None:
    """The epochs from ``run.first_epoch``; each appends to ``run.history`` and is logged."""
    cfg, ckpt_path = run.cfg, run.out / "checkpoint.pt"
    last, saved = None, run.first_epoch
    try:
        for epoch in range(run.first_epoch, cfg.epochs):
            row = _one_epoch(run, epoch, progress)
            run.history.append(row)
            last = checkpoint_state(run, epoch + 1)
            if run.rank == 0:
                atomic_write_text(run.out / "metrics.jsonl",
                                  "".join(json.dumps(r) + "\n" for r in run.history))
                if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
                    save_checkpoint(ckpt_path, last)
                    saved = epoch + 1
            log(f"epoch {epoch + 1}/{cfg.epochs} loss {row['loss']:.4f} "
                f"train {row['train_accuracy']:.4f} test {row['test_accuracy']:.4f} "
                f"lr {row['lr']:.4g} {row['samples_per_s']:.0f} samples/s")
    except KeyboardInterrupt:
        if run.rank == 0 and last is not None and last["epoch"] > saved:
            save_checkpoint(ckpt_path, last)
            saved = last["epoch"]
        if saved:
            log(f"interrupted in epoch {saved + 1}: {ckpt_path} keeps epoch {saved} of "
                f"{cfg.epochs}; continue with the same command and --resume")
        else:
            log("interrupted before the first epoch finished; nothing was saved")
        raise
