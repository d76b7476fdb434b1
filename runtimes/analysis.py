"""Energy and hardware evaluation of a checkpoint's integer graph, as (table text, JSON dict).

The ``energy`` and ``evaluate`` commands print these; the demo writes them into its folder.
"""

from __future__ import annotations

import os

from mlf_deploy.energy import PRESETS, estimate
from mlf_deploy.errors import UserError
from mlf_deploy.fileio import check_writable
from mlf_deploy.hardware import Target, map_graph
from mlf_deploy.hardware.sweep import sweep
from mlf_deploy.quantization import quantize
from runtimes.pipeline import Pipeline
from runtimes.reference import run_reference


def run_int(graph, x):
    return run_reference(graph, x, record_states=False)


def check_energy_model(name: str) -> str:
    if name not in PRESETS:
        raise UserError(f"unknown energy model {name!r}; choose one of {', '.join(PRESETS)}")
    return name


def check_energy_args(energy_model, plot_path) -> None:
    """The energy options click cannot check (samples are an ``IntRange`` at the CLI and
    :meth:`Pipeline.data` guards them): run before any work."""
    check_energy_model(energy_model)
    if plot_path:
        check_writable(plot_path)


def check_evaluate_args(energy_model, plot_dir) -> dict:
    """The evaluate options click cannot check; returns the plot paths. Weight bits and timesteps
    are checked by click at the CLI and by :func:`quantize` / :func:`with_timesteps` for callers."""
    check_energy_model(energy_model)
    plots = {}
    if plot_dir:
        plots = {k: os.path.join(plot_dir, f"{k}.png") for k in ("accuracy_energy", "layers")}
        for path in plots.values():
            check_writable(path)
    return plots


def energy_report(pipe: Pipeline, split="test", samples=None, energy_model="45nm-fp32",
                  plot_path=None) -> tuple[str, dict]:
    check_energy_args(energy_model, plot_path)
    x, y = pipe.data(split, samples)
    result = run_int(pipe.graph_int, x)
    br = estimate(pipe.graph_int, result, x)
    accuracy = float((result.logits.argmax(1) == y.numpy()).mean())
    text = br.table(energy_model) + f"\naccuracy (integer reference): {accuracy:.4f}"
    if plot_path:
        from mlf_deploy.hardware.plots import plot_layers
        plot_layers(br, plot_path, energy_model)
    return text, {**br.to_dict(), "checkpoint": pipe.path, "split": split, "samples": len(y),
                  "weight_bits": pipe.weight_bits, "accuracy": accuracy, "backend": result.backend,
                  "plot": str(plot_path) if plot_path else None}


def sweep_table(points, model) -> str:
    head = (f"{'bits':>4} {'T':>3} {'accuracy':>8} {'synops':>12} {'energy_pJ':>12} "
            f"{'latency':>7} {'firing':>7} {'dormant':>7}  level share")
    rows = [head, "-" * len(head)]
    for p in points:
        rows.append(f"{p.weight_bits:>4} {p.timesteps:>3} {p.accuracy:>8.4f} "
                    f"{p.synops_per_inference:>12.1f} {p.energy_pj[model]:>12.1f} "
                    f"{p.latency_steps:>7} {p.firing_rate:>7.4f} {p.dormant_fraction:>7.4f}  "
                    f"{'/'.join(f'{f:.3f}' for f in p.level_fraction)}")
    return "\n".join(rows)


def evaluate_report(pipe: Pipeline, bits, steps=None, split="test", samples=None,
                    energy_model="45nm-fp32", weight_sharing=False, plot_dir=None) -> tuple[str, dict]:
    plots = check_evaluate_args(energy_model, plot_dir)
    steps = steps or list(range(1, pipe.graph_float.timesteps + 1))
    if pipe.graph_float.input.encoding == "events" and max(steps) > pipe.graph_float.timesteps:
        raise UserError(f"--timesteps: the event frames of this data set have "
                        f"{pipe.graph_float.timesteps} steps; choose at most that")
    x, y = pipe.data(split, samples)
    points = sweep(pipe.graph_float, x, y.numpy(), run_int, bits, steps, input_max=pipe.input_max)
    graph_int = pipe.graph_int if bits[0] == pipe.weight_bits else \
        quantize(pipe.graph_float, bits[0], input_max=pipe.input_max)[0]
    mapping = map_graph(graph_int, Target(weight_sharing=weight_sharing))
    text = "\n".join([sweep_table(points, energy_model),
                      f"energy model {energy_model}; latency = T x pipeline depth "
                      f"({mapping.pipeline_depth} layers) in timesteps", "", mapping.table()])
    if plot_dir:
        from mlf_deploy.hardware.plots import plot_accuracy_energy, plot_layers_by_width
        plot_accuracy_energy(points, plots["accuracy_energy"], energy_model)
        plot_layers_by_width(points, plots["layers"], energy_model)
    m = mapping.to_dict()
    m.pop("core_list", None)
    return text, {"checkpoint": pipe.path, "split": split, "samples": len(y),
                  "energy_model": energy_model, "points": [p.to_dict() for p in points],
                  "mapping": m, "plots": {k: str(v) for k, v in plots.items()}}
