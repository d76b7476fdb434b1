""".npy files read only after their header proves the data is there.

``np.load`` allocates what the header declares before it reads a byte of data, so a 100-byte file
may ask for terabytes. Here the header is parsed first and must declare a plain number type whose
shape needs exactly the bytes the file holds, within ``max_bytes``.
"""

from __future__ import annotations

import math
import os

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.limits import available_memory


def npy_header(f, what: str) -> tuple[tuple, np.dtype, bool]:
    """``(shape, dtype, fortran_order)`` of the open .npy file ``f``; nothing is allocated."""
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f".npy format version {version} is not supported")
        read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(f)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise UserError(f"{what} is not a readable .npy file ({exc})") from exc
    if dtype.hasobject or dtype.kind not in "biufc" or dtype.itemsize > 16:
        raise UserError(f"{what} holds {dtype} values; a plain number array is expected")
    return tuple(shape), dtype, fortran


def load_npy(path, what: str | None = None, max_bytes: int | None = None) -> np.ndarray:
    """The array of the .npy file ``path``, refused (one UserError) when its header declares more
    bytes than the file holds or than ``max_bytes`` (default: half of the available memory)."""
    what = what or str(path)
    limit = available_memory() // 2 if max_bytes is None else max_bytes
    try:
        with open(path, "rb") as f:
            shape, dtype, _ = npy_header(f, what)
            need = math.prod(shape) * dtype.itemsize
            held = os.fstat(f.fileno()).st_size - f.tell()
            if need != held:
                raise UserError(f"{what}: its header declares {shape} {dtype} ({need} bytes) but "
                                f"the file holds {held} bytes of data; it is truncated or forged")
            if need > limit:
                raise UserError(f"{what} holds {need} bytes of data, over the limit of {limit} "
                                "(half of the available memory)")
            f.seek(0)
            return np.load(f, allow_pickle=False)
    except FileNotFoundError as exc:
        raise UserError(f"{what} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise UserError(f"{what} is not a readable .npy file ({exc})") from exc
