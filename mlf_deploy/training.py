"""Training of spiking DS-ResNets (docs/references.md §1): SGD with momentum, StepLR stepped per
epoch, cross-entropy on the time-averaged logits, the test split evaluated after every epoch. With
``init`` and ``weight_bits`` the same run is quantization-aware training (docs/qat.md): it starts
from a trained checkpoint and computes the loss through the int graph's forward.

Runs alone or under ``torchrun`` (DistributedDataParallel: ``gloo`` on CPU, ``nccl`` on GPU; rank 0
logs and writes). Shuffling is a function of ``(seed, epoch)`` only, and the checkpoint carries the
optimizer, scheduler and RNG states, so ``resume=True`` reproduces an uninterrupted run bit for bit
on CPU. The data are read in batches (disk-streamed sets never whole).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch.distributed as dist

from mlf_deploy.checkpoint import read_checkpoint
from mlf_deploy.data import dataset_options, dataset_spec, input_kind, open_split
from mlf_deploy.data.ranges import split_range
from mlf_deploy.errors import UserError, option
from mlf_deploy.fileio import atomic_write_text
from mlf_deploy.models import preset_args
from mlf_deploy.outputs import output_lock
from mlf_deploy.threads import describe as describe_threads
from mlf_deploy.training_config import TrainConfig, resolve
from mlf_deploy.training_env import choose_threads, choose_workers, env_int, setup_distributed
from mlf_deploy.training_files import (
    check_no_run,
    check_not_init,
    check_out_dir,
    check_trainable,
    check_training_run,
    read_resume,
    weights_sha256,
)
from mlf_deploy.training_loop import TrainingRun, evaluate, run_epochs
from mlf_deploy.training_start import Placement, start_run

__all__ = ["TrainConfig", "build", "evaluate", "resolve", "train"]


def build(cfg: TrainConfig, init: dict | None = None) -> tuple[dict, dict]:
    """The data set spec and the model arguments of a resolved config (validated, nothing loaded):
    ``init``'s when the run starts from a checkpoint."""
    data_dir = os.path.abspath(cfg.data_dir) if cfg.data_dir else None
    if init is not None:
        spec = {**init["dataset"], **({"data_dir": data_dir} if data_dir else {})}
        check_trainable(init["model_args"])
        return spec, init["model_args"]
    allowed = dataset_options(cfg.dataset)
    options = {k: v for k, v in dict(timesteps=cfg.timesteps, data_dir=data_dir).items()
               if k in allowed}
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


def train(config: TrainConfig, progress: bool = True, log=None) -> dict:
    """Train, evaluate each epoch, checkpoint to ``out_dir``; see the module docstring.

    ``log`` gets each note of the run with its options marked (:func:`mlf_deploy.errors.option`),
    for the caller to spell (the command line: as flags); by default they are printed as keywords.

    Rank 0 holds a lock beside ``out_dir`` for the whole run, so two runs never share one folder.

    Returns:
        ``test_accuracy`` (last epoch), ``train_accuracy``, ``loss``, ``checkpoint`` and ``metrics``
        paths, ``epochs`` completed, ``seconds`` of this call, ``rank`` and ``world_size``; with
        ``weight_bits`` also ``post_training_accuracy`` (the int graph's before training),
        ``float_accuracy`` (the starting checkpoint's, in float) and the epochs' ``history``.
    """
    log = log or (lambda note: print(UserError(note).render()))
    init = read_checkpoint(config.init) if config.init is not None else None
    cfg = resolve(config, init)
    out = Path(cfg.out_dir)
    check_out_dir(out)
    check_not_init(out, cfg.init)
    distributed = env_int("WORLD_SIZE", 1, 1) > 1  # checked here, before any work
    if distributed and env_int("RANK", None) != 0:  # torchrun: only rank 0 writes, so only it locks
        return _train(cfg, init, progress, log)
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        return _train(cfg, init, progress, log)


def _train(cfg: TrainConfig, init: dict | None, progress: bool, log) -> dict:
    start_time = time.perf_counter()
    spec, model_args = build(cfg, init)
    out = Path(cfg.out_dir)
    check_no_run(out, cfg)
    resumed = read_resume(out / "checkpoint.pt", spec, model_args, cfg.weight_bits) \
        if cfg.resume else None
    full_train, train_set, test_set = _open_splits(cfg, spec)
    check_training_run(model_args, spec, cfg.batch_size)
    rank, world, device = setup_distributed(cfg.device)
    (threads, thread_source), workers = choose_threads(cfg.threads), choose_workers(train_set,
                                                                                   cfg.workers)
    # The count is part of the arithmetic (docs/determinism.md): kept in the checkpoint's config.
    cfg = dataclasses.replace(cfg, threads=threads)
    log = log if rank == 0 else (lambda *a, **k: None)
    # The whole training split's input range (quantization's input_max), measured once and kept in
    # the checkpoint, so that export and verify never read the split again. Only rank 0 writes
    # checkpoints, so only it measures, unless every rank needs it for the integer grid.
    inputs = (resumed or {}).get("input") or (init or {}).get("input")
    if inputs is None and (rank == 0 or cfg.weight_bits is not None):
        inputs = split_range(full_train, f"the training split of {cfg.dataset!r}", workers)
    try:
        run = start_run(cfg, init, spec, model_args, inputs, resumed,
                        Placement(rank, world, device, workers), (train_set, test_set), log)
        log(describe_threads(threads, thread_source) + " per process"
            + (f", {workers} data worker process(es)" if workers else ""))
        _note_thread_change(resumed, threads, out, log)
        run_epochs(run, progress, log)
        if cfg.rank_hashes:
            atomic_write_text(out / f"rank{rank}.sha", weights_sha256(run.model) + "\n")
        return _result(run, resumed, start_time, threads)
    finally:
        if world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _open_splits(cfg: TrainConfig, spec: dict):
    """``(whole training split, training samples, test samples)``, opened, not read."""
    full_train = open_split(spec, "train")
    train_set, test_set = full_train, open_split(spec, "test")
    if cfg.max_samples:
        train_set, test_set = full_train.head(cfg.max_samples), test_set.head(cfg.max_samples)
    if len(train_set) == 0 or len(test_set) == 0:
        raise UserError(f"dataset {cfg.dataset!r} has {len(train_set)} training and "
                        f"{len(test_set)} test samples; both splits need at least one")
    return full_train, train_set, test_set


def _note_thread_change(resumed: dict | None, threads: int, out: Path, log) -> None:
    before = (resumed or {}).get("config", {}).get("threads")
    if resumed is not None and before not in (None, threads):
        log(f"note: {out / 'checkpoint.pt'} was trained with {before} thread(s); the epochs from "
            f"here run with {threads}, so the weights will not be bit-identical to an "
            f"uninterrupted run (pass {option('threads')} to match)")


def _result(run: TrainingRun, resumed: dict | None, start_time: float, threads: int) -> dict:
    final = run.history[-1] if run.history else {}
    result = dict(test_accuracy=final.get("test_accuracy"),
                  train_accuracy=final.get("train_accuracy"), loss=final.get("loss"),
                  checkpoint=str(run.out / "checkpoint.pt"), metrics=str(run.out / "metrics.jsonl"),
                  epochs=len(run.history), seconds=time.perf_counter() - start_time,
                  dataset=run.cfg.dataset,
                  rank=run.rank, world_size=run.world, threads=threads,
                  already_finished=resumed is not None and run.first_epoch >= run.cfg.epochs)
    tuned = run.extra.get("finetune")
    if tuned is not None:
        result.update(weight_bits=tuned["weight_bits"], history=run.history,
                      post_training_accuracy=tuned["post_training_accuracy"],
                      float_accuracy=tuned["source_float_accuracy"])
    return result
