"""What a training run is asked to do (:class:`TrainConfig`), the per data set defaults that fill
in what it leaves open, and the checks of its numbers, all made before any work.

A run either trains a model from scratch (the paper's recipe, docs/references.md §1) or continues
a trained checkpoint (``init``); with ``weight_bits`` as well it trains through the forward pass
of that width's int graph (quantization-aware training, docs/qat.md), whose defaults differ: a few
epochs at a tenth of the learning rate, no weight decay, a cosine schedule.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from mlf_deploy.data import dataset_options
from mlf_deploy.device import resolve_device
from mlf_deploy.errors import UserError
from mlf_deploy.ir.semantics import WEIGHT_BITS_RANGE, valid_weight_bits
from mlf_deploy.neuron_kernel import resolve_neuron_kernel


@dataclass
class TrainConfig:
    dataset: str | None = None         # a key of mlf_deploy.data.DATASETS; None: digits, or init's
    preset: str | None = None          # model preset; None: the one made for the data set
    depth: int | None = None           # 6n+2; None: the preset's
    widths: tuple[int, int, int] | None = None  # stage widths; None: the preset's
    levels: int | None = None          # MLF levels K; None: the preset's (3, as the code ships)
    timesteps: int | None = None       # T; for event sets also the number of frames
    variant: str | None = None         # "ds" (fire before the add) or "plain"; None: "ds"
    init: str | None = None            # start from this checkpoint (its model, data set, weights)
    weight_bits: int | None = None     # train through the int graph of this width (needs init)
    epochs: int | None = None          # None: per data set (paper 110/120/100; digits 15); QAT 5
    batch_size: int | None = None      # None: per data set (paper 64/28/32; digits 32); QAT init's
    lr: float | None = None            # None: 0.1 (paper, every data set); QAT 0.01
    momentum: float = 0.9              # paper
    weight_decay: float | None = None  # None: 1e-4, 1e-3 for CIFAR10-DVS (paper); QAT 0
    lr_schedule: str | None = None     # "step" (StepLR per epoch), "cosine" (per batch); QAT cosine
    lr_step: int | None = None         # StepLR period in epochs; None: 40 (paper), 10 for digits
    lr_gamma: float = 0.1              # paper
    seed: int = 0                      # init, split and shuffling (a function of seed and epoch)
    device: str = "cpu"                # "cpu", "cuda" or "auto" (cuda:LOCAL_RANK under torchrun)
    data_dir: str | None = None        # files of cifar10 and the DVS sets
    out_dir: str = "runs/train"        # checkpoint.pt and metrics.jsonl
    resume: bool = False               # continue from out_dir/checkpoint.pt
    force: bool = False                # start over in an out_dir holding a run (replaces its files)
    max_samples: int | None = None     # only the first N train and N test samples (quick runs)
    checkpoint_every: int = 1          # epochs between checkpoints; the last epoch always saves
    compile: bool = False              # torch.compile; off: compiling costs more than a digits run
    neuron_kernel: str = "auto"        # MLF layers: "torch", "triton" (fused); "auto": GPU: triton
    workers: int | None = None         # DataLoader processes reading disk-streamed sets; None: auto
    threads: int | None = None         # torch threads per process; None: OMP_NUM_THREADS, else 1
    rank_hashes: bool = False          # each rank writes rank{r}.sha of its final weights (DDP)


# Per data set defaults. Digits: 15 epochs of batch 32 at lr 0.1, x0.1 after 10, reach ~98% in
# about two minutes on two CPU cores; the paper's 40-epoch step would never decay in that budget.
_DEFAULTS = {
    "digits": dict(preset="digits", epochs=15, batch_size=32, lr_step=10, weight_decay=1e-4),
    "digits-events": dict(preset="digits", epochs=15, batch_size=32, lr_step=10,
                          weight_decay=1e-4),
    "cifar10": dict(preset="cifar10", epochs=110, batch_size=64, lr_step=40, weight_decay=1e-4),
    "dvs-gesture": dict(preset="dvs_gesture", epochs=120, batch_size=28, lr_step=40,
                        weight_decay=1e-4),
    "cifar10-dvs": dict(preset="cifar10_dvs", epochs=100, batch_size=32, lr_step=40,
                        weight_decay=1e-3),
    "nmnist": dict(preset="cifar10_dvs", epochs=30, batch_size=32, lr_step=20, weight_decay=1e-4),
}
# Quantization-aware training: a few epochs recover most of the post-training loss; the weights
# only move to the grid (a tenth of training's rate), and decay would pull them off the grid they
# settle on. The batch is the one the checkpoint was trained with.
_QAT_DEFAULTS = dict(epochs=5, lr=0.01, weight_decay=0.0, lr_schedule="cosine")
_MODEL_FIELDS = ("preset", "depth", "widths", "levels", "timesteps", "variant")


def resolve(config: TrainConfig, init: dict | None = None) -> TrainConfig:
    """Fill the ``None`` fields with the defaults and validate the numbers. ``init``: the
    checkpoint ``config.init`` names, read and validated (it gives the data set and batch)."""
    _check_start(config, init)
    dataset = init["dataset"]["name"] if init is not None else (config.dataset or "digits")
    if dataset not in _DEFAULTS:
        dataset_options(dataset)  # raises the UserError listing the data sets
    defaults = {**_DEFAULTS[dataset], "lr": 0.1, "lr_schedule": "step"}
    if config.weight_bits is not None:
        batch = (init.get("config") or {}).get("batch_size") or defaults["batch_size"]
        defaults.update(_QAT_DEFAULTS, batch_size=batch)
    cfg = dataclasses.replace(config, dataset=dataset, **{
        k: v for k, v in defaults.items() if getattr(config, k, None) is None})
    if init is not None:
        cfg = dataclasses.replace(cfg, preset=None)  # the model is init's, not a preset's
    _check_numbers(cfg)
    device = resolve_device(cfg.device)  # "auto" becomes the device it found
    cfg = dataclasses.replace(cfg, device=device.type)
    try:
        resolve_neuron_kernel(cfg.neuron_kernel, cfg.device)
    except ValueError as exc:
        raise UserError(f"--neuron-kernel: {exc}") from exc
    return cfg


def _check_start(config: TrainConfig, init: dict | None) -> None:
    """What a run starts from: a model it builds, or ``init``'s (then no model option)."""
    if config.weight_bits is not None and not valid_weight_bits(config.weight_bits):
        raise UserError("--weight-bits must be an integer from {} to {}, got {}".format(
            *WEIGHT_BITS_RANGE, config.weight_bits))
    if config.init is None:
        if config.weight_bits is not None:
            raise UserError("--weight-bits trains through the int graph of a trained model: pass "
                            "--init CKPT, the checkpoint to start from")
        return
    given = [f"--{k}" for k in _MODEL_FIELDS if getattr(config, k) is not None]
    if given:
        raise UserError(f"--init takes the model from {config.init}; drop {', '.join(given)}")
    name = init["dataset"]["name"]
    if config.dataset not in (None, name):
        raise UserError(f"--init {config.init} was trained on {name!r}, not {config.dataset!r}; "
                        "drop --dataset")


def _check_numbers(cfg: TrainConfig) -> None:
    for name in ("epochs", "batch_size", "lr_step", "checkpoint_every", "max_samples", "threads"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise UserError(f"{name} must be a positive integer, got {value}")
    numbers = dict(lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                   lr_gamma=cfg.lr_gamma)
    bad = [f"{k}={v}" for k, v in numbers.items() if not math.isfinite(v)]
    if bad:
        raise UserError(f"{', '.join(bad)}: need a finite lr, momentum, weight_decay and lr_gamma")
    if not 0 <= cfg.seed < 2 ** 32:
        raise UserError(f"seed must be an integer in 0..{2 ** 32 - 1}, got {cfg.seed}")
    if cfg.workers is not None and cfg.workers < 0:
        raise UserError(f"workers must be 0 (read in the training process) or more, "
                        f"got {cfg.workers}")
    if cfg.lr <= 0 or cfg.weight_decay < 0 or not 0 <= cfg.momentum < 1 or cfg.lr_gamma <= 0:
        raise UserError("need lr > 0, weight_decay >= 0, 0 <= momentum < 1 and lr_gamma > 0")
    if cfg.lr_schedule not in ("step", "cosine"):
        raise UserError(f"lr_schedule must be 'step' or 'cosine', got {cfg.lr_schedule!r}")
    if cfg.resume and cfg.force:
        raise UserError("--resume continues a run and --force starts it over: pass one of them")
