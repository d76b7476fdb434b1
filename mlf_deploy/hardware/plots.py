"""PNG plots of a sweep and of a per-layer breakdown; written atomically, without pyplot state."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlf_deploy.errors import UserError
from mlf_deploy.fileio import atomic_path


def _save(fig: Figure, path) -> None:
    FigureCanvasAgg(fig)
    try:  # atomic_path (check_writable) refuses unwritable paths with one clear message
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc


def plot_accuracy_energy(points, path, model: str = "45nm-fp32") -> None:
    """Accuracy against energy per inference (``model``), one line per weight width, T marked."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for bits in sorted({p.weight_bits for p in points}, reverse=True):
        pts = sorted((p for p in points if p.weight_bits == bits), key=lambda p: p.timesteps)
        e = [p.energy_pj[model] / 1e6 for p in pts]
        ax.plot(e, [p.accuracy for p in pts], "o-", label=f"{bits}-bit weights")
        for p, ei in zip(pts, e):
            ax.annotate(f"T={p.timesteps}", (ei, p.accuracy), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ann = [p.ann_energy_pj.get(model) for p in points if p.ann_energy_pj.get(model) is not None]
    if ann:
        ax.axvline(ann[0] / 1e6, color="gray", ls="--", label="same network as ANN (energy)")
    ax.set_xlabel(f"energy per inference (uJ, {model})")
    ax.set_ylabel("accuracy (integer reference)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_layers(breakdown, path, model: str = "45nm-fp32") -> None:
    """Per-layer SynOps against ANN MACs, and per-layer energy, SNN against ANN."""
    names = [r.name for r in breakdown.layers]
    idx = np.arange(len(names))
    fig = Figure(figsize=(max(6, 0.6 * len(names)), 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True)
    snn_ops = [r.synops + r.input_ops for r in breakdown.layers]
    top.bar(idx - 0.2, snn_ops, 0.4, label="SNN SynOps (+ input ops at the stem)")
    top.bar(idx + 0.2, [r.ann_macs for r in breakdown.layers], 0.4, label="ANN MACs")
    top.set_ylabel("ops per inference")
    top.set_yscale("log")
    top.legend(fontsize=8)
    bottom.bar(idx - 0.2, [r.energy_pj[model] / 1e3 for r in breakdown.layers], 0.4, label="SNN")
    ann = [r.ann_energy_pj[model] for r in breakdown.layers]
    if all(a is not None for a in ann):
        bottom.bar(idx + 0.2, [a / 1e3 for a in ann], 0.4, label="ANN")
    bottom.set_ylabel(f"energy per inference (nJ, {model})")
    bottom.legend(fontsize=8)
    bottom.set_xticks(idx, names, rotation=60, ha="right", fontsize=7)
    _save(fig, path)
