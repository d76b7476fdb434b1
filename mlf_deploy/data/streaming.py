"""Splits as torch Datasets: in memory for the small sets, streamed from disk for the event sets.

An event set is read one recording per item (DataLoader workers read in parallel), so memory does
not grow with the data set. Each recording's frames are cached on disk the way tonic's
``DiskCachedDataset`` does it (one file per sample, made on first read), with two differences that
make the cache safe to share: a file is keyed by the recording (path, size, mtime) and by every
preprocessing option, so a changed option or file never returns stale frames, and it is written
under a temporary name and renamed, so a killed worker or two ranks writing at once leave no torn
file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mlf_deploy.errors import UserError
from mlf_deploy.npy_files import load_npy

# Options that change a recording's frames; a cache folder exists per combination of them.
_FRAME_OPTIONS = ("name", "timesteps", "window_us", "spatial_factor", "size")
CACHE_ENV = "MLF_DEPLOY_CACHE"  # a folder, or "off"; default DATA_DIR/.mlf-deploy-cache


class TensorSplit(Dataset):
    """A split held in memory as ``x`` ``(N, ...)`` and ``y`` ``(N,)``; batches are slices."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.labels = x, y

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], self.labels[i]

    def head(self, n: int) -> TensorSplit:
        return TensorSplit(self.x[:n], self.labels[:n])


class FrameCache:
    """One ``.npy`` of count frames per recording under ``root/<options hash>/``."""

    def __init__(self, root: Path, spec: dict):
        options = json.dumps({k: spec[k] for k in _FRAME_OPTIONS}, sort_keys=True)
        digest = hashlib.sha256(options.encode()).hexdigest()[:16]
        self.folder = Path(root, f"{spec['name']}-{digest}")

    def path(self, recording: Path) -> Path:
        st = recording.stat()
        key = f"{recording.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npy"

    def load(self, recording: Path, shape: tuple) -> np.ndarray | None:
        try:  # the header is checked against the file's size before anything is allocated
            frames = load_npy(self.path(recording), max_bytes=4 * math.prod(shape))
        except UserError:  # absent, or written by something else
            return None
        return frames if frames.shape == shape else None

    def save(self, recording: Path, frames: np.ndarray) -> None:
        # Counts are small non-negative integers: the narrowest unsigned type halves the disk.
        top = int(frames.max(initial=0))
        dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, frames.astype(dtype))
            os.replace(tmp, self.path(recording))
        except BaseException:
            os.unlink(tmp)
            raise


def cache_root(data_dir: str) -> Path | None:
    """Where frames are cached: ``$MLF_DEPLOY_CACHE`` (``off``: nowhere), else inside the data
    directory, else (read-only data) under ``~/.cache/mlf-deploy``."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        if chosen.lower() != "off" and os.path.exists(chosen) and not os.path.isdir(chosen):
            raise UserError(f"{CACHE_ENV}={chosen} is a file; point it at a folder, or set it to "
                            "'off' to cache nothing")
        return None if chosen.lower() == "off" else Path(chosen)
    if os.access(data_dir, os.W_OK):
        return Path(data_dir, ".mlf-deploy-cache")
    return Path.home() / ".cache" / "mlf-deploy"


class RecordingFrames(Dataset):
    """The frames ``(T, 2, size, size)`` float32 and label of each recording of a split."""

    def __init__(self, spec: dict, split: str):
        from mlf_deploy.data import tonic_sets

        self.spec = spec
        items = tonic_sets.recordings(spec, split)
        # One numpy buffer, not a list of Path objects: DataLoader workers are forked, and touching
        # a Python object's refcount copies its page into the worker, so per-recording objects
        # would cost each worker memory in proportion to the set.
        self.paths = np.array([str(path) for path, _ in items], dtype=str)
        self.labels = torch.tensor([label for _, label in items], dtype=torch.long)
        self.shape = (int(spec["timesteps"]), 2, spec["size"], spec["size"])
        root = cache_root(os.path.expanduser(spec["data_dir"]))
        self.cache = FrameCache(root, spec) if root is not None else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        from mlf_deploy.data import tonic_sets

        path, label = self.path(i), int(self.labels[i])
        frames = self.cache.load(path, self.shape) if self.cache else None
        if frames is None:
            frames = tonic_sets.recording_frames(self.spec, path)
            if self.cache:
                self.cache.save(path, frames)
        return torch.from_numpy(frames.astype(np.float32)), label

    def path(self, i: int) -> Path:
        return Path(self.paths[i])

    def head(self, n: int) -> RecordingFrames:
        out = object.__new__(RecordingFrames)
        out.__dict__.update(self.__dict__, paths=self.paths[:n], labels=self.labels[:n])
        return out


def batches(dataset: Dataset, order, batch_size: int, workers: int = 0):
    """``(x, y)`` batches of ``dataset`` in the given index order (the last may be short).

    In-memory splits are sliced directly (no DataLoader overhead: the digits path stays as fast as
    before); other splits are read by a DataLoader with ``workers`` processes.
    """
    order = torch.as_tensor(order, dtype=torch.long)
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if isinstance(dataset, TensorSplit):
        for idx in chunks:
            yield dataset.x[idx], dataset.labels[idx]
        return
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=[c.tolist() for c in chunks],
                                         num_workers=workers)
    try:
        yield from loader
    except UserError as exc:
        # A worker's error comes back with its traceback in the message; keep the one line.
        last = str(exc).rstrip().splitlines()[-1]
        raise UserError(last.split("UserError: ", 1)[-1]) from None
