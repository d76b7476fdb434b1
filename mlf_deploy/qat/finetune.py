"""``finetune``: the earlier name of quantization-aware training, kept for existing callers.

``finetune(FinetuneConfig(ckpt, out, weight_bits=N))`` is exactly
``train(TrainConfig(init=ckpt, out_dir=out, weight_bits=N))`` (:mod:`mlf_deploy.training`): the same
harness, the same checkpoint, the same numbers for the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlf_deploy.training import TrainConfig, train


@dataclass
class FinetuneConfig:
    checkpoint: str                    # the trained checkpoint to start from (TrainConfig.init)
    out_dir: str                       # writes checkpoint.pt and metrics.jsonl here
    weight_bits: int = 4               # signed weight mantissa bits of the deployment (2..8)
    epochs: int | None = None          # None: TrainConfig's quantization-aware default (5)
    lr: float | None = None            # None: 0.01
    momentum: float = 0.9
    weight_decay: float | None = None  # None: 0
    batch_size: int | None = None      # None: the checkpoint's training batch size
    seed: int = 0                      # shuffling and augmentation
    max_samples: int | None = None     # only the first N train and N test samples (quick runs)
    data_dir: str | None = None        # files of non-embedded data sets
    resume: bool = False               # continue out_dir/checkpoint.pt
    force: bool = False                # start over in an out_dir that holds a run
    device: str = "cpu"                # cpu, cuda or auto (mlf_deploy.device.resolve_device)

    def train_config(self) -> TrainConfig:
        fields = {k: v for k, v in vars(self).items() if k != "checkpoint"}
        return TrainConfig(init=self.checkpoint, **fields)


def finetune(cfg: FinetuneConfig, progress: bool = True, log=print) -> dict:
    """:func:`mlf_deploy.training.train` of ``cfg.train_config()``; returns its result."""
    return train(cfg.train_config(), progress, log)
