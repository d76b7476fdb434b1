"""ir-int's two-part verdict in words (verify's table, the demo report) and as a per-layer plot.

The deployment check names the layers it fails and the population that deviates most against
its floor; the task check gives the accuracy drop with its exact paired interval (docs/verdict.md).
"""

from __future__ import annotations

from pathlib import Path


def _pp(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def task_text(task: dict, reference: str) -> str:
    lo, hi = task["drop_ci95"]
    return (f"accuracy drop against {reference} {_pp(task['drop'])} on {task['samples']} samples "
            f"(worse on {task['reference_only_correct']}, better on {task['only_correct']}; "
            f"95 % CI {_pp(lo)}..{_pp(hi)}; tolerance {100 * task['tolerance']:.2f} pp)")


def deployment_text(layers: dict) -> str:
    worst = next(r for r in layers["populations"] if r["population"] == layers["worst"])
    where = (f"layer(s) {', '.join(layers['failed_layers'])} deviate beyond the rounding floor"
             if not layers["passed"] else
             f"every one of {len(layers['populations'])} populations within "
             f"{layers['factor']:g}x its rounding floor")
    ch = worst["worst_channel"]
    return (f"per-layer check (teacher-forced): {where}; most deviating {worst['population']}: "
            f"{worst['mismatches']} spikes differ, floor {max(worst['floor'])} "
            f"(p = {worst['p_value']:.2g}; channel {ch['channel']}: {ch['mismatches']}, "
            f"floor {ch['floor']})")


def verdict_reasons(reference: str, task: dict, layers: dict | None) -> list[str]:
    """Why ir-int failed, one phrase per failed question."""
    why = []
    if layers is not None and not layers["passed"]:
        why.append(f"not a correct deployment: {deployment_text(layers)}")
    if not task["passed"]:
        why.append(f"accuracy drop shown above the tolerance: {task_text(task, reference)}")
    return why


def verdict_lines(r: dict) -> list[str]:
    """The two questions' answers for a backend report with a two-part verdict, else []."""
    st = r.get("statistics") or {}
    if "task" not in st:
        return []
    lines = []
    if r.get("layer_check"):
        ok = "yes" if r["layer_check"]["passed"] else "NO"
        lines.append(f"correct deployment? {ok}: {deployment_text(r['layer_check'])}")
    ok = "yes" if st["task"]["passed"] else "NO"
    lines.append(f"good enough? {ok}: {task_text(st['task'], r['reference'])}")
    return lines


def layer_drift(layer_check: dict, populations: list) -> dict:
    """Per layer: ``[teacher-forced mismatches, floor, ir-float spikes, free-running mismatches,
    failed]`` summed over its populations (``populations``: ir-int's free-running rows)."""
    layers: dict = {}
    free = {p["population"]: p["mismatches"] for p in populations}
    for row in layer_check["populations"]:
        acc = layers.setdefault(row["layer"], [0, 0, 0, 0, False])
        acc[0] += row["mismatches"]
        acc[1] += max(row["floor"])
        acc[2] += row["spikes"]
        acc[3] += free.get(row["population"], 0)
        acc[4] = acc[4] or not row["passed"]
    return layers


def layer_rows(r: dict) -> list[str]:
    """verify's per-layer lines: % of ir-float's spikes that differ, teacher-forced against its
    floor, and free-running."""
    if not r.get("layer_check"):
        return []
    rows = [f"{'layer':<24} {'own %':>7} {'floor %':>7} {'free %':>7}  ok"]
    for name, (own, floor, spikes, free, bad) in layer_drift(r["layer_check"],
                                                          r["populations"]).items():
        rows.append(f"{name:<24} {100 * own / max(spikes, 1):>7.2f} "
                    f"{100 * floor / max(spikes, 1):>7.2f} {100 * free / max(spikes, 1):>7.2f}  "
                    f"{'NO' if bad else 'yes'}")
    return rows


def drift_plot(layer_check: dict, populations: list, path) -> Path:
    """Per layer: % of spikes that differ from ir-float, teacher-forced (each layer's own
    rounding), its floor, and free-running (compounded through the network), so a user sees
    which layer to widen or fine-tune."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layers = layer_drift(layer_check, populations)
    names = list(layers)
    pct = [[100 * v[i] / max(v[2], 1) for v in layers.values()] for i in (0, 1, 3)]
    fig = Figure(figsize=(max(6, 0.45 * len(names)), 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = range(len(names))
    colors = ["tab:red" if layers[n][4] else "tab:blue" for n in names]
    ax.bar(x, pct[0], color=colors, label="ir-int, fed ir-float's spikes (own rounding)")
    ax.plot(x, pct[1], "k_", markersize=14, mew=2, label="rounding floor (perturbed float)")
    ax.plot(x, pct[2], "o--", color="tab:orange", label="ir-int free-running (compounded)")
    ax.set_xticks(list(x), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("% of ir-float's spikes that differ")
    ax.set_title("Per-layer drift of the integer graph (red: beyond its floor)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
