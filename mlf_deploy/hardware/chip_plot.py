"""PNG of the Loihi 1 per-event bill of both lowerings, term by term (and SANA-FE's categories
beside ours when it ran)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from mlf_deploy.energy.chip_bill import TERMS
from mlf_deploy.hardware.plots import _save


def plot_lowerings(chip: dict, path) -> None:
    """``chip``: the dict of :func:`mlf_deploy.workflows.chip_report.chip_report`."""
    bills = chip["bills"]
    sim = chip.get("sanafe")
    fig = Figure(figsize=(10 if sim else 7, 4))
    ax = fig.add_subplot(1, 2 if sim else 1, 1)
    x, width = np.arange(len(TERMS)), 0.8 / len(bills)
    for i, (name, bill) in enumerate(bills.items()):
        ax.bar(x + i * width, [bill["energy_pj"][t] / 1e6 for t in TERMS], width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, TERMS, rotation=30, ha="right")
    ax.set_ylabel("uJ per inference (Loihi 1 per-event bill)")
    ax.set_title("binary K-split vs graded (graded: payload-op ratio assumed)", fontsize=9)
    ax.legend(fontsize=8)
    if sim:
        groups = list(sim["energy_pj"])
        ax2 = fig.add_subplot(1, 2, 2)
        gx = np.arange(len(groups))
        ax2.bar(gx - 0.2, [sim["energy_pj"][g] / 1e6 for g in groups], 0.4, label="SANA-FE")
        ax2.bar(gx + 0.2, [sim["ours_pj"][g] / 1e6 for g in groups], 0.4, label="our bill")
        ax2.set_xticks(gx, groups)
        ax2.set_title(f"binary, first {sim['samples']} samples: SANA-FE vs ours", fontsize=9)
        ax2.legend(fontsize=8)
    _save(fig, path)
