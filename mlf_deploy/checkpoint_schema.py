"""The schema of a checkpoint, checked after its safe load and before a model is built.

``torch.load(weights_only=True)`` runs no code, but what it returns is whatever the file holds. A
checkpoint a user is handed may carry NaN weights, a timestep count no memory holds, or a dataset
spec with a string where a number belongs; each is refused here, naming the field.
"""

from __future__ import annotations

import math
import numbers

import torch

from mlf_deploy import limits
from mlf_deploy.errors import UserError

# DSResNet's arguments: (type, check) per name; every one is optional (the constructor's default).
_POSITIVE = (lambda v: v > 0, "> 0")
MODEL_ARGS = {
    "depth": (int, (lambda v: 8 <= v <= 1000 and (v - 2) % 6 == 0, "6n+2 from 8 to 1000")),
    "widths": (list, (lambda v: len(v) == 3
                      and all(_is_int(w) and 1 <= w <= limits.MAX_DIM for w in v),
                      f"3 integers in 1..{limits.MAX_DIM}")),
    "in_channels": (int, (lambda v: 1 <= v <= limits.MAX_DIM, f"1..{limits.MAX_DIM}")),
    "num_classes": (int, (lambda v: 1 <= v <= limits.MAX_DIM, f"1..{limits.MAX_DIM}")),
    "levels": (int, (lambda v: 1 <= v <= limits.MAX_LEVELS, f"1..{limits.MAX_LEVELS}")),
    "timesteps": (int, (lambda v: 1 <= v <= limits.MAX_TIMESTEPS, f"1..{limits.MAX_TIMESTEPS}")),
    "variant": (str, (lambda v: v in ("ds", "plain"), "'ds' or 'plain'")),
    "input_bn": (bool, None), "detach_reset": (bool, None),
    "vth": (float, _POSITIVE), "level_step": (float, _POSITIVE),
    "surrogate_width": (float, _POSITIVE), "tau": (float, (lambda v: 0 <= v <= 1, "in [0, 1]")),
}
# Dataset spec options beyond the defaults' types: ranges where a wrong value breaks a loader.
SPEC_RANGES = {
    "test_fraction": (lambda v: 0 < v < 1, "in (0, 1)"),
    "timesteps": (lambda v: 1 <= v <= limits.MAX_TIMESTEPS, f"1..{limits.MAX_TIMESTEPS}"),
    "steps_per_saccade": (lambda v: 1 <= v <= 1000, "1..1000"),
    "contrast": _POSITIVE, "step_us": _POSITIVE, "window_us": _POSITIVE,
    "spatial_factor": _POSITIVE,
    "train_per_class": (lambda v: v >= 1, ">= 1"), "mismatch": (lambda v: v >= 0, ">= 0"),
    "std": (lambda v: v > 0 if not isinstance(v, list) else all(x > 0 for x in v), "> 0"),
}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _typed(v, kind) -> bool:
    if kind is float:
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
    if kind is int:
        return _is_int(v)
    if kind is list:
        return isinstance(v, (list, tuple))
    return isinstance(v, kind)


def _field(where, key, value, kind, check) -> None:
    if not _typed(value, kind):
        raise UserError(f"{where} '{key}' is {str(value)[:40]!r}; expected a finite "
                        f"{getattr(kind, '__name__', kind)}")
    if check and not check[0](value):
        raise UserError(f"{where} '{key}' is {str(value)[:40]!r}; expected {check[1]}")


def check_model_args(args, where: str) -> None:
    if not isinstance(args, dict):
        raise UserError(f"{where}: 'model_args' is not a mapping")
    for key, value in args.items():
        if key not in MODEL_ARGS:
            raise UserError(f"{where}: model argument '{key}' is not one of DSResNet's")
        _field(f"{where}: model argument", key, value, *MODEL_ARGS[key])


def check_dataset_spec(spec, where: str) -> None:
    """Every option of the spec's data set present, of its default's type and in range."""
    from mlf_deploy.data import DATASETS, dataset_options
    if not isinstance(spec, dict):
        raise UserError(f"{where}: 'dataset' is not a mapping")
    if not isinstance(spec.get("name"), str) or spec["name"] not in DATASETS:
        raise UserError(f"{where}: dataset {str(spec.get('name'))[:40]!r} is not one of "
                        f"{', '.join(DATASETS)}")
    kinds = {"seed": int, "kind": str, "channels": int, "size": int, "classes": int}
    for key, default in {**dataset_options(spec["name"]), **kinds}.items():
        if key not in spec:
            raise UserError(f"{where}: dataset spec lacks '{key}'; it was not written by this tool")
        value = spec[key]
        if default is None or key == "data_dir":
            if value is not None and not isinstance(value, str):
                raise UserError(f"{where}: dataset '{key}' must be a path or null")
            continue
        kind = default if isinstance(default, type) else type(default)
        kind = float if kind is int and isinstance(value, float) and key not in kinds else kind
        if kind is list:
            if not _typed(value, list) or len(value) != len(default) or \
                    not all(_typed(x, float) for x in value):
                raise UserError(f"{where}: dataset '{key}' must be {len(default)} finite numbers")
        else:
            _field(f"{where}: dataset", key, value, kind, SPEC_RANGES.get(key))
    if spec["kind"] not in ("static", "events"):
        raise UserError(f"{where}: dataset kind must be 'static' or 'events'")
    for key in ("channels", "size", "classes"):
        _field(f"{where}: dataset", key, spec[key], int, (lambda v: 1 <= v <= limits.MAX_DIM,
                                                          f"1..{limits.MAX_DIM}"))
    for key in ("mean", "std"):
        if key in spec and not isinstance(spec[key], list):
            _field(f"{where}: dataset", key, spec[key], float, SPEC_RANGES.get(key))


def check_state_dict(state, where: str) -> None:
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise UserError(f"{where}: 'state_dict' is not a mapping of names to tensors")
    total = 0
    for key, tensor in state.items():
        total += tensor.numel()
        if total > limits.MAX_WEIGHTS:
            raise UserError(f"{where}: more than {limits.MAX_WEIGHTS} stored values")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(f"{where}: tensor '{key}' holds NaN or infinite values; the model "
                            "diverged in training or the file was altered")
        if key.endswith("running_var") and bool((tensor < 0).any()):
            raise UserError(f"{where}: tensor '{key}' holds a negative variance; the file was "
                            "altered")


def model_weights(args: dict) -> int:
    """Convolution and readout weights :class:`DSResNet` allocates for ``args`` (checked against
    what the file stores before the model is built: its arguments alone could ask for gigabytes)."""
    depth, widths = args.get("depth", 20), list(args.get("widths", (16, 32, 64)))
    cin = widths[0]
    total = 9 * args.get("in_channels", 3) * cin
    for stage, width in enumerate(widths):
        for i in range((depth - 2) // 6):
            shortcut = cin * width if cin != width or (stage and not i) else 0
            total += 9 * cin * width + 9 * width * width + shortcut
            cin = width
    return total + cin * args.get("num_classes", 10)


def check_input_range(info, spec: dict, where: str) -> None:
    """The optional ``input`` record (:mod:`mlf_deploy.data.ranges`): the dataset's sample shape
    and kind, and one finite ``min <= max`` pair per channel."""
    if not isinstance(info, dict) or set(info) != {"shape", "timesteps", "min", "max"}:
        raise UserError(f"{where}: 'input' must hold exactly shape, timesteps, min and max")
    shape = info["shape"]
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(_is_int(s) for s in shape)
            and list(shape) == [spec["channels"], spec["size"], spec["size"]]):
        raise UserError(f"{where}: input shape {str(shape)[:40]} is not the dataset's "
                        f"[{spec['channels']}, {spec['size']}, {spec['size']}]")
    steps = info["timesteps"]
    if spec["kind"] == "static" and steps is not None:
        raise UserError(f"{where}: input timesteps is {str(steps)[:40]!r}; static images have none")
    if spec["kind"] == "events":
        _field(f"{where}: input", "timesteps", steps, int, SPEC_RANGES["timesteps"])
        if steps != spec.get("timesteps"):
            raise UserError(f"{where}: input timesteps {steps} is not the dataset's "
                            f"{spec.get('timesteps')}")
    lo, hi = info["min"], info["max"]
    if not all(_typed(v, list) and len(v) == shape[0] and all(_typed(x, float) for x in v)
               for v in (lo, hi)) or any(a > b for a, b in zip(lo, hi)):
        raise UserError(f"{where}: input min/max must be {shape[0]} finite numbers each, "
                        "min <= max per channel")


def check_checkpoint(ckpt: dict, where: str) -> None:
    """Raise one UserError naming the first field of ``ckpt`` this tool cannot use."""
    check_model_args(ckpt["model_args"], where)
    check_state_dict(ckpt["state_dict"], where)
    stored = sum(t.numel() for t in ckpt["state_dict"].values())
    if model_weights(ckpt["model_args"]) > stored:
        raise UserError(f"{where}: model arguments do not match the stored weights: they describe "
                        f"{model_weights(ckpt['model_args'])} weights, the file stores {stored} "
                        "values")
    check_dataset_spec(ckpt["dataset"], where)
    args, spec = ckpt["model_args"], ckpt["dataset"]
    for arg, key in (("in_channels", "channels"), ("num_classes", "classes")):
        if arg in args and args[arg] != spec[key]:
            raise UserError(f"{where}: model argument '{arg}' is {args[arg]} but the dataset has "
                            f"{spec[key]} {key}")
    for key in ("config", "metrics"):
        if not isinstance(ckpt.get(key, {}), dict):
            raise UserError(f"{where}: '{key}' is not a mapping")
    batch = ckpt.get("config", {}).get("batch_size")
    if batch is not None:
        _field(f"{where}: config", "batch_size", batch, int, (lambda v: 1 <= v <= 2 ** 20,
                                                               "1..1048576"))
    tuned = ckpt.get("finetune")
    if tuned is not None and not (isinstance(tuned, dict) and _is_int(tuned.get("weight_bits"))
                                  and 2 <= tuned["weight_bits"] <= 16):
        raise UserError(f"{where}: 'finetune' must be a mapping with weight_bits in 2..16")
    if ckpt.get("input") is not None:
        check_input_range(ckpt["input"], spec, where)
    epoch = ckpt.get("epoch", 0)
    if not _is_int(epoch) or epoch < 0:
        raise UserError(f"{where}: 'epoch' is {str(epoch)[:40]!r}; expected an integer >= 0")
