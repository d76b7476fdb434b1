"""What ``mlf-deploy run`` reads: raw samples (``.npy`` or ``.npz``), optional labels, and the check
of the samples against the input pipeline the artifact records.

A model fed the wrong units still answers with confident classes, so the samples are checked
before anything runs: shape and layout, real finite numbers, and the range of the recorded raw
units (the scikit-learn digits' 0..16, CIFAR-10's 0..255, whole event counts). Images scaled to
0..1 (torchvision's ``ToTensor`` habit) are named as such. ``trust_input`` skips the units check
only; shape, NaN and infinity are always refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlf_deploy.errors import UserError, option
from mlf_deploy.npy_files import load_npy

# The raw units of each data set as (low, high); None: unbounded. Event sets count events.
RAW_RANGE = {"digits": (0.0, 16.0), "cifar10": (0.0, 255.0)}
NPZ_SAMPLES = ("x", "inputs", "images", "samples", "data")
NPZ_LABELS = ("y", "labels", "targets")


def _input(path) -> str:
    return option("input_path", path)


def _labels(path=None) -> str:
    return option("labels_path", path)


def _npz_array(archive, names, what, path):
    found = [n for n in names if n in archive.files]
    if found:
        return archive[found[0]]
    if what == "samples" and len(archive.files) == 1:
        return archive[archive.files[0]]
    if what == "labels":
        return None
    raise UserError(f"{_input(path)} holds arrays {', '.join(archive.files) or 'none'}; name "
                    f"the samples one of {', '.join(NPZ_SAMPLES)} "
                    "(np.savez(path, x=samples, y=labels))")


def load_samples(path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(samples, labels or None)`` from a ``.npy`` array or an ``.npz`` archive holding the
    samples (``x``; or its only array) and optionally the labels (``y``)."""
    try:
        with open(path, "rb") as f:
            zipped = f.read(2) == b"PK"  # an .npz is a zip archive
        # a .npy's header is checked against the file before anything is allocated
        loaded = (np.load(path, allow_pickle=False) if zipped
                  else load_npy(path, _input(path)))
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"cannot read {_input(path)} as a .npy or .npz array: {exc}") from exc
    labels = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            raw = _npz_array(loaded, NPZ_SAMPLES, "samples", path)
            labels = _npz_array(loaded, NPZ_LABELS, "labels", path)
    else:
        raw = loaded
    if np.iscomplexobj(raw):
        raise UserError(f"{_input(path)} holds complex values; give real pixel values or counts")
    if not np.issubdtype(raw.dtype, np.number):
        raise UserError(f"{_input(path)} holds {raw.dtype} values; give numbers")
    if raw.ndim == 0 or len(raw) == 0:
        raise UserError(f"{_input(path)} holds no samples (shape {raw.shape}); give a batch of "
                        "samples along the first axis")
    return raw, labels


def load_labels(path) -> np.ndarray:
    """Integer class indices from ``.npy``, ``.npz`` (``y``/``labels``) or text (one per line,
    or separated by commas or spaces)."""
    path = Path(path)
    if path.suffix in (".npy", ".npz"):
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise UserError(f"cannot read {_labels(path)}: {exc}") from exc
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                labels = _npz_array(loaded, NPZ_LABELS, "labels", path)
                if labels is None and len(loaded.files) == 1:
                    labels = loaded[loaded.files[0]]
            if labels is None:
                raise UserError(f"{_labels(path)} has no array named y or labels")
        else:
            labels = loaded
    else:
        try:
            words = path.read_text().replace(",", " ").split()
            labels = np.array([int(w) for w in words])
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UserError(f"cannot read {_labels(path)} as whole-number class indices: "
                            f"{exc}") from exc
    labels = np.asarray(labels).reshape(-1)
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{_labels(path)} holds {labels.dtype} values; give class indices")
    return labels


def check_labels(labels: np.ndarray, samples: int, classes: int) -> np.ndarray:
    if len(labels) != samples:
        raise UserError(f"{_labels()} has {len(labels)} labels for {samples} samples; give one "
                        "class index per sample, in the same order")
    bad = labels[(labels < 0) | (labels >= classes)]
    if bad.size:
        raise UserError(f"{_labels()} holds class index {int(bad[0])}; this model has classes "
                        f"0..{classes - 1}")
    return labels


def _expected_shape(pipe: dict) -> tuple:
    shape = tuple(int(s) for s in pipe["shape"])
    return shape if pipe["encoding"] == "static" else (int(pipe["timesteps"]), *shape)


def check_samples(raw: np.ndarray, pipe: dict, path, trust: bool = False) -> None:
    """Refuse samples that do not match the artifact's recorded input (``pipe``: its
    ``input_pipeline`` with ``encoding``, ``timesteps`` and ``shape``), in one line."""
    want = _expected_shape(pipe)
    layout = "(B, " + ", ".join(map(str, want)) + ")"
    units = pipe.get("raw_units") or "the data set's raw values"
    if tuple(raw.shape[1:]) != want:
        hint = ""
        if raw.ndim == len(want) + 1 and raw.shape[-1] == want[-3] and \
                tuple(raw.shape[-3:-1]) == tuple(want[-2:]):
            hint = "; the channels look last: np.moveaxis(x, -1, -3) puts them first"
        raise UserError(f"{_input(path)} has shape {tuple(raw.shape)}; this model takes "
                        f"{layout} samples of {units}{hint}")
    finite = np.isfinite(raw)
    if not finite.all():
        nan = int(np.isnan(raw).sum())
        raise UserError(f"{_input(path)} holds {nan} NaN and {raw.size - int(finite.sum()) - nan} "
                        f"infinite values; give finite {units}")
    if trust:
        return
    low, high = float(raw.min()), float(raw.max())
    bounds = RAW_RANGE.get(pipe.get("dataset"))
    override = f"; pass {option('trust_input')} to run them anyway"
    if pipe["encoding"] == "events":
        if low < 0 or not np.array_equal(raw, np.round(raw)):
            raise UserError(f"{_input(path)} holds values {low:g}..{high:g}; this model takes "
                            f"whole, non-negative {units}{override}")
    elif bounds is not None:
        lo, hi = bounds
        if low < lo or high > hi:
            raise UserError(f"{_input(path)} holds values {low:g}..{high:g}; this model takes "
                            f"{units} (the range its pipeline was trained on){override}")
        if hi > 1 and 0 < high <= 1:
            raise UserError(f"{_input(path)} holds values {low:g}..{high:g}: scaled to 0..1, "
                            f"but this model takes {units}; multiply by {hi:g}{override}")
