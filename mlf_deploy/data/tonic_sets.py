"""DVS-Gesture, CIFAR10-DVS and N-MNIST: their recordings in tonic's layout, one at a time.

The files are found by walking the extracted folders tonic would create (``DATA_DIR/<tonic class
name>/...``, docs/datasets.md); tonic's own dataset classes are not constructed because they insist
on the downloaded archive and would try to download it offline. Each recording is decoded with
tonic's readers and turned into count frames as the paper's code does (docs/references.md §1): the
first ``timesteps * window_us`` of the recording, space integer-downsampled, events counted per
polarity. Counts are kept as they are (the reference code's int8 accumulator, which wraps above
127, is not).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlf_deploy.errors import UserError, option
from mlf_deploy.npy_files import load_npy

_BASE = {"data_dir": None, "window_us": None}
TONIC_OPTIONS = {
    "dvs-gesture": {**_BASE, "timesteps": 40, "window_us": 30000, "spatial_factor": 0.25},
    # CIFAR10-DVS ships no split: the last test_fraction of each class's sorted files test (the
    # reference code's 900/100 of 1000 per class).
    "cifar10-dvs": {**_BASE, "timesteps": 10, "window_us": 10000, "spatial_factor": 1 / 3.04,
                    "test_fraction": 0.1},
    "nmnist": {**_BASE, "timesteps": 10, "window_us": 30000, "spatial_factor": 1.0},
}
CIFAR10_DVS_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                       "ship", "truck"]  # tonic's CIFAR10DVS.classes, in label order


@dataclass(frozen=True)
class Layout:
    folder: str            # tonic's class name: the folder under DATA_DIR
    sensor: int            # sensor side in pixels
    classes: int
    suffix: str            # recording file extension
    subfolders: dict       # split (or "all" for a set without a split) -> folder under `folder`
    archives: dict         # the same keys -> the archive tonic downloads (not needed here)

    def recording_path(self, sub: str, label: int, k: int) -> str:
        """Where the ``k``-th recording of ``label`` lives in the real layout (for writers)."""
        if self.folder == "DVSGesture":  # one file per gesture in each user_lighting folder
            user = k + 1 if sub == "ibmGestureTrain" else k + 24
            return f"{sub}/user{user:02d}_fluorescent/{label}.npy"
        if self.folder == "CIFAR10DVS":
            name = CIFAR10_DVS_CLASSES[label]
            return f"{name}/cifar10_{name}_{k}.aedat4"
        return f"{sub}/{label}/{k:05d}.bin"

    def label_of(self, path: Path) -> int | None:
        """The label the real layout encodes in ``path``; None when it encodes none."""
        if self.folder == "DVSGesture":
            name = path.stem
        elif self.folder == "CIFAR10DVS":
            name = str(CIFAR10_DVS_CLASSES.index(path.parent.name)) \
                if path.parent.name in CIFAR10_DVS_CLASSES else ""
        else:
            name = path.parent.name
        return int(name) if name.isdigit() and int(name) < self.classes else None


_ALL = {"all": ""}
LAYOUTS = {
    "dvs-gesture": Layout("DVSGesture", 128, 11, ".npy",
                          {"train": "ibmGestureTrain", "test": "ibmGestureTest"},
                          {"train": "ibmGestureTrain.tar.gz", "test": "ibmGestureTest.tar.gz"}),
    "cifar10-dvs": Layout("CIFAR10DVS", 128, 10, ".aedat4", _ALL, {"all": "CIFAR10DVS.zip"}),
    "nmnist": Layout("NMNIST", 34, 10, ".bin", {"train": "Train", "test": "Test"},
                     {"train": "train.zip", "test": "test.zip"}),
}


def tonic_spec(spec: dict) -> dict:
    sensor = LAYOUTS[spec["name"]].sensor
    if "test_fraction" in spec and not 0 < spec["test_fraction"] < 1:
        raise UserError(f"test_fraction must be in (0, 1), got {spec['test_fraction']}")
    size = int((sensor - 1) * spec["spatial_factor"]) + 1
    return {**spec, "kind": "events", "channels": 2, "size": size,
            "classes": LAYOUTS[spec["name"]].classes}


def _files(spec: dict, key: str) -> list[tuple[Path, int]]:
    layout = LAYOUTS[spec["name"]]
    if not spec.get("data_dir"):
        raise UserError(f"{spec['name']} needs {option('data_dir', 'DIR')} holding "
                        f"DIR/{layout.folder}/ with the extracted {layout.suffix} files (no "
                        "download: this tool works offline)")
    root = Path(os.path.expanduser(spec["data_dir"]), layout.folder)
    folder = root / layout.subfolders[key]
    found = sorted(folder.rglob(f"*{layout.suffix}")) if folder.is_dir() else []
    if not root.parent.is_dir():
        raise UserError(f"{spec['name']} files not found: {root.parent} does not exist (the folder "
                        "recorded at training); if the data moved, pass "
                        f"{option('data_dir', 'DIR')}, the folder that now holds {layout.folder}/")
    if not found:
        archive = root / layout.archives[key]
        hint = (f"{archive} is there but not extracted: extract it into {root}" if archive.is_file()
                else f"download {layout.archives[key]} elsewhere and extract it into {root}")
        raise UserError(f"{spec['name']}: no {layout.suffix} recordings under {folder}; {hint} "
                        "(docs/datasets.md shows the layout)")
    out = []
    for path in found:
        label = layout.label_of(path)
        if label is None:
            raise UserError(f"{path}: its place in the {spec['name']} layout gives no class label; "
                            "move it to its class folder (docs/datasets.md)")
        out.append((path, label))
    return out


def recordings(spec: dict, split: str) -> list[tuple[Path, int]]:
    """``(path, label)`` of every recording of a split, sorted by path within each class."""
    if spec["name"] != "cifar10-dvs":
        return _files(spec, split)
    by_class: dict[int, list[Path]] = {}
    for path, label in _files(spec, "all"):
        by_class.setdefault(label, []).append(path)
    out = []
    for label, paths in sorted(by_class.items()):
        if len(paths) < 2:
            raise UserError(f"cifar10-dvs class {CIFAR10_DVS_CLASSES[label]!r} has {len(paths)} "
                            f"recording(s) under {paths[0].parent}; a train and a test split need "
                            f">= 2")
        n_test = min(len(paths) - 1, max(1, round(len(paths) * spec.get("test_fraction", 0.1))))
        if "train_per_class" in spec:  # checkpoints written before test_fraction
            n_test = max(1, len(paths) - int(spec["train_per_class"]))
        keep = paths[:len(paths) - n_test] if split == "train" else paths[len(paths) - n_test:]
        out += [(path, label) for path in keep]
    return out


def read_events(name: str, path: Path) -> np.ndarray:
    """One recording as a structured array with integer fields x, y, t (us), p (0/1)."""
    import tonic.io

    from mlf_deploy.data.events import EVENT_DTYPE

    layout = LAYOUTS[name]
    try:
        if layout.suffix == ".npy":  # tonic's DVSGesture: (N, 4) x, y, p, t in ms
            raw = load_npy(path)  # header checked against the file's size before allocating
            if raw.ndim != 2 or raw.shape[1] != 4 or raw.dtype.kind not in "iuf":
                raise ValueError(f"expected an (N, 4) numeric array of x, y, p, t; got {raw.dtype} "
                                 f"{raw.shape}")
            if raw.dtype.kind == "f" and not (np.isfinite(raw).all() and np.abs(raw).max(
                    initial=0) < 2 ** 52 / 1000):  # cast to int64 would make NaN a huge number
                raise ValueError("x, y, p or t holds NaN, infinite or out-of-range values")
            x, y, p, t = raw.T.astype(np.int64)
            t = t * 1000
        elif layout.suffix == ".bin":
            if path.stat().st_size % 5:
                raise ValueError("the size is not a multiple of 5 bytes (N-MNIST events are "
                                 "40-bit)")
            ev = tonic.io.read_mnist_file(str(path), dtype=EVENT_DTYPE)
            x, y, t, p = ev["x"], ev["y"], ev["t"], ev["p"]
        else:
            ev = tonic.io.read_aedat4(str(path))
            x, y, t, p = ev["x"], ev["y"], ev["t"], ev[ev.dtype.names[3]]
    except UserError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    # Any decoder failure means the file is not what the layout says; the aedat decoder (Rust)
    # panics with pyo3's PanicException, a BaseException that `except Exception` lets through.
    except BaseException as exc:  # noqa: BLE001
        raise UserError(f"{path} is not a readable {name} recording: "
                        f"{type(exc).__name__}: {exc}") from exc
    out = np.empty(len(x), EVENT_DTYPE)
    out["x"], out["y"], out["t"], out["p"] = x, y, t, p
    bad = ((out["x"] < 0) | (out["x"] >= layout.sensor)
           | (out["y"] < 0) | (out["y"] >= layout.sensor))
    if bad.any() or not np.isin(out["p"], (0, 1)).all():
        raise UserError(f"{path} has events outside the {layout.sensor}x{layout.sensor} sensor or "
                        "polarities other than 0/1; is it a recording of this data set?")
    return out


def recording_frames(spec: dict, path: Path) -> np.ndarray:
    """Count frames ``(T, 2, size, size)`` of one recording (integers)."""
    import tonic.transforms as tt

    from mlf_deploy.data.events import to_frames

    events = read_events(spec["name"], path)
    events = tt.Downsample(spatial_factor=spec["spatial_factor"])(events)  # int fields: floor
    if len(events):
        events["t"] -= events["t"].min()  # frames start at the recording start
    size = spec["size"]
    return to_frames([events], (size, size, 2), int(spec["timesteps"]),
                     spec["window_us"])[0].numpy()
