"""A training run's folder: checked writable before any work, an earlier run continued
(``--resume``, with the same settings) or started over (``--force``) but never silently replaced,
and the hash that compares a model's weights across processes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from mlf_deploy.checkpoint import read_checkpoint
from mlf_deploy.errors import UserError


def check_out_dir(out: Path) -> None:
    """Fail before any work when ``out`` cannot become a writable directory; create nothing."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a directory; choose another --out")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"cannot create output directory {out}: {parent} is a file")
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write to {parent}: permission denied; choose a writable --out")


def _plain(obj):
    return json.loads(json.dumps(obj, default=list))


def read_resume(path: Path, spec: dict, model_args: dict) -> dict:
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} does not exist; run without --resume")
    ckpt = read_checkpoint(path)
    missing = [k for k in ("optimizer", "scheduler", "rng", "epoch", "history") if k not in ckpt]
    if missing:
        raise UserError(f"{path} cannot be resumed: it lacks {', '.join(missing)}")
    theirs = {**_plain(ckpt["dataset"]), "data_dir": None}
    diffs = sorted(k for k in {**model_args, **ckpt["model_args"]}
                   if _plain(model_args.get(k)) != _plain(ckpt["model_args"].get(k)))
    diffs += sorted(k for k in {**spec, **theirs} if k != "data_dir" and spec.get(k) != theirs.get(k))
    if diffs:
        raise UserError(f"{path} was trained with different settings ({', '.join(diffs)}); resume "
                        "with the options of that run or choose another --out")
    return ckpt


def check_no_run(out: Path, cfg) -> None:
    """An earlier run is continued (--resume) or started over (--force), never silently replaced."""
    found = [n for n in ("checkpoint.pt", "metrics.jsonl") if (out / n).exists()]
    if found and not (cfg.resume or cfg.force):
        raise UserError(f"{out} already holds a run ({', '.join(found)}); pass --resume to continue "
                        "it, --force to start over (replaces those files), or choose another --out")


def weights_sha256(model: torch.nn.Module) -> str:
    """A hash of every parameter and buffer, to compare models across processes."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
