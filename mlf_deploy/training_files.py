"""A training run's folder: checked writable before any work, an earlier run continued
(``--resume``, with the same settings) or started over (``--force``) but never silently replaced,
and the hash that compares a model's weights across processes."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import torch

from mlf_deploy import limits
from mlf_deploy.checkpoint import read_checkpoint
from mlf_deploy.errors import UserError, option
from mlf_deploy.ownership import adopt, allow_replace, check_replace


def check_out_dir(out: Path) -> None:
    """Fail before any work when ``out`` cannot become a writable directory; create nothing."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a directory; choose another "
                        f"{option('out')}")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"cannot create output directory {out}: {parent} is a file")
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write to {parent}: permission denied; choose a writable "
                        f"{option('out')}")


def _plain(obj):
    return json.loads(json.dumps(obj, default=list))


def check_not_init(out: Path, init: str | None) -> None:
    if init is not None and Path(init).resolve() == (out / "checkpoint.pt").resolve():
        raise UserError(f"{option('out', out)} holds the input checkpoint; choose another folder")


def read_resume(path: Path, spec: dict, model_args: dict, weight_bits: int | None = None) -> dict:
    """The run in ``path`` to continue, refused unless it has the model, data set and integer
    width (``weight_bits``, None: a float run) this run was given."""
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} does not exist; run without {option('resume')}")
    ckpt = read_checkpoint(path)
    adopt(path)  # the run the user asked to continue: its checkpoint is replaced as it goes on
    missing = [k for k in ("optimizer", "scheduler", "rng", "epoch", "history") if k not in ckpt]
    if missing:
        raise UserError(f"{path} cannot be resumed: it lacks {', '.join(missing)}")
    theirs = {**_plain(ckpt["dataset"]), "data_dir": None}
    diffs = sorted(k for k in {**model_args, **ckpt["model_args"]}
                   if _plain(model_args.get(k)) != _plain(ckpt["model_args"].get(k)))
    diffs += sorted(k for k in {**spec, **theirs}
                    if k != "data_dir" and spec.get(k) != theirs.get(k))
    if (ckpt.get("finetune") or {}).get("weight_bits") != weight_bits:
        diffs.append("weight_bits")
    if diffs:
        raise UserError(f"{path} was trained with different settings ({', '.join(diffs)}); resume "
                        f"with the options of that run or choose another {option('out')}")
    return ckpt


RUN_FILES = ("checkpoint.pt", "metrics.jsonl")


def check_trainable(args: dict) -> None:
    """The model arguments a checkpoint may hold (every command must read what train writes) and
    a model within the weight limit, checked before the model is built."""
    from mlf_deploy.checkpoint_schema import check_model_args, model_weights
    check_model_args(args, "training")
    if model_weights(args) > limits.MAX_WEIGHTS:
        raise UserError(f"this model has {model_weights(args)} weights, more than this tool's "
                        f"limit of {limits.MAX_WEIGHTS}; choose smaller {option('widths')} or "
                        f"{option('depth')}")


# Bytes training keeps per level neuron and timestep for the backward pass: float32 conv output,
# membrane and spike (12), rounded up. A run records less per neuron than inference compares.
TRAIN_BYTES_PER_NEURON_STEP = 16


def check_training_run(args: dict, spec: dict, batch_size: int, what: str = "training") -> None:
    """One batch's activations at the model's T within half of the available memory."""
    from mlf_deploy.lowering import lower
    from mlf_deploy.models import DSResNet
    shape = (spec["channels"], spec["size"], spec["size"])
    graph = lower(DSResNet(**args).eval(), shape, spec["kind"], args.get("timesteps", 4))
    limits.check_graph_run(graph, batch_size, what, option="batch_size",
                           bytes_per=TRAIN_BYTES_PER_NEURON_STEP)


def restore_run(ckpt: dict, model, opt, sched, path) -> tuple[list, int]:
    """Weights, optimizer, scheduler and RNG of a run to resume; ``(history, epochs done)``. Each
    part comes from the file, so any of them not in the form torch wrote is one UserError."""
    history = ckpt["history"]
    if not (isinstance(history, list) and all(isinstance(r, dict) for r in history)):
        raise UserError(f"{path} cannot be resumed: its history is not a list of epoch records")
    rng = ckpt["rng"].get("torch") if isinstance(ckpt["rng"], dict) else None
    if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8
            and rng.shape == torch.get_rng_state().shape):
        raise UserError(f"{path} cannot be resumed: its rng state is not torch's")
    try:
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path} cannot be resumed: its optimizer or scheduler state is not the "
                        f"one this run builds ({first[:120]})") from exc
    for param, state in opt.state.items():  # loaded as stored: shapes and numbers unchecked
        if any(isinstance(v, torch.Tensor) and v.numel() > 1 and v.shape != param.shape
               for v in state.values()):
            raise UserError(f"{path} cannot be resumed: an optimizer buffer does not match its "
                            "weight's shape")
    numbers = [sched.last_epoch, getattr(sched, "step_size", 1), getattr(sched, "gamma", 1.0),
               *(g.get("lr") for g in opt.param_groups)]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in numbers) or sched.last_epoch < 0 or getattr(sched, "step_size", 1) < 1:
        raise UserError(f"{path} cannot be resumed: its scheduler or learning rate is not a "
                        "finite number in range")
    torch.set_rng_state(rng)
    return list(history), int(ckpt["epoch"])


def check_no_run(out: Path, cfg) -> None:
    """An earlier run is continued (--resume) or started over (--force), never silently replaced;
    either replaces only files this tool wrote (checked by content hash, :mod:`ownership`)."""
    found = [n for n in RUN_FILES if (out / n).exists() or (out / n).is_symlink()]
    if found and not (cfg.resume or cfg.force):
        raise UserError(f"{out} already holds a run ({', '.join(found)}); pass {option('resume')} "
                        f"to continue it, {option('force')} to start over (replaces those "
                        f"files), or choose another {option('out')}")
    for name in found:
        if cfg.resume and name == "checkpoint.pt" and not (out / name).is_symlink():
            continue  # read and validated by read_resume, which adopts it
        allow_replace(out / name)
        check_replace(out / name)


def weights_sha256(model: torch.nn.Module) -> str:
    """A hash of every parameter and buffer, to compare models across processes."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
