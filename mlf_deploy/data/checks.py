"""Checks of what a data file delivers, so that a wrong file is one UserError naming it."""

from __future__ import annotations

import numpy as np

from mlf_deploy.errors import UserError


def check_labels(labels, classes: int, where: str) -> None:
    """Labels must be integers in ``0 .. classes-1``; an empty split is an error too."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise UserError(f"{where} holds no samples; check the data files")
    if labels.dtype.kind not in "iu":
        raise UserError(f"{where}: labels must be integers, got {labels.dtype}")
    bad = labels[(labels < 0) | (labels >= classes)]
    if bad.size:
        raise UserError(f"{where}: label {int(bad[0])} is outside 0..{classes - 1} "
                        f"({bad.size} such labels); the file does not belong to this data set")
