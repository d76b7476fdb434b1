"""Turn a model input batch into the values a graph's Input node delivers, per timestep.

This is host-side preprocessing shared by every backend (as a camera driver or a data loader would
be): the optional per-channel input normalisation recorded by lowering, then, for int graphs,
rounding to the input step and clipping to the signed input bits.
"""

from __future__ import annotations

import numpy as np

from mlf_deploy.errors import UserError


def prepare_input(graph, x) -> np.ndarray:
    """``x``: ``(B, C, H, W)`` static image(s) or ``(T, B, C, H, W)`` event frames (torch or numpy).

    Returns ``(T, B, C, H, W)`` float64; integer-valued for int graphs.
    """
    x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    inp = graph.input
    want = tuple(inp.shape)
    if inp.encoding == "static":
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise UserError(f"input '{inp.name}' expects static images (B, {', '.join(map(str, want))}),"
                            f" got shape {tuple(x.shape)}")
        x = np.broadcast_to(x, (inp.timesteps, *x.shape))
    elif x.ndim != 5 or tuple(x.shape[2:]) != want or x.shape[0] != inp.timesteps:
        raise UserError(f"input '{inp.name}' expects event frames ({inp.timesteps}, B, "
                        f"{', '.join(map(str, want))}), got shape {tuple(x.shape)}")
    if "input_gain" in graph.metadata:
        gain = np.asarray(graph.metadata["input_gain"], dtype=np.float64)[:, None, None]
        offset = np.asarray(graph.metadata["input_offset"], dtype=np.float64)[:, None, None]
        x = x * gain + offset
    if graph.numeric == "int":
        limit = 2 ** (inp.value_bits - 1) - 1
        q = np.round(x / inp.scale)
        x = np.clip(q, -limit, limit)
    return np.ascontiguousarray(x)
