"""CIFAR-10 python batches read without running code from them.

A batch is a pickled dict: ``b"data"`` a ``uint8`` ndarray ``(N, 3072)``, ``b"labels"`` a list of N
ints, ``b"batch_label"`` and ``b"filenames"`` bytes (https://www.cs.toronto.edu/~kriz/cifar.html).
Plain ``pickle.load`` would call any function the file names; this unpickler admits only the few
globals an ndarray needs, so a crafted file fails before anything of it runs.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from mlf_deploy.data.checks import check_labels
from mlf_deploy.errors import UserError

# numpy pickles an ndarray as _reconstruct(ndarray, shape, dtype) plus its state; numpy 2 writes
# the module as numpy._core; protocol 2 pickles of bytes from Python 3 go through _codecs.encode.
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


def _bytes(*args):
    """``bytes`` as protocol 2 writes an empty ``bytes``; never ``bytes(n)``, which allocates n."""
    if args and not isinstance(args[0], (list, str, bytes)):
        raise pickle.UnpicklingError("refused bytes() of a size")
    return bytes(*args)


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` inside a batch: only :func:`_reconstruct` may use it. Called
    directly (``ndarray((N, 3072), u1)``) it would allocate N x 3072 uninitialised bytes that no
    byte of the file backs."""

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("refused a direct numpy.ndarray(...) call")


_NDARRAY = _NdarrayToken()


def _reconstruct(cls, shape, dtype):
    """numpy pickles an array as ``_reconstruct(ndarray, (0,), b"b")`` and sets its real shape
    and bytes afterwards (where their sizes must agree); any other shape allocates from nothing."""
    if cls is not _NDARRAY or tuple(shape) != (0,):
        raise pickle.UnpicklingError("refused _reconstruct of anything but an empty ndarray")
    return np.ndarray.__new__(np.ndarray, (0,), dtype)


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in (("builtins", "bytes"), ("__builtin__", "bytes")):
            return _bytes
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        if name == "ndarray":
            return _NDARRAY
        if name == "_reconstruct":
            return _reconstruct
        return super().find_class(module, name)


# A batch of the real data set is 30 MiB; a file far larger is not one (and would be read whole).
MAX_BATCH_BYTES = 256 * 2 ** 20


def read_cifar10_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 3, 32, 32) uint8, labels (N,) int64)`` of one batch file, validated."""
    try:
        if os.path.getsize(path) > MAX_BATCH_BYTES:
            raise ValueError(f"{os.path.getsize(path)} bytes, over {MAX_BATCH_BYTES}")
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
        data, labels = batch[b"data"], batch[b"labels"]
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != 3 * 32 * 32:
            raise ValueError("data is not a uint8 (N, 3072) array")
        if not isinstance(labels, list) or not all(type(v) is int for v in labels):
            raise ValueError("labels are not a list of integers")
        if len(labels) != len(data):
            raise ValueError(f"{len(data)} images but {len(labels)} labels")
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError,
            AttributeError, IndexError, MemoryError) as exc:
        raise UserError(f"{path} is not a CIFAR-10 python batch ({exc}); nothing of it was run"
                        ) from exc
    labels = np.asarray(labels, dtype=np.int64)
    check_labels(labels, 10, str(path))
    return data.reshape(-1, 3, 32, 32), labels
