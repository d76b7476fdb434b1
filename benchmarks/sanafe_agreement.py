"""Our Loihi 1 per-event bill against SANA-FE, per energy category, on checkpoints' int graphs
and on the dvs_gesture preset's geometry at a reduced width.

    python benchmarks/sanafe_agreement.py [CKPT ...] [--samples 2] [--dvs-gesture-widths 2,4,8]

Prints, per network: SANA-FE's energy per inference by category, ours, their ratio, the
latencies, and the run time of each tool (both priced on the same samples and placement). The
dvs_gesture network is untrained (BN statistics from a few passes over Poisson-like event
counts, as benchmarks/graded_resources.py builds it), so its activity is illustrative; its width
is reduced because SANA-FE holds ~2.4 KB per synapse (the full preset has ~10^8 synapses).
"""

from __future__ import annotations

import argparse
import time

import torch

from mlf_deploy.energy.chip_bill import SANAFE_GROUPS, chip_bill
from mlf_deploy.hardware import map_graph
from mlf_deploy.hardware.loihi1 import LOIHI1
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.ir.semantics import input_normalisation
from mlf_deploy.lowering import lower
from mlf_deploy.models import preset
from mlf_deploy.quantization import quantize
from mlf_deploy.runtimes.sanafe_chip import sanafe_bill
from mlf_deploy.workflows.pipeline import load_pipeline


def dvs_gesture_graph(widths, samples):
    """The dvs_gesture preset (2x32x32 events, T = 40, depth 20) at ``widths``, untrained."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = preset("dvs_gesture", widths=widths).train()
    events = lambda batch: torch.poisson(torch.full((40, batch, 2, 32, 32), 0.3), generator=g)
    with torch.no_grad():
        for _ in range(3):
            model(events(4))
    graph = lower(model.eval(), (2, 32, 32), "events")
    x = events(samples)
    norm = input_normalisation(graph)  # the preset's input BN
    gain, offset = torch.from_numpy(norm.gain).float(), torch.from_numpy(norm.offset).float()
    return quantize(graph, 8, input_max=float((x * gain + offset).abs().max()))[0], x


def compare(name, graph, x) -> None:
    result = run_reference(graph, x, record_states=False)
    start = time.perf_counter()
    mapping = map_graph(graph, LOIHI1)
    ours = chip_bill(graph, result, mapping)
    ours_s = time.perf_counter() - start
    sim = sanafe_bill(graph, result, mapping)
    synapses = sum(c.synapse_bytes for c in mapping.core_list)
    print(f"{name}: {mapping.cores} cores, {synapses / 1e6:.2f} M synapses, {result.batch} "
          f"samples, T={result.timesteps}, activity {sim['activity'].split(' ')[0]}")
    print(f"{'category':<10} {'SANA-FE pJ':>14} {'ours pJ':>14} {'SANA-FE/ours':>12}")
    for g in SANAFE_GROUPS:
        o, s = ours.groups_pj[g], sim["energy_pj"][g]
        print(f"{g:<10} {s:>14,.0f} {o:>14,.0f} {s / o if o else float('nan'):>12.4f}")
    print(f"{'total':<10} {sim['total_pj']:>14,.0f} {ours.total_pj:>14,.0f} "
          f"{sim['total_pj'] / ours.total_pj:>12.4f}")
    print(f"{'latency us':<10} {sim['latency_s'] * 1e6:>14.2f} {ours.latency_s * 1e6:>14.2f} "
          f"{sim['latency_s'] / ours.latency_s:>12.4f}")
    print(f"run time: SANA-FE {sim['seconds']:.1f} s ({sim['runs']} runs), ours "
          f"{ours_s:.2f} s (mapping included)\n", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--dvs-gesture-widths", default="2,4,8",
                    help="stage widths of the dvs_gesture network; empty to skip it")
    args = ap.parse_args()
    for path in args.checkpoints:
        pipe = load_pipeline(path, None, None)
        compare(path, pipe.graph_int, pipe.data("test", args.samples)[0])
    if args.dvs_gesture_widths:
        widths = tuple(int(w) for w in args.dvs_gesture_widths.split(","))
        compare(f"dvs_gesture preset at widths {widths}", *dvs_gesture_graph(widths, args.samples))


if __name__ == "__main__":
    main()
