"""Checkpoints: everything export, verify and energy need, in one ``.pt`` file.

A checkpoint is a plain dict (loaded with ``weights_only=True``, so loading never runs code from it):

``format``      "mlf-deploy-checkpoint"; ``version`` 1
``model_args``  the keyword arguments of :class:`mlf_deploy.models.DSResNet`
``state_dict``  the weights and BN buffers
``config``      the training configuration (a dict of primitives)
``dataset``     the dataset spec (name, seed, split parameters...) to rebuild the test split
``metrics``     final metrics (``test_accuracy``...)
``input``       the training split's sample ``shape``, ``timesteps`` (None for static images) and
                per-channel ``min``/``max`` (:mod:`mlf_deploy.data.ranges`), so export, verify and
                energy never re-read the training split; optional (older checkpoints lack it)
``epoch``       epochs completed; optional ``optimizer``, ``scheduler``, ``rng`` for --resume
"""

from __future__ import annotations

import os

import torch

from mlf_deploy import limits
from mlf_deploy.checkpoint_schema import check_checkpoint
from mlf_deploy.errors import UserError
from mlf_deploy.fileio import atomic_path
from mlf_deploy.models import DSResNet

FORMAT, VERSION = "mlf-deploy-checkpoint", 1


def save_checkpoint(path, ckpt: dict) -> None:
    ckpt = {"format": FORMAT, "version": VERSION, **ckpt}
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def read_checkpoint(path) -> dict:
    """Load and validate a checkpoint dict; every failure is one UserError naming the file."""
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist")
    size, budget = os.path.getsize(path), limits.available_memory() // 2
    if size > budget:
        raise UserError(f"checkpoint {path} is {size} bytes, more than half of the available "
                        f"memory ({budget} bytes)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the safe unpickler raises many kinds on a foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a readable mlf-deploy checkpoint (truncated, corrupt or "
                        f"unsafe to load): {first[:160]}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path} is not an mlf-deploy checkpoint (no '{FORMAT}' marker); "
                        "train one with `mlf-deploy train`")
    if ckpt.get("version") != VERSION:
        raise UserError(f"{path} has checkpoint version {ckpt.get('version')}, this tool reads "
                        f"version {VERSION}")
    for key in ("model_args", "state_dict", "dataset"):
        if key not in ckpt:
            raise UserError(f"{path} lacks '{key}'; it was not written by `mlf-deploy train`")
    check_checkpoint(ckpt, str(path))
    return ckpt


def build_model(ckpt: dict, path="checkpoint") -> DSResNet:
    """The model of a checkpoint, in eval mode; a mismatch between arguments and weights is an error."""
    try:
        model = DSResNet(**ckpt["model_args"])
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path}: model arguments do not match the stored weights: {first[:200]}") from exc
    return model.eval()


def load_model(path) -> tuple[DSResNet, dict]:
    ckpt = read_checkpoint(path)
    return build_model(ckpt, path), ckpt
