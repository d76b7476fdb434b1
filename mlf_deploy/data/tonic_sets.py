"""DVS-Gesture, CIFAR10-DVS and N-MNIST read through tonic's dataset classes from a local directory.

Offline, tonic would try to download a missing set (and hang or fail deep inside urllib), so the
files tonic's ``_check_exists`` looks for are checked first and a missing one is one UserError.
Preprocessing follows the paper's code (docs/references.md §1): clip to the first ``timesteps * window_us`` of a
recording, integer-downsample space, count events per polarity per frame. Counts are kept as
they are (the reference code's int8 accumulator, which wraps above 127, is not reproduced).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mlf_deploy.data.checks import check_labels
from mlf_deploy.errors import UserError

_BASE = {"data_dir": None, "window_us": None}
TONIC_OPTIONS = {
    "dvs-gesture": {**_BASE, "timesteps": 40, "window_us": 30000, "spatial_factor": 0.25},
    "cifar10-dvs": {**_BASE, "timesteps": 10, "window_us": 10000, "spatial_factor": 1 / 3.04,
                    "train_per_class": 900},
    "nmnist": {**_BASE, "timesteps": 10, "window_us": 30000, "spatial_factor": 1.0},
}
# name -> (tonic class name, sensor side, classes, per split: (archive, folder, suffix, minimum
# count)); the archive and counts mirror each class's _check_exists in tonic 1.7.
_LAYOUT = {
    "dvs-gesture": ("DVSGesture", 128, 11, {
        "train": ("ibmGestureTrain.tar.gz", "ibmGestureTrain", ".npy", 100),
        "test": ("ibmGestureTest.tar.gz", "ibmGestureTest", ".npy", 100)}),
    "cifar10-dvs": ("CIFAR10DVS", 128, 10, {
        s: ("CIFAR10DVS.zip", "", ".aedat4", 1000) for s in ("train", "test")}),
    "nmnist": ("NMNIST", 34, 10, {
        "train": ("train.zip", "Train", ".bin", 10000),
        "test": ("test.zip", "Test", ".bin", 10000)}),
}


def tonic_spec(spec: dict) -> dict:
    _, sensor, classes, _ = _LAYOUT[spec["name"]]
    size = int((sensor - 1) * spec["spatial_factor"]) + 1
    return {**spec, "kind": "events", "channels": 2, "size": size, "classes": classes}


def check_files(spec: dict, split: str) -> None:
    """Raise one UserError naming the missing files before tonic can try to download them."""
    cls_name, _, _, layout = _LAYOUT[spec["name"]]
    archive, folder, suffix, minimum = layout[split]
    if not spec.get("data_dir"):
        raise UserError(f"{spec['name']} needs --data-dir DIR with DIR/{cls_name}/{archive} and its "
                        f"extracted {suffix} files (no download: this tool works offline)")
    root = Path(spec["data_dir"], cls_name)
    have_archive = (root / archive).is_file()
    count = sum(1 for _ in (root / folder).glob(f"**/*{suffix}")) if (root / folder).is_dir() else 0
    if not have_archive or count < minimum:
        what = [] if have_archive else [str(root / archive)]
        if count < minimum:
            what.append(f"at least {minimum} {suffix} files under {root / folder} (found {count})")
        raise UserError(f"{spec['name']} {split} data missing: {'; '.join(what)}. Download it "
                        f"elsewhere and place the archive and its extracted contents in {root}")


def _dataset(spec: dict, split: str):
    import tonic.datasets as td

    check_files(spec, split)
    save_to = os.path.expanduser(spec["data_dir"])
    if spec["name"] == "dvs-gesture":
        return td.DVSGesture(save_to=save_to, train=split == "train")
    if spec["name"] == "nmnist":
        return td.NMNIST(save_to=save_to, train=split == "train")
    return td.CIFAR10DVS(save_to=save_to)


def _indices(spec: dict, ds, split: str) -> list[int]:
    if spec["name"] != "cifar10-dvs":
        return list(range(len(ds)))
    # CIFAR10-DVS ships no split: the first files of each class (sorted by path, unlike the
    # reference code's unsorted glob) train, the rest test.
    out = []
    for label in sorted(set(ds.targets)):
        files = sorted((ds.data[i], i) for i in range(len(ds)) if ds.targets[i] == label)
        keep = files[: spec["train_per_class"]] if split == "train" else files[spec["train_per_class"]:]
        out += [i for _, i in keep]
    return out


def load_tonic_split(spec: dict, split: str):
    import tonic.transforms as tt

    from mlf_deploy.data.events import to_frames

    ds = _dataset(spec, split)
    _, sensor, _, _ = _LAYOUT[spec["name"]]
    down = tt.Downsample(spatial_factor=spec["spatial_factor"])  # int fields: x * f truncates = floor
    streams, labels = [], []
    for i in _indices(spec, ds, split):
        where = ds.data[i] if hasattr(ds, "data") else f"sample {i}"
        try:  # tonic indexes the file's columns: a file of the wrong layout fails inside it
            events, label = ds[i]
        except (IndexError, ValueError, KeyError, TypeError, OSError, EOFError) as exc:
            raise UserError(f"{where}: not a {spec['name']} event recording "
                            f"({type(exc).__name__}: {exc})") from exc
        if not {"x", "y", "t", "p"} <= set(getattr(events.dtype, "names", None) or ()):
            raise UserError(f"{where}: not a {spec['name']} event recording (no x, y, t, p fields)")
        events = down(events.copy())
        events["t"] -= events["t"].min() if len(events) else 0  # frames start at the recording start
        streams.append(events)
        labels.append(int(label))
    check_labels(labels, _LAYOUT[spec["name"]][2], f"{spec['name']} {split} split")
    size = spec["size"]
    x = to_frames(streams, (size, size, 2), int(spec["timesteps"]), spec["window_us"])
    return x, torch.tensor(labels, dtype=torch.long) if labels else torch.zeros(0, dtype=torch.long)
