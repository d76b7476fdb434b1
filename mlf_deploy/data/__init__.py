"""Data sets, each rebuilt from a small JSON-serialisable *spec*: small ones in memory, the DVS
sets streamed from their files on disk.

A spec (``dataset_spec``) is stored in every checkpoint as ``ckpt['dataset']``, so export, verify
and energy rebuild exactly the test split the model was trained and evaluated on (same seed, same
split, same normalisation constants, same event binning).

Static sets give ``x`` of shape ``(N, C, H, W)``; event sets give frames ``(N, T, C, H, W)`` of
integer event counts (float32 holding integers: later integer backends rely on it).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from mlf_deploy.data import events, static, streaming, tonic_sets
from mlf_deploy.errors import UserError

DATASETS = {
    "digits": "scikit-learn 8x8 digits (shipped, offline), normalised; the embedded default",
    "digits-events": "digits moved through saccades in front of a simulated event camera; "
                     "(T, 2, 8, 8) counts",
    "cifar10": "CIFAR-10 python pickle batches under DATA_DIR/cifar-10-batches-py/",
    "dvs-gesture": "IBM DVS128 Gesture (tonic's .npy) in tonic's layout, 128->32 downsampled, "
                   "T=40 frames of 30 ms",
    "cifar10-dvs": "CIFAR10-DVS (.aedat4) in tonic's layout, 128->42 downsampled, "
                   "T=10 frames of 10 ms",
    "nmnist": "N-MNIST (.bin) in tonic's layout, 34x34, T=10 frames of 30 ms",
}

# name -> (defaults of the options a user may set, builder of the rest of the spec, loader of an
# in-memory split; None: the split is streamed from its recordings on disk)
_REGISTRY = {
    "digits": (static.DIGITS_OPTIONS, static.digits_spec, static.load_digits_split),
    "digits-events": (events.DIGITS_EVENTS_OPTIONS, events.digits_events_spec,
                      events.load_digits_events_split),
    "cifar10": (static.CIFAR10_OPTIONS, static.cifar10_spec, static.load_cifar10_split),
    **{name: (options, tonic_sets.tonic_spec, None)
       for name, options in tonic_sets.TONIC_OPTIONS.items()},
}


def dataset_spec(name: str, seed: int = 0, **options) -> dict:
    """Everything needed to rebuild a data set, as JSON-serialisable primitives.

    Args:
        name: one of :data:`DATASETS`.
        seed: seeds the train/test split and any simulation.
        **options: data set options (``timesteps``, ``test_fraction``, ``data_dir``...); ``None``
            values mean "the default", unknown names are an error.

    Returns:
        The spec dict, with ``name``, ``seed``, ``kind`` (``static``/``events``), ``channels``,
        ``size``, ``classes`` and every option resolved.
    """
    if name not in _REGISTRY:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    defaults, build, _ = _REGISTRY[name]
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise UserError(f"dataset {name!r} has no option(s) {', '.join(unknown)}; "
                        f"it takes {', '.join(sorted(defaults)) or 'none'}")
    spec = {"name": name, "seed": int(seed), **defaults, **options}
    return build(spec)


def dataset_options(name: str) -> dict:
    """The options :func:`dataset_spec` accepts for ``name``, with their defaults."""
    if name not in _REGISTRY:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return dict(_REGISTRY[name][0])


def open_split(spec: dict, split: str, data_dir: str | None = None) -> Dataset:
    """One split of the data set a spec describes, as a Dataset of ``(x, label)``.

    Args:
        spec: from :func:`dataset_spec` (or ``ckpt['dataset']``).
        split: ``"train"`` or ``"test"``.
        data_dir: overrides ``spec['data_dir']`` (the files moved to another place).

    Returns:
        A :class:`~mlf_deploy.data.streaming.TensorSplit` held in memory (digits, digits-events,
        cifar10) or a :class:`~mlf_deploy.data.streaming.RecordingFrames` that reads and caches one
        recording per item (the DVS sets). Items are ``x`` float32 ``(C, H, W)`` or ``(T, C, H, W)``
        and an integer label; ``.labels`` holds every label ``(N,)`` int64.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if spec.get("name") not in _REGISTRY:
        raise UserError(f"unknown dataset {spec.get('name')!r} in spec; choose one of "
                        f"{', '.join(DATASETS)}")
    if data_dir is not None:
        spec = {**spec, "data_dir": str(data_dir)}
    loader = _REGISTRY[spec["name"]][2]
    if loader is None:
        return streaming.RecordingFrames(spec, split)
    x, y = loader(spec, split)
    return streaming.TensorSplit(x.float().contiguous(), y.long())


def load_split(spec: dict, split: str,
               data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split as tensors (see :func:`open_split`); prefer streaming with
    :func:`open_split` where the split may not fit in memory.

    Returns:
        ``x`` float32, ``(N, C, H, W)`` for static sets or ``(N, T, C, H, W)`` for event sets, and
        ``y`` int64 ``(N,)``.
    """
    dataset = open_split(spec, split, data_dir)
    if isinstance(dataset, streaming.TensorSplit):
        return dataset.x, dataset.labels
    x = torch.empty(len(dataset), *dataset.shape)
    for i in range(len(dataset)):
        x[i] = dataset[i][0]
    return x, dataset.labels


def input_kind(spec: dict) -> str:
    """``'static'`` (images repeated over T by the model) or ``'events'`` (frames over T)."""
    return spec["kind"]


def model_input(xb: torch.Tensor) -> torch.Tensor:
    """A batch of :func:`load_split` in the model's layout.

    Args:
        xb: ``(B, C, H, W)`` static images or ``(B, T, C, H, W)`` event frames.

    Returns:
        ``(B, C, H, W)`` unchanged, or ``(T, B, C, H, W)`` contiguous.
    """
    if xb.dim() == 4:
        return xb
    if xb.dim() == 5:
        return xb.transpose(0, 1).contiguous()
    raise ValueError(f"expected a (B, C, H, W) or (B, T, C, H, W) batch, got shape "
                     f"{tuple(xb.shape)}")


def augment(xb: torch.Tensor, spec: dict, generator: torch.Generator) -> torch.Tensor:
    """Training augmentation of a static batch ``(B, C, H, W)`` where the spec asks for it.

    CIFAR10 per the paper's code: random horizontal flip, then a random 32x32 crop of the image
    zero-padded by 4. Drawn from ``generator`` so that --resume replays it exactly.
    """
    if not spec.get("augment"):
        return xb
    return static.flip_crop(xb, generator, pad=4)


CLASS_NAMES = {
    "digits": [str(i) for i in range(10)],
    "digits-events": [str(i) for i in range(10)],
    "nmnist": [str(i) for i in range(10)],
    "cifar10": tonic_sets.CIFAR10_DVS_CLASSES,  # CIFAR10-DVS keeps CIFAR-10's classes and order
}
RAW_UNITS = {
    "digits": "scikit-learn digits pixel values 0..16",
    "cifar10": "8-bit RGB pixel values 0..255",
}


def input_pipeline(spec: dict) -> dict:
    """How a raw sample becomes the model's input, as JSON: stored in every exported artifact so
    that a user can feed their own data without this package.

    ``model input = (raw / divide - mean) / std`` per channel (static sets; event sets take raw
    counts unchanged), laid out ``(B, C, H, W)`` for images or ``(B, T, C, H, W)`` for event
    frames (the artifacts' own input is ``(T, B, C, H, W)``).
    """
    events = spec.get("kind") == "events"
    norm = None
    if "mean" in spec and "std" in spec:
        norm = {"divide": 255.0 if spec["name"] == "cifar10" else 1.0,
                "mean": spec["mean"], "std": spec["std"]}
    classes = spec.get("classes", 0)
    return {
        "dataset": spec.get("name"),
        "raw_layout": "(B, T, C, H, W) event counts" if events else "(B, C, H, W) images",
        "raw_units": "events per pixel and time bin" if events
        else RAW_UNITS.get(spec.get("name"), "the data set's pixel values"),
        "channels": spec.get("channels"), "size": spec.get("size"),
        "normalise": norm,
        "class_names": CLASS_NAMES.get(spec.get("name"), [f"class {i}" for i in range(classes)]),
    }
