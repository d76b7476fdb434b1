"""Event data sets: digits seen by a simulated event camera, and DVS recordings read through tonic.

Events are tonic-style structured arrays with fields ``(x, y, t, p)`` (``t`` in microseconds,
``p`` 1 = ON, 0 = OFF); tonic's own transforms bin them into count frames ``(T, 2, H, W)``.
"""

from __future__ import annotations

import numpy as np
import tonic.transforms as tt
import torch

from mlf_deploy.data import static
from mlf_deploy.errors import UserError

EVENT_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
DIGITS_EVENTS_OPTIONS = {
    "test_fraction": 0.2,
    "timesteps": 4,          # frames T; the digits preset runs T=4
    "contrast": 0.2,         # log-intensity change per event, as in DVS pixel models (v2e uses 0.2)
    "mismatch": 0.05,        # relative per-pixel spread of the contrast threshold (fixed pattern
                             # noise)
    "amplitude": 1.0,        # saccade size in pixels; 8x8 digits lose too much at the border
                             # beyond ~1
    "steps_per_saccade": 4,  # sub-pixel positions per saccade; more steps, finer time stamps
    "step_us": 1000,         # time per sub-step in microseconds
}
# Three saccades over a triangle, as the N-MNIST recordings do (Orchard et al. 2015); (dy, dx).
_WAYPOINTS = np.array([[0.0, 0.0], [0.5, 1.0], [1.0, 0.0], [0.0, 0.0]])
_LOG_OFFSET = 0.1  # keeps log() finite on black pixels; 16/16 + 0.1 vs 0.1 is a ~2.4 log range


def digits_events_spec(spec: dict) -> dict:
    static.digits_spec(spec)  # same split validation as digits
    if int(spec["timesteps"]) < 1 or spec["contrast"] <= 0:
        raise UserError("digits-events needs timesteps >= 1 and contrast > 0")
    return {**spec, "kind": "events", "channels": 2, "size": 8, "classes": 10}


def _shift(images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Bilinear sub-pixel shift of ``(N, H, W)`` images by per-image ``(dy, dx)``, black outside."""
    n, h, w = images.shape
    ys = np.arange(h)[None, :, None] - dy[:, None, None]
    xs = np.arange(w)[None, None, :] - dx[:, None, None]
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    out = np.zeros((n, h, w))
    idx = np.arange(n)[:, None, None]
    for oy, wy in ((0, 1 - fy), (1, fy)):
        for ox, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + oy, x0 + ox
            ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            out += np.where(ok, images[idx, yy.clip(0, h - 1), xx.clip(0, w - 1)], 0) * wy * wx
    return out


def simulate_events(images: np.ndarray, spec: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """Event streams of images ``(N, H, W)`` (0..16) moved through three saccades.

    Each pixel keeps a reference log intensity and emits one event per ``contrast`` crossed since
    (ON up, OFF down), spread evenly over the sub-step in which it was crossed.

    Returns:
        N structured arrays of :data:`EVENT_DTYPE`, sorted by ``t``.
    """
    n = len(images)
    steps = int(spec["steps_per_saccade"])
    path = np.concatenate([np.linspace(a, b, steps + 1)[1:]
                           for a, b in zip(_WAYPOINTS, _WAYPOINTS[1:])])
    path = path[None] * spec["amplitude"] + rng.normal(0, 0.1, (n, len(path), 2))  # hand tremor
    threshold = spec["contrast"] * (1 + spec["mismatch"]
                                    * rng.standard_normal(images.shape)).clip(0.5)
    ref = np.log(images / 16.0 + _LOG_OFFSET)
    parts = []
    for k in range(path.shape[1]):
        log_i = np.log(_shift(images / 16.0, path[:, k, 0], path[:, k, 1]) + _LOG_OFFSET)
        diff = log_i - ref
        count = np.floor(np.abs(diff) / threshold).astype(int)
        ref = ref + np.sign(diff) * count * threshold
        s, y, x = np.nonzero(count)
        c = count[s, y, x]
        j = np.concatenate([np.arange(m) for m in c]) if len(c) else np.zeros(0, int)
        rep = np.repeat(np.arange(len(c)), c)
        t = k * spec["step_us"] + (j + 1) * spec["step_us"] // (c[rep] + 1)
        p = (diff[s, y, x] > 0).astype(int)[rep]
        parts.append(np.stack([s[rep], x[rep], y[rep], t, p], axis=1))
    allev = np.concatenate(parts)
    allev = allev[np.lexsort((allev[:, 3], allev[:, 0]))]
    streams = np.split(allev, np.searchsorted(allev[:, 0], np.arange(1, n)))
    out = []
    for ev in streams:
        arr = np.empty(len(ev), EVENT_DTYPE)
        arr["x"], arr["y"], arr["t"], arr["p"] = ev[:, 1], ev[:, 2], ev[:, 3], ev[:, 4]
        out.append(arr)
    return out


def digits_event_streams(spec: dict, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    """The event streams and labels of one split; every image's stream depends only on the seed."""
    from sklearn.datasets import load_digits

    data = load_digits()
    # Simulate all 1797 images in their original order so a stream does not depend on the split.
    streams = simulate_events(data.images.astype(np.float64), spec,
                              np.random.default_rng(spec["seed"]))
    idx = static.digits_split_indices(spec)[split]
    return [streams[i] for i in idx], data.target[idx].astype(np.int64)


def to_frames(streams, sensor_size, timesteps: int, window_us: float) -> torch.Tensor:
    """Count frames ``(N, T, P, H, W)`` of the first ``timesteps * window_us`` of each stream."""
    to_frame = tt.ToFrame(sensor_size=sensor_size, time_window=window_us, start_time=0,
                          end_time=timesteps * window_us)
    out = torch.zeros(len(streams), timesteps, sensor_size[2], sensor_size[1], sensor_size[0])
    for i, ev in enumerate(streams):
        if len(ev):
            frames = to_frame(ev)[:timesteps]
            out[i, : len(frames)] = torch.from_numpy(frames.astype(np.float32))
    return out


def load_digits_events_split(spec: dict, split: str):
    streams, labels = digits_event_streams(spec, split)
    n_sub = 3 * int(spec["steps_per_saccade"])
    window = n_sub * spec["step_us"] / int(spec["timesteps"])
    return to_frames(streams, (8, 8, 2), int(spec["timesteps"]), window), torch.from_numpy(labels)
