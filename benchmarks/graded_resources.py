"""Hardware resources of the binary and the graded lowering, side by side, for the digits model and
the cifar10 and dvs_gesture preset geometries (the table in README.md and docs/energy.md).

    .venv/bin/python benchmarks/graded_resources.py [--digits CKPT] [--samples 16] [--markdown]

Static columns (neurons, registers, weights, synapses, cores, chips, design rules) depend on the
geometry only. Activity columns (spike messages, synaptic ops per inference) come from a run of the
graded int graph on the reference simulator: the digits test split for a trained checkpoint; for the
presets an *untrained* model whose BN statistics come from a few training-mode passes over random
inputs (static: uniform images; events: Poisson-like counts), so their activity is illustrative.
"""

from __future__ import annotations

import argparse
import signal
import time

import torch

from mlf_deploy.checkpoint import load_model
from mlf_deploy.data import load_split
from mlf_deploy.graded_lowering import to_graded
from mlf_deploy.hardware.resources import COLUMNS, compare_forms, format_cell, forms_table
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.ir.semantics import input_normalisation
from mlf_deploy.lowering import lower
from mlf_deploy.models import preset
from mlf_deploy.quantization import quantize

GEOMETRIES = {"cifar10": ((3, 32, 32), "static"), "dvs_gesture": ((2, 32, 32), "events"),
              "cifar10_dvs": ((2, 42, 42), "events")}


def random_inputs(shape, encoding, timesteps, batch, seed):
    g = torch.Generator().manual_seed(seed)
    if encoding == "events":
        return torch.poisson(torch.full((timesteps, batch, *shape), 0.3), generator=g)
    return torch.rand(batch, *shape, generator=g) * 2 - 1


def untrained(name, samples):
    shape, encoding = GEOMETRIES[name]
    torch.manual_seed(0)
    model = preset(name).train()
    with torch.no_grad():
        for seed in range(3):
            model(random_inputs(shape, encoding, model.timesteps, 8, seed))
    model.eval()
    x = random_inputs(shape, encoding, model.timesteps, samples, 10)
    return model, shape, encoding, x, x


def digits(ckpt, samples):
    model, ckpt_data = load_model(ckpt)
    spec = ckpt_data["dataset"]
    x_train, _ = load_split(spec, "train")
    x, _ = load_split(spec, "test")
    return model, tuple(x.shape[1:]), "static", x[:samples], x_train


class MappingTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise MappingTimeout


def compare_within(binary, graded, result, seconds):
    """compare_forms, without cores and chips when mapping takes longer than ``seconds`` (the
    greedy fan-out placement is slow on large binary graphs: thousands of cores, each re-split)."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        return compare_forms(binary, graded, result)
    except MappingTimeout:
        return compare_forms(binary, graded, result, mapping=False)
    finally:
        signal.alarm(0)


def forms_of(model, shape, encoding, x, x_train):
    graph = lower(model, shape, encoding)
    input_max = None
    norm = input_normalisation(graph)
    if encoding == "static" or norm.gain is not None:
        input_max = float(x_train.abs().max())
        if norm.gain is not None:  # the normalised input's range
            gain = torch.from_numpy(norm.gain).float()
            offset = torch.from_numpy(norm.offset).float()
            input_max = float((x_train * gain + offset).abs().max())
    binary, _ = quantize(graph, 8, input_max=input_max)
    graded = to_graded(binary)
    return binary, graded, run_reference(graded, x, record_states=False)


def markdown(results) -> str:
    names = list(results)
    head = "| resource | " + " | ".join(f"{n} binary | {n} graded | ratio" for n in names) + " |"
    rows = [head, "|---|" + "---:|" * (3 * len(names))]
    for key, label, fmt in COLUMNS:
        cells = []
        for n in names:
            cmp = results[n]
            b, g = cmp["binary"][key], cmp["graded"][key]
            if key == "synaptic_memory_bytes":
                b, g = b / 1024, g / 1024
            r = cmp["binary_over_graded"].get(key)
            cells += [format_cell(b, fmt), format_cell(g, fmt), "" if r is None else f"{r:.2f}x"]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    rows.append("| break-even graded/binary op energy | " + " | ".join(
        f" | | {results[n]['break_even_graded_op_ratio']:.2f}x" for n in names) + " |")
    rows.append("| design-rule violations | " + " | ".join(
        f"{len(results[n]['binary']['violations'])} | {len(results[n]['graded']['violations'])} | "
        for n in names) + " |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--digits", help="trained digits checkpoint [default: untrained digits preset]")
    ap.add_argument("--samples", type=int, default=16,
                    help="samples per model for the activity columns")
    ap.add_argument("--preset-samples", type=int, default=2)
    ap.add_argument("--markdown", action="store_true", help="also print one markdown table")
    ap.add_argument("--map-seconds", type=int, default=600, help="time limit of one comparison")
    ap.add_argument("--presets", default="cifar10,dvs_gesture,cifar10_dvs",
                    help="the paper's presets to compare ('' for digits only)")
    args = ap.parse_args()
    cases = {}
    if args.digits:
        cases["digits"] = lambda: digits(args.digits, args.samples)
    else:
        GEOMETRIES["digits"] = ((1, 8, 8), "static")
        cases["digits (untrained)"] = lambda: untrained("digits", args.samples)
    for name in GEOMETRIES:
        if name != "digits" and name in args.presets.split(","):
            cases[f"{name} (untrained)"] = lambda name=name: untrained(name, args.preset_samples)
    results = {}
    for name, build in cases.items():
        start = time.perf_counter()
        binary, graded, result = forms_of(*build())
        ran = time.perf_counter() - start
        cmp = compare_within(binary, graded, result, args.map_seconds)
        print(f"== {name}: K={binary.levels}, T={binary.timesteps}, {result.batch} samples, "
              f"lower + run {ran:.0f} s, compare {time.perf_counter() - start - ran:.0f} s",
              flush=True)
        if cmp["binary"]["cores"] is None:
            print(f"(the core mapping did not finish within {args.map_seconds} s: cores n/a)")
        results[name] = cmp
        print(forms_table(cmp))
        print()
    if args.markdown:
        print(markdown(results))


if __name__ == "__main__":
    main()
