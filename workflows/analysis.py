"""Energy and hardware evaluation of a checkpoint's integer graph, as (table text, JSON dict).

The ``energy`` and ``evaluate`` commands print these; the demo writes them into its folder.
"""

from __future__ import annotations

import os

import numpy as np

from mlf_deploy.energy import PRESETS, estimate
from mlf_deploy.energy.neurobench_names import neurobench_fields
from mlf_deploy.errors import UserError, option
from mlf_deploy.fileio import check_writable
from mlf_deploy.graded_lowering import with_spikes
from mlf_deploy.hardware import Target, map_graph
from mlf_deploy.hardware.resources import compare_forms, forms_table
from mlf_deploy.hardware.sweep import sweep_chunks
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.quantization import quantize
from mlf_deploy.results import RunResult
from mlf_deploy.run_totals import RunTotals
from mlf_deploy.workflows.chip_report import chip_report, chip_tallies
from mlf_deploy.workflows.options import EnergyOptions, EvaluateOptions
from mlf_deploy.workflows.pipeline import Pipeline
from mlf_deploy.workflows.verify import chunk_size


def run_int(graph, x, device="cpu"):
    return run_reference(graph, x, record_states=False, device=device)


def check_energy_model(name: str) -> str:
    if name not in PRESETS:
        raise UserError(f"unknown energy model {name!r}; choose one of {', '.join(PRESETS)}")
    return name


def lowerings_plot_path(plot_path) -> str:
    """A plot at ``X.png`` comes with ``X_lowerings.png``: both lowerings' chip bill."""
    root, ext = os.path.splitext(str(plot_path))
    return f"{root}_lowerings{ext or '.png'}"


def check_energy_args(energy_model, plot_path) -> None:
    """The energy options click cannot check (samples are an ``IntRange`` at the CLI and
    :meth:`Pipeline.data` guards them): run before any work."""
    check_energy_model(energy_model)
    if plot_path:
        check_writable(plot_path)
        check_writable(lowerings_plot_path(plot_path))


def check_evaluate_args(energy_model, plot_dir) -> dict:
    """The evaluate options click cannot check; returns the plot paths. Weight bits and timesteps
    are checked by click at the CLI and by :func:`quantize` / :func:`with_timesteps` for callers."""
    check_energy_model(energy_model)
    plots = {}
    if plot_dir:
        plots = {k: os.path.join(plot_dir, f"{k}.png")
                 for k in ("accuracy_energy", "layers", "lowerings")}
        for path in plots.values():
            check_writable(path)
    return plots


def forms_report(graph_int, result, target=None) -> tuple[str, dict]:
    """Both lowerings of the binary int graph side by side, priced with ``result``'s level spikes
    (a run of either form: their level spikes are the same, which verify checks)."""
    cmp = compare_forms(graph_int, with_spikes(graph_int, "graded"), result,
                        *(() if target is None else (target,)))
    return ("binary (one LIF per level) against graded (one neuron per position, count payload), "
            f"per inference over {result.batch} samples:\n" + forms_table(cmp)), cmp


def stream_int(pipe: Pipeline, graph, split="test", samples=None,
               tallies=None) -> tuple[RunTotals, np.ndarray, RunResult]:
    """Run ``graph`` (an int graph of ``pipe``, either lowering) on the first ``samples`` of a
    split, chunk by chunk as verify does (:func:`chunk_size`), keeping only the totals the
    estimates need, and adding each chunk to ``tallies`` (the chip bills); ``(totals, labels,
    first chunk's run)``. Memory holds one chunk whatever ``samples`` is; the first chunk's
    raster is kept for a simulator run on the first samples."""
    binary = graph if not graph.graded else pipe.graph_int  # graded runs record level spikes
    totals, labels, first = RunTotals.empty(), [], None
    for x, y in pipe.batches(split, samples, chunk_size(pipe.graph_float), graph=graph,
                             states=False, totals=1):
        result = run_int(graph, x, pipe.device)
        totals.add(result, binary, x)
        for tally in (tallies or {}).values():
            tally.add(result)
        first = result if first is None else first
        labels.append(y.numpy())
    if not labels:
        raise UserError(f"the {split} split of {pipe.path} holds no samples")
    return totals, np.concatenate(labels), first


def energy_report(pipe: Pipeline, options: EnergyOptions | None = None) -> tuple[str, dict]:
    """The SynOps/energy table (spikes by count, as every SNN paper counts them) of a run of the
    int graph in the chosen lowering, the resources of both lowerings side by side, their Loihi 1
    per-event bill, and with ``simulator="sanafe"`` SANA-FE's figures beside it."""
    o = options or EnergyOptions()
    split, samples, energy_model, plot_path, spikes, simulator, simulator_samples = (
        o.split, o.samples, o.energy_model, o.plot_path, o.spikes, o.simulator,
        o.simulator_samples)
    check_energy_args(energy_model, plot_path)
    tallies = chip_tallies(pipe.graph_int)
    result, y, first = stream_int(pipe, pipe.graph("int", spikes), split, samples, tallies)
    br = estimate(pipe.graph_int, result, result)  # graded runs record level spikes as binary
    accuracy = float((result.logits.argmax(1) == y).mean())
    forms_text, forms = forms_report(pipe.graph_int, result)
    chip_text, chip = chip_report(pipe.graph_int, tallies, first, simulator, simulator_samples)
    text = (br.table(energy_model) + f"\naccuracy ({result.backend}): {accuracy:.4f}\n\n"
            + forms_text + "\n\n" + chip_text)
    if plot_path:
        from mlf_deploy.hardware.chip_plot import plot_lowerings
        from mlf_deploy.hardware.plots import plot_layers
        plot_layers(br, plot_path, energy_model)
        plot_lowerings(chip, lowerings_plot_path(plot_path))
    return text, {**br.to_dict(), **neurobench_fields(pipe.graph_int, result, accuracy),
                  "checkpoint": pipe.path, "split": split, "samples": len(y),
                  "weight_bits": pipe.weight_bits, "accuracy": accuracy, "backend": result.backend,
                  "spikes": spikes, "forms": forms, "chip": chip,
                  "plot": str(plot_path) if plot_path else None,
                  "lowerings_plot": lowerings_plot_path(plot_path) if plot_path else None}


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


def _quantize(pipe: Pipeline, bits: int):
    return quantize(pipe.graph_float, bits, input_max=pipe.input_max)[0]


def _sweep_pipeline(pipe: Pipeline, chunks, bits, steps):
    return sweep_chunks(pipe.graph_float, chunks, lambda g, xs: run_int(g, xs, pipe.device), bits,
                        steps, input_max=pipe.input_max)


def _finetuned_sweeps(pipe: Pipeline, finetuned, chunks, steps) -> list:
    """``(checkpoint, points)`` of each fine-tuned pipeline at its own weight width, on the
    samples ``chunks()`` yields."""
    out = []
    for ft in finetuned:
        if ft.spec != pipe.spec:
            raise UserError(f"{option('finetuned', ft.path)} was trained on another data set or "
                            f"split than {pipe.path}; compare checkpoints of the same data")
        out.append((ft.path, _sweep_pipeline(ft, chunks(), [ft.weight_bits], steps)))
    return out


def cores_by_bits(pipe: Pipeline, bits, weight_sharing=False) -> dict:
    """Cores of the Loihi-2-like mapping at each weight width: fewer bits, less synaptic memory."""
    return {b: map_graph(_quantize(pipe, b), Target(weight_sharing=weight_sharing)).cores
            for b in sorted(set(bits), reverse=True)}


def evaluate_report(pipe: Pipeline, options: EvaluateOptions | None = None,
                    finetuned=(), lowerings_text=True) -> tuple[str, dict]:
    """The sweep (binary int graphs; graded ones compute the same spikes), the mapping of the
    chosen lowering, both lowerings' resources side by side at the first weight width, and
    ``finetuned`` pipelines (fine-tuned checkpoints of the same model), each swept at its own
    weight width and plotted with the post-training points. ``lowerings_text=False`` leaves the
    lowerings' tables out of the text (still in the dict), for a report that prints
    :func:`energy_report`'s beside it."""
    o = options or EvaluateOptions()
    bits, steps, split, samples, energy_model, weight_sharing, plot_dir, spikes = (
        o.widths(pipe.weight_bits), list(o.timesteps or ()), o.split, o.samples, o.energy_model,
        o.weight_sharing, o.plot_dir, o.spikes)
    plots = check_evaluate_args(energy_model, plot_dir)
    steps = steps or list(range(1, pipe.graph_float.timesteps + 1))
    if pipe.graph_float.input.encoding == "events" and max(steps) > pipe.graph_float.timesteps:
        raise UserError(f"{option('timesteps')}: the event frames of this data set have "
                        f"{pipe.graph_float.timesteps} steps; choose at most that")
    def chunks():  # the same samples for every sweep, one chunk in memory at a time
        return pipe.batches(split, samples, chunk_size(pipe.graph_float), states=False,
                            totals=len(bits))
    points = _sweep_pipeline(pipe, chunks(), bits, steps)
    tuned = _finetuned_sweeps(pipe, finetuned, chunks, steps)
    graph_int = pipe.graph_int if bits[0] == pipe.weight_bits else _quantize(pipe, bits[0])
    target = Target(weight_sharing=weight_sharing)
    chosen = with_spikes(graph_int, spikes)
    mapping = map_graph(chosen, target)
    tallies = chip_tallies(graph_int)
    totals, y, _ = stream_int(pipe, chosen, split, samples, tallies)
    forms_text, forms = forms_report(graph_int, totals, target)
    chip_text, chip = chip_report(graph_int, tallies)
    cores = cores_by_bits(pipe, bits + [ft.weight_bits for ft in finetuned], weight_sharing)
    lines = [sweep_table(points, energy_model)]
    for path, pts in tuned:
        lines += [f"fine-tuned for {pts[0].weight_bits}-bit weights: {path}",
                  sweep_table(pts, energy_model)]
    top = cores[max(cores)]
    lines += [f"energy model {energy_model}; latency = T x pipeline depth "
              f"({mapping.pipeline_depth} layers) in timesteps", "",
              f"mapping of the {spikes} lowering:", mapping.table(),
              "cores by weight width (binary lowering): " + ", ".join(
                  f"{b}-bit {n}" + (f" ({top - n} fewer than {max(cores)}-bit)" if b != max(cores)
                                    else "") for b, n in cores.items())]
    if lowerings_text:
        lines += ["", forms_text, "", chip_text]
    text = "\n".join(lines)
    if plot_dir:
        from mlf_deploy.hardware.plots import plot_accuracy_energy, plot_layers_by_width
        plot_accuracy_energy(points, plots["accuracy_energy"], energy_model,
                             finetuned=[pts for _, pts in tuned])
        plot_layers_by_width(points, plots["layers"], energy_model)
        from mlf_deploy.hardware.chip_plot import plot_lowerings
        plot_lowerings(chip, plots["lowerings"])
    m = mapping.to_dict()
    m.pop("core_list", None)
    return text, {"checkpoint": pipe.path, "split": split, "samples": len(y),
                  "energy_model": energy_model, "points": [p.to_dict() for p in points],
                  "mapping": m, "cores_by_weight_bits": cores, "spikes": spikes, "forms": forms,
                  "chip": chip,
                  "finetuned": [{"checkpoint": path, "weight_bits": pts[0].weight_bits,
                                 "points": [p.to_dict() for p in pts]} for path, pts in tuned],
                  "plots": {k: str(v) for k, v in plots.items()}}
