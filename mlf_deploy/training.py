"""Training of spiking DS-ResNets (docs/references.md §1): SGD with momentum, StepLR stepped per epoch,
cross-entropy on the time-averaged logits, the test split evaluated after every epoch.

Runs alone or under ``torchrun`` (DistributedDataParallel: ``gloo`` on CPU, ``nccl`` on GPU; rank 0
logs and writes). Shuffling is a function of ``(seed, epoch)`` only, and the checkpoint carries the
optimizer, scheduler and RNG states, so ``resume=True`` reproduces an uninterrupted run bit for bit
on CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from mlf_deploy.checkpoint import save_checkpoint
from mlf_deploy.data import (
    augment,
    dataset_options,
    dataset_spec,
    input_kind,
    model_input,
    open_split,
)
from mlf_deploy.data.ranges import split_range
from mlf_deploy.data.streaming import batches
from mlf_deploy.errors import UserError
from mlf_deploy.fileio import atomic_write_text
from mlf_deploy.models import DSResNet, preset_args
from mlf_deploy.neuron_kernel import resolve_neuron_kernel, set_neuron_kernel
from mlf_deploy.outputs import output_lock
from mlf_deploy.threads import describe as describe_threads
from mlf_deploy.training_env import choose_threads, choose_workers, env_int, setup_distributed
from mlf_deploy.training_files import (
    check_no_run,
    check_out_dir,
    check_trainable,
    check_training_run,
    read_resume,
    restore_run,
    weights_sha256,
)


@dataclass
class TrainConfig:
    dataset: str = "digits"            # a key of mlf_deploy.data.DATASETS
    preset: str | None = None          # model preset; None: the one made for the data set
    depth: int | None = None           # 6n+2; None: the preset's
    widths: tuple[int, int, int] | None = None  # stage widths; None: the preset's
    levels: int | None = None          # MLF levels K; None: the preset's (3, as the code ships)
    timesteps: int | None = None       # T; for event sets also the number of frames
    variant: str | None = None         # "ds" (fire before the add) or "plain"; None: "ds"
    epochs: int | None = None          # None: per data set (paper 110/120/100; digits 15)
    batch_size: int | None = None      # None: per data set (paper 64/28/32; digits 32)
    lr: float = 0.1                    # paper, every data set
    momentum: float = 0.9              # paper
    weight_decay: float | None = None  # None: 1e-4, or 1e-3 for CIFAR10-DVS (paper)
    lr_step: int | None = None         # StepLR period in epochs; None: 40 (paper), 10 for digits
    lr_gamma: float = 0.1              # paper
    seed: int = 0                      # init, split and shuffling (a function of seed and epoch)
    device: str = "cpu"                # "cpu" or "cuda" (cuda:LOCAL_RANK under torchrun)
    data_dir: str | None = None        # files of cifar10 and the DVS sets
    out_dir: str = "runs/train"        # checkpoint.pt and metrics.jsonl
    resume: bool = False               # continue from out_dir/checkpoint.pt
    force: bool = False                # start over in an out_dir that holds a run (replaces its files)
    max_samples: int | None = None     # only the first N train and N test samples (quick runs)
    checkpoint_every: int = 1          # epochs between checkpoints; the last epoch always saves
    compile: bool = False              # torch.compile; off: compiling costs more than a digits run
    neuron_kernel: str = "auto"        # MLF layers: "torch", "triton" (fused), "auto": triton on CUDA
    workers: int | None = None         # DataLoader processes reading disk-streamed sets; None: auto
    threads: int | None = None         # torch threads per process; None: OMP_NUM_THREADS, else 1
    rank_hashes: bool = False          # each rank writes rank{r}.sha of its final weights (DDP test)


# Per data set defaults. Digits: 15 epochs of batch 32 at lr 0.1, x0.1 after 10, reach ~98% in
# about two minutes on two CPU cores; the paper's 40-epoch step would never decay in that budget.
_DEFAULTS = {
    "digits": dict(preset="digits", epochs=15, batch_size=32, lr_step=10, weight_decay=1e-4),
    "digits-events": dict(preset="digits", epochs=15, batch_size=32, lr_step=10, weight_decay=1e-4),
    "cifar10": dict(preset="cifar10", epochs=110, batch_size=64, lr_step=40, weight_decay=1e-4),
    "dvs-gesture": dict(preset="dvs_gesture", epochs=120, batch_size=28, lr_step=40, weight_decay=1e-4),
    "cifar10-dvs": dict(preset="cifar10_dvs", epochs=100, batch_size=32, lr_step=40, weight_decay=1e-3),
    "nmnist": dict(preset="cifar10_dvs", epochs=30, batch_size=32, lr_step=20, weight_decay=1e-4),
}


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill the ``None`` fields with the data set's defaults and validate the numbers."""
    if config.dataset not in _DEFAULTS:
        dataset_options(config.dataset)  # raises the UserError listing the data sets
    defaults = _DEFAULTS[config.dataset]
    cfg = dataclasses.replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})
    for name in ("epochs", "batch_size", "lr_step", "checkpoint_every", "max_samples", "threads"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise UserError(f"{name} must be a positive integer, got {value}")
    numbers = dict(lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                   lr_gamma=cfg.lr_gamma)
    bad = [f"{k}={v}" for k, v in numbers.items() if not math.isfinite(v)]
    if bad:
        raise UserError(f"{', '.join(bad)}: every learning-rate setting must be a finite number")
    if not 0 <= cfg.seed < 2 ** 32:
        raise UserError(f"seed must be an integer in 0..{2 ** 32 - 1}, got {cfg.seed}")
    if cfg.workers is not None and cfg.workers < 0:
        raise UserError(f"workers must be 0 (read in the training process) or more, got {cfg.workers}")
    if cfg.lr <= 0 or cfg.weight_decay < 0 or not 0 <= cfg.momentum < 1 or cfg.lr_gamma <= 0:
        raise UserError("need lr > 0, weight_decay >= 0, 0 <= momentum < 1 and lr_gamma > 0")
    if cfg.resume and cfg.force:
        raise UserError("--resume continues a run and --force starts it over: pass one of them")
    if cfg.device not in ("cpu", "cuda"):
        raise UserError(f"device must be 'cpu' or 'cuda', got {cfg.device!r}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    try:
        resolve_neuron_kernel(cfg.neuron_kernel, cfg.device)
    except ValueError as exc:
        raise UserError(f"--neuron-kernel: {exc}") from exc
    return cfg


def build(cfg: TrainConfig) -> tuple[dict, dict]:
    """The data set spec and the model arguments of a resolved config (validated, nothing loaded)."""
    allowed = dataset_options(cfg.dataset)
    data_dir = os.path.abspath(cfg.data_dir) if cfg.data_dir else None
    options = {k: v for k, v in dict(timesteps=cfg.timesteps, data_dir=data_dir).items() if k in allowed}
    spec = dataset_spec(cfg.dataset, cfg.seed, **options)
    timesteps = spec["timesteps"] if input_kind(spec) == "events" else cfg.timesteps
    try:
        args = preset_args(cfg.preset, depth=cfg.depth, widths=cfg.widths, levels=cfg.levels,
                           variant=cfg.variant, timesteps=timesteps, in_channels=spec["channels"],
                           num_classes=spec["classes"])
    except (ValueError, TypeError) as exc:
        raise UserError(str(exc)) from exc
    check_trainable(args)
    return spec, args


@torch.no_grad()
def evaluate(model: DSResNet, dataset, batch_size: int = 256, device="cpu", workers: int = 0) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on a split from :func:`mlf_deploy.data.open_split`,
    read in batches."""
    was_training = model.training
    model.eval()
    correct = 0
    for xb, yb in batches(dataset, range(len(dataset)), batch_size, workers):
        logits = model(model_input(xb.to(device)))
        correct += int((logits.argmax(1).cpu() == yb).sum())
    model.train(was_training)
    return correct / max(len(dataset), 1)


def _train_epoch(net, opt, dataset, sampler, cfg, spec, device, bar_on, epoch, workers):
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)  # augmentation only
    order = torch.tensor(list(iter(sampler)), dtype=torch.long)
    loss_sum, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
    bar = tqdm(batches(dataset, order, cfg.batch_size, workers), total=-(-len(order) // cfg.batch_size),
               desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not bar_on or not sys.stderr.isatty(),
               leave=False, unit="batch")  # a bar in a log file is noise
    for xb, yb in bar:
        xb, yb = augment(xb, spec, gen).to(device), yb.to(device)
        logits = net(model_input(xb))
        loss = torch.nn.functional.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += float(loss.detach()) * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        seen += len(yb)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                        samples_s=f"{seen / (time.perf_counter() - t0):.0f}")
    seconds = time.perf_counter() - t0
    return dict(loss=loss_sum / len(order), train_accuracy=correct / len(order),
                samples_per_s=len(order) / seconds)


def train(config: TrainConfig, progress: bool = True, log=print) -> dict:
    """Train, evaluate each epoch, checkpoint to ``out_dir``; see the module docstring.

    Rank 0 holds a lock beside ``out_dir`` for the whole run, so two runs never share one folder.

    Returns:
        ``test_accuracy`` (last epoch), ``train_accuracy``, ``loss``, ``checkpoint`` and ``metrics``
        paths, ``epochs`` completed, ``seconds`` of this call, ``rank`` and ``world_size``.
    """
    cfg = resolve(config)
    out = Path(cfg.out_dir)
    check_out_dir(out)
    distributed = env_int("WORLD_SIZE", 1, 1) > 1  # checked here, before any work
    if distributed and env_int("RANK", None) != 0:  # torchrun: only rank 0 writes, so only it locks
        return _train(cfg, progress, log)
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        return _train(cfg, progress, log)


def _train(cfg: TrainConfig, progress: bool, log) -> dict:
    start_time = time.perf_counter()
    spec, model_args = build(cfg)
    out = Path(cfg.out_dir)
    check_no_run(out, cfg)
    ckpt_path, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
    resumed = read_resume(ckpt_path, spec, model_args) if cfg.resume else None
    full_train, test_set = open_split(spec, "train"), open_split(spec, "test")
    train_set = full_train
    if cfg.max_samples:
        train_set, test_set = full_train.head(cfg.max_samples), test_set.head(cfg.max_samples)
    if len(train_set) == 0 or len(test_set) == 0:
        raise UserError(f"dataset {cfg.dataset!r} has {len(train_set)} training and {len(test_set)} "
                        "test samples; both splits need at least one")
    check_training_run(model_args, spec, cfg.batch_size)
    rank, world, device = setup_distributed(cfg.device)
    (threads, thread_source), workers = choose_threads(cfg.threads), choose_workers(train_set,
                                                                                   cfg.workers)
    # The count is part of the arithmetic (docs/determinism.md): kept in the checkpoint's config.
    cfg = dataclasses.replace(cfg, threads=threads)
    log = log if rank == 0 else (lambda *a, **k: None)
    # The whole training split's input range (quantization's input_max), measured once here and
    # kept in the checkpoint, so that export and verify never read the split again. Only rank 0
    # writes checkpoints, so only it measures.
    inputs = (resumed or {}).get("input")
    if inputs is None and rank == 0:
        inputs = split_range(full_train, f"the training split of {cfg.dataset!r}", workers)
    try:
        torch.manual_seed(cfg.seed)
        model = DSResNet(**model_args).to(device)
        set_neuron_kernel(model, resolve_neuron_kernel(cfg.neuron_kernel, device))
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step, cfg.lr_gamma)
        history, first = [], 0
        if resumed is not None:
            history, first = restore_run(resumed, model, opt, sched, ckpt_path)
            if first >= cfg.epochs:
                log(f"nothing to do: {ckpt_path} already finished all {cfg.epochs} epochs; "
                    "pass a larger --epochs to train further")
            else:
                log(f"resuming {ckpt_path} after epoch {first}")
        net = DistributedDataParallel(model) if world > 1 else model
        if cfg.compile:
            log("warning: --compile (inductor) gave a gradient that differs from eager in a "
                "check on the CPU (docs/gpu.md); use it to experiment, not for a run to deploy")
            net = torch.compile(net)
        # DistributedSampler shuffles with seed + epoch, so the order depends on nothing else.
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
        log(describe_threads(threads, thread_source) + " per process"
            + (f", {workers} data worker process(es)" if workers else ""))
        before = (resumed or {}).get("config", {}).get("threads")
        if resumed is not None and before not in (None, threads):
            log(f"note: {ckpt_path} was trained with {before} thread(s); "
                f"the epochs from here run with {threads}, so the weights will not be bit-identical "
                "to an uninterrupted run (pass --threads to match)")

        def state(epoch):
            return copy.deepcopy(dict(
                model_args=model_args, state_dict=model.state_dict(), config=dataclasses.asdict(cfg),
                dataset=spec, input=inputs, metrics=history[-1] if history else {}, epoch=epoch,
                history=history,
                optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                rng={"torch": torch.get_rng_state()}))

        last, saved = None, first
        try:
            for epoch in range(first, cfg.epochs):
                sampler.set_epoch(epoch)
                row = _train_epoch(net, opt, train_set, sampler, cfg, spec, device,
                                   progress and rank == 0, epoch, workers)
                row.update(epoch=epoch + 1, lr=opt.param_groups[0]["lr"])
                sched.step()
                if world > 1:  # BN running stats are per rank; keep rank 0's so all ranks agree
                    for buf in model.buffers():
                        dist.broadcast(buf, 0)
                row["test_accuracy"] = evaluate(model, test_set, 4 * cfg.batch_size, device, workers)
                history.append(row)
                last = state(epoch + 1)
                if rank == 0:
                    atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in history))
                    if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
                        save_checkpoint(ckpt_path, last)
                        saved = epoch + 1
                log(f"epoch {epoch + 1}/{cfg.epochs} loss {row['loss']:.4f} train {row['train_accuracy']:.4f}"
                    f" test {row['test_accuracy']:.4f} lr {row['lr']:.4g} {row['samples_per_s']:.0f} samples/s")
        except KeyboardInterrupt:
            if rank == 0 and last is not None and last["epoch"] > saved:
                save_checkpoint(ckpt_path, last)
                saved = last["epoch"]
            if saved:
                log(f"interrupted in epoch {saved + 1}: {ckpt_path} keeps epoch {saved} of "
                    f"{cfg.epochs}; continue with the same command and --resume")
            else:
                log("interrupted before the first epoch finished; nothing was saved")
            raise
        if cfg.rank_hashes:
            atomic_write_text(out / f"rank{rank}.sha", weights_sha256(model) + "\n")
        final = history[-1] if history else {}
        return dict(test_accuracy=final.get("test_accuracy"), train_accuracy=final.get("train_accuracy"),
                    loss=final.get("loss"), checkpoint=str(ckpt_path), metrics=str(metrics_path),
                    epochs=len(history), seconds=time.perf_counter() - start_time,
                    dataset=cfg.dataset, rank=rank, world_size=world, threads=threads,
                    already_finished=resumed is not None and first >= cfg.epochs)
    finally:
        if world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
