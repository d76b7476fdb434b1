"""Static image sets: scikit-learn's 8x8 digits (offline) and CIFAR-10 from its python pickles."""

from __future__ import annotations

import os

import numpy as np
import torch

from mlf_deploy.data.cifar_pickle import read_cifar10_batch
from mlf_deploy.errors import UserError, option

DIGITS_OPTIONS = {"test_fraction": 0.2}
# Paper section 4: the CIFAR10 Normalize constants of the reference code, and its flip/crop.
CIFAR10_OPTIONS = {"data_dir": None, "augment": True,
                   "mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}
CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def digits_split_indices(spec: dict) -> dict[str, np.ndarray]:
    """Indices into ``load_digits()`` of each split: stratified, seeded by ``spec['seed']``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    target = load_digits().target
    train, test = train_test_split(np.arange(len(target)), test_size=spec["test_fraction"],
                                   random_state=spec["seed"], stratify=target)
    return {"train": train, "test": test}


def digits_arrays(spec: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw digits images ``(N, 8, 8)`` in 0..16 and labels ``(N,)`` of one split."""
    from sklearn.datasets import load_digits

    data = load_digits()
    idx = digits_split_indices(spec)[split]
    return data.images[idx].astype(np.float32), data.target[idx].astype(np.int64)


def digits_spec(spec: dict) -> dict:
    if not 0 < spec["test_fraction"] < 1:
        raise UserError(f"test_fraction must be in (0, 1), got {spec['test_fraction']}")
    # Statistics of the train split only, stored so that every later stage normalises identically.
    images, _ = digits_arrays(spec, "train")
    return {**spec, "kind": "static", "channels": 1, "size": 8, "classes": 10,
            "mean": float(images.mean()), "std": float(images.std())}


def load_digits_split(spec: dict, split: str):
    images, labels = digits_arrays(spec, split)
    x = (torch.from_numpy(images) - spec["mean"]) / spec["std"]
    return x.unsqueeze(1), torch.from_numpy(labels)


def cifar10_spec(spec: dict) -> dict:
    return {**spec, "kind": "static", "channels": 3, "size": 32, "classes": 10}


def _cifar10_dir(spec: dict) -> str:
    if not spec.get("data_dir"):
        raise UserError(f"cifar10 needs {option('data_dir', 'DIR')} holding cifar-10-batches-py/ "
                        "(the python version of CIFAR-10: data_batch_1..5, test_batch)")
    folder = os.path.join(spec["data_dir"], "cifar-10-batches-py")
    if not os.path.isdir(spec["data_dir"]):
        raise UserError(f"cifar10 files not found: {spec['data_dir']} does not exist (the folder "
                        "recorded at training); if the data moved, pass "
                        f"{option('data_dir', 'DIR')}, the folder that now holds "
                        "cifar-10-batches-py/")
    missing = [f for f in CIFAR10_FILES if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise UserError(f"cifar10 files missing in {folder}: {', '.join(missing)}; download "
                        "cifar-10-python.tar.gz and extract it into the data directory")
    return folder


def load_cifar10_split(spec: dict, split: str):
    folder = _cifar10_dir(spec)
    names = CIFAR10_FILES[:5] if split == "train" else CIFAR10_FILES[5:]
    xs, ys = [], []
    for name in names:
        data, labels = read_cifar10_batch(os.path.join(folder, name))
        xs.append(data)
        ys.append(labels)
    x = torch.from_numpy(np.concatenate(xs)).float() / 255.0
    mean = torch.tensor(spec["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(spec["std"]).view(1, 3, 1, 1)
    return (x - mean) / std, torch.from_numpy(np.concatenate(ys))


def flip_crop(xb: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random horizontal flip and random crop after zero padding, per image of ``(B, C, H, W)``."""
    b, _, h, w = xb.shape
    flip = torch.rand(b, generator=generator) < 0.5
    xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
    padded = torch.nn.functional.pad(xb, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(b, xb.shape[1], h, w + 2 * pad)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(b, xb.shape[1], h, w)
    return out.gather(3, cols)
