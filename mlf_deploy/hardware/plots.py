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


def _legend_outside(ax) -> None:
    """The legend right of the axes, where it cannot cover a bar or a point (savefig's tight box
    makes room for it)."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _energy_unit(values_pj) -> tuple[str, float]:
    """``(unit, pJ per unit)`` that keeps the largest value below 10,000 on the axis."""
    top = max((abs(v) for v in values_pj), default=0.0)
    return ("nJ", 1e3) if top < 1e7 else ("uJ", 1e6)


def plot_accuracy_energy(points, path, model: str = "45nm-fp32", finetuned=()) -> None:
    """Accuracy against energy per inference (``model``), one line per weight width, T marked;
    ``finetuned``: point lists of fine-tuned checkpoints, drawn dashed on the same axes."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    series = [(f"{b}-bit weights", "o-", [p for p in points if p.weight_bits == b])
              for b in sorted({p.weight_bits for p in points}, reverse=True)]
    series += [(f"{pts[0].weight_bits}-bit fine-tuned", "s--", pts) for pts in finetuned if pts]
    for i, (label, style, pts) in enumerate(series):
        pts = sorted(pts, key=lambda p: p.timesteps)
        e = [p.energy_pj[model] / 1e6 for p in pts]
        line = ax.plot(e, [p.accuracy for p in pts], style, label=label)[0]
        for p, ei in zip(pts, e):  # each width's labels at its own height: widths often coincide
            ax.annotate(f"T={p.timesteps}", (ei, p.accuracy), fontsize=7, xytext=(4, 4 + 9 * i),
                        textcoords="offset points", color=line.get_color())
    ann = [p.ann_energy_pj.get(model) for p in points if p.ann_energy_pj.get(model) is not None]
    if ann:
        ax.axvline(ann[0] / 1e6, color="gray", ls="--", label="same network as ANN (energy)")
    ax.set_xlabel(f"energy per inference (uJ, {model})")
    ax.set_ylabel("accuracy (integer reference)")
    _legend_outside(ax)
    ax.grid(alpha=0.3)
    _save(fig, path)


def _layer_rows(breakdown, model: str):
    """(names, SNN ops, ANN MACs, SNN pJ, ANN pJ or None) per layer, the readout last: its
    accumulations are part of the total, so a plot without them would not add up to it."""
    names = [r.name for r in breakdown.layers] + ["readout"]
    snn_ops = [r.synops + r.input_ops for r in breakdown.layers]
    snn_ops.append(breakdown.readout_synops_per_inference)
    ann_ops = [r.ann_macs for r in breakdown.layers]
    ann_ops.append(breakdown.ann_macs_per_inference - sum(ann_ops))
    consts = breakdown.models[model]
    snn_pj = [r.energy_pj[model] for r in breakdown.layers]
    snn_pj.append(breakdown.readout_synops_per_inference * consts["e_ac_pj"])
    ann_pj = [r.ann_energy_pj[model] for r in breakdown.layers]
    e_mac = consts.get("e_mac_pj")
    ann_pj = None if e_mac is None or None in ann_pj else [*ann_pj, ann_ops[-1] * e_mac]
    return names, snn_ops, ann_ops, snn_pj, ann_pj


def plot_layers(breakdown, path, model: str = "45nm-fp32", title: str | None = None) -> None:
    """Per-layer SynOps against ANN MACs, and per-layer energy, SNN against ANN, readout
    included."""
    names, snn_ops, ann_ops, snn_pj, ann_pj = _layer_rows(breakdown, model)
    idx = np.arange(len(names))
    fig = Figure(figsize=(max(6, 0.6 * len(names)), 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True)
    fig.suptitle(title or f"Operations and energy per inference by layer ({model}, "
                 f"T={breakdown.timesteps}, {breakdown.samples} samples)", fontsize=10)
    top.bar(idx - 0.2, snn_ops, 0.4, label="SNN SynOps (+ input ops at the stem)")
    top.bar(idx + 0.2, ann_ops, 0.4, label="ANN MACs")
    top.set_ylabel("ops per inference")
    top.set_yscale("log")
    _legend_outside(top)
    unit, scale = _energy_unit([*snn_pj, *(ann_pj or [])])
    bottom.bar(idx - 0.2, [e / scale for e in snn_pj], 0.4, label="SNN")
    if ann_pj is not None:
        bottom.bar(idx + 0.2, [a / scale for a in ann_pj], 0.4, label="ANN")
    bottom.set_ylabel(f"energy per inference ({unit}, {model})")
    _legend_outside(bottom)
    bottom.set_xticks(idx, names, rotation=60, ha="right", fontsize=7)
    _save(fig, path)


def plot_layers_by_width(points, path, model: str = "45nm-fp32") -> None:
    """Per-layer energy at every weight width of a sweep (at its longest T): where a narrower
    weight saves or costs energy, which one per-layer breakdown alone cannot show."""
    t_max = max(p.timesteps for p in points)
    chosen = sorted((p for p in points if p.timesteps == t_max and p.breakdown is not None),
                    key=lambda p: -p.weight_bits)
    if not chosen:
        raise UserError("no sweep point carries a per-layer breakdown to plot")
    names = _layer_rows(chosen[0].breakdown, model)[0]
    idx = np.arange(len(names))
    width = 0.8 / len(chosen)
    fig = Figure(figsize=(max(6, 0.6 * len(names)), 4.5))
    ax = fig.add_subplot()
    rows = [_layer_rows(p.breakdown, model)[3] for p in chosen]
    unit, scale = _energy_unit([e for r in rows for e in r])
    for i, (p, snn_pj) in enumerate(zip(chosen, rows)):
        ax.bar(idx - 0.4 + (i + 0.5) * width, [e / scale for e in snn_pj], width,
               label=f"{p.weight_bits}-bit weights (accuracy {p.accuracy:.3f})")
    ax.set_title(f"SNN energy per inference by layer and weight width ({model}, T={t_max})",
                 fontsize=10)
    ax.set_ylabel(f"energy per inference ({unit})")
    ax.set_xticks(idx, names, rotation=60, ha="right", fontsize=7)
    _legend_outside(ax)
    _save(fig, path)
