"""A NIR file is checked as HDF5 before the ``nir`` package reads any of it.

HDF5 can point outside the file: a dataset's raw data may live in any local file (external
storage), a link may name another file (external link) or another path (soft link), and a virtual
dataset may map other files. Imported weights would then be bytes of a file of the sender's
choosing, so all of these are refused. A dataset declares its shape before it is read, and a
compressed one may declare 32 GiB in 40 KB: every declared size is summed and bounded before any is
read. Groups nest at most :data:`MAX_DEPTH` deep (``nir.read`` recurses once per level).
"""

from __future__ import annotations

import os

from mlf_deploy import limits
from mlf_deploy.errors import UserError

MAX_DEPTH = 32          # a NIR graph of ours nests 4 deep (node / nodes / <id> / metadata)
MAX_OBJECTS = 200_000   # groups and datasets in one file
MAX_TEXT_ITEMS = 4096   # elements of a string or object dataset (names, types, metadata)


def check_nir_file(path) -> None:
    """Raise one UserError naming the first thing in ``path`` that must not be read."""
    import h5py

    if not os.path.isfile(path):
        raise UserError(f"NIR file {path} does not exist")
    budget = limits.available_memory() // 4
    if os.path.getsize(path) > budget:
        raise UserError(f"NIR file {path} is larger than a quarter of the available memory")
    try:
        with h5py.File(path, "r") as f:
            _walk(f, budget, str(path))
    except UserError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise UserError(f"{path} is not a readable NIR file ({exc})") from exc


def _walk(root, budget: int, where: str) -> None:
    import h5py

    stack, seen, declared = [(root, 0)], 0, 0
    while stack:
        group, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UserError(f"{where}: groups nest deeper than {MAX_DEPTH} levels at {group.name}")
        for name in group:
            seen += 1
            if seen > MAX_OBJECTS:
                raise UserError(f"{where}: more than {MAX_OBJECTS} groups and datasets")
            link = group.get(name, getlink=True)
            path = f"{group.name.rstrip('/')}/{name}"
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                raise UserError(f"{where}: {path} is a {type(link).__name__}; links to other "
                                "paths or files are refused (they could import any local file)")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                stack.append((obj, depth + 1))
                continue
            if obj.external or obj.is_virtual:
                raise UserError(f"{where}: dataset {path} keeps its data in another file; "
                                "external and virtual storage are refused")
            if obj.dtype.kind not in "biuf":
                if obj.size > MAX_TEXT_ITEMS or obj.dtype.kind not in "SOUV":
                    raise UserError(f"{where}: dataset {path} holds {obj.size} {obj.dtype} values, "
                                    "not numbers or a short text")
                continue
            declared += obj.size * obj.dtype.itemsize
            if declared > budget:
                raise UserError(f"{where}: datasets declare more than {budget} bytes (a quarter of "
                                f"the available memory) by {path}")


# Node fields read as numbers, and those that divide (a 0 there is a ZeroDivisionError or inf).
NUMERIC_FIELDS = ("weight", "bias", "tau", "r", "v_threshold", "v_leak", "v_reset", "stride",
                  "padding", "dilation", "groups")
POSITIVE_FIELDS = ("tau", "r", "v_threshold")


def check_nir_values(g) -> None:
    """Every numeric field of every node of the ``nir.NIRGraph`` ``g`` finite numbers (a string
    weight, a NaN threshold), and tau, r and thresholds > 0; edges between known nodes."""
    import numpy as np

    if not isinstance(g.nodes, dict) or not all(
            isinstance(e, (tuple, list)) and len(e) == 2 and all(n in g.nodes for n in e)
            for e in g.edges):
        raise UserError("the NIR graph's edges name nodes it does not hold")
    for nid, node in g.nodes.items():
        kind = type(node).__name__
        for field in NUMERIC_FIELDS:
            value = getattr(node, field, None)
            if value is None or (field == "padding" and isinstance(value, str)):
                continue
            try:
                a = np.asarray(value)
                ok = a.dtype.kind in "biuf" and bool(np.isfinite(a).all())
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise UserError(f"NIR node {nid!r} ({kind}): {field} must hold finite numbers")
            if field in POSITIVE_FIELDS and not bool((a > 0).all()):
                raise UserError(f"NIR node {nid!r} ({kind}): {field} must be > 0 (it divides)")
