"""Checkpoints: everything export, verify and energy need, in one ``.pt`` file.

A checkpoint is a plain dict (loaded with ``weights_only=True``, so loading never runs its code):

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
from mlf_deploy.errors import UserError, option
from mlf_deploy.fileio import atomic_path
from mlf_deploy.models import DSResNet

FORMAT, VERSION = "mlf-deploy-checkpoint", 1


def save_checkpoint(path, ckpt: dict) -> None:
    ckpt = {"format": FORMAT, "version": VERSION, **ckpt}
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def read_checkpoint(path) -> dict:
    """Load and validate a checkpoint dict; every failure is one UserError naming the file."""
    if os.path.isdir(path):
        inside = os.path.join(path, "checkpoint.pt")
        raise UserError(f"checkpoint {path} is a folder; give the checkpoint file"
                        + (f" {inside}" if os.path.isfile(inside) else " (checkpoint.pt in the "
                           f"folder `mlf-deploy train {option('out')}` wrote)"))
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path} does not exist")
    size, budget = os.path.getsize(path), limits.available_memory() // 2
    if size > budget:
        raise UserError(f"checkpoint {path} is {size} bytes, more than half of the available "
                        f"memory ({budget} bytes)")
    with open(path, "rb") as f:
        foreign = what_file_is(f.read(64), str(path))
    if foreign:
        raise UserError(f"{path} is not a readable mlf-deploy checkpoint: it is {foreign}; give "
                        "the checkpoint.pt that `mlf-deploy train` wrote")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the safe unpickler raises many kinds
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            # torch's paragraph suggests loading with weights_only=False: never for a file of
            # unknown origin, and ours never need it
            raise UserError(f"{path} is not a readable mlf-deploy checkpoint: it holds Python "
                            "objects other than tensors and plain containers, which "
                            "`mlf-deploy train` never writes and this tool never runs") from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a readable mlf-deploy checkpoint (truncated or "
                        f"corrupt): {first[:160]}") from exc
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


def what_file_is(head: bytes, name: str = "") -> str | None:
    """What a file that is not a torch checkpoint is, from its first bytes, or None when it may
    be one (a zip or a pickle, the two formats of ``torch.save``)."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return None
    if not head:
        return "an empty file"
    if head.startswith(b"MLFGRAPH"):
        return (f"a deployment graph file (`export {option('target', 'ir')}`: verify takes it "
                f"with {option('graph_file')}, run takes it as ARTIFACT)")
    if name.endswith(".onnx") or head[:1] == b"\x08":  # ONNX: protobuf, field 1 ir_version
        return f"an ONNX model (run it with `mlf-deploy run MODEL {option('input_path', 'x.npy')}`)"
    if head.startswith(b"\x93NUMPY"):
        return "a numpy array"
    text = head.lstrip()
    if text[:1] in (b"{", b"["):
        return "a JSON file"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "not a torch file"


def build_model(ckpt: dict, path="checkpoint") -> DSResNet:
    """The model of a checkpoint, in eval mode; arguments that do not match the weights are an
    error."""
    try:
        model = DSResNet(**ckpt["model_args"])
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path}: model arguments do not match the stored weights: "
                        f"{first[:200]}") from exc
    return model.eval()


def load_model(path) -> tuple[DSResNet, dict]:
    ckpt = read_checkpoint(path)
    return build_model(ckpt, path), ckpt
