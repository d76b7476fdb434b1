"""Our Loihi 1 per-event bill against SANA-FE, per energy category, on checkpoints' int graphs.

    python benchmarks/sanafe_agreement.py CKPT [CKPT ...] [--samples 2]

Prints, per checkpoint: SANA-FE's energy per inference by category, ours, their ratio, the
latencies, and the run time of each tool (both priced on the same samples and placement).
"""

from __future__ import annotations

import argparse
import time

from mlf_deploy.energy.chip_bill import SANAFE_GROUPS, chip_bill
from mlf_deploy.hardware import map_graph
from mlf_deploy.hardware.loihi1 import LOIHI1
from mlf_deploy.runtimes.pipeline import load_pipeline
from mlf_deploy.runtimes.reference import run_reference
from mlf_deploy.runtimes.sanafe_chip import sanafe_bill


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--samples", type=int, default=2)
    args = ap.parse_args()
    for path in args.checkpoints:
        pipe = load_pipeline(path, None, None)
        x, _ = pipe.data("test", args.samples)
        result = run_reference(pipe.graph_int, x, record_states=False)
        start = time.perf_counter()
        mapping = map_graph(pipe.graph_int, LOIHI1)
        ours = chip_bill(pipe.graph_int, result, mapping)
        ours_s = time.perf_counter() - start
        sim = sanafe_bill(pipe.graph_int, result, mapping)
        print(f"{path}: {mapping.cores} cores, {result.batch} samples, activity "
              f"{sim['activity'].split(' ')[0]}")
        print(f"{'category':<10} {'SANA-FE pJ':>14} {'ours pJ':>14} {'SANA-FE/ours':>12}")
        for g in SANAFE_GROUPS:
            o, s = ours.groups_pj[g], sim["energy_pj"][g]
            print(f"{g:<10} {s:>14,.0f} {o:>14,.0f} {s / o if o else float('nan'):>12.4f}")
        print(f"{'total':<10} {sim['total_pj']:>14,.0f} {ours.total_pj:>14,.0f} "
              f"{sim['total_pj'] / ours.total_pj:>12.4f}")
        print(f"{'latency us':<10} {sim['latency_s'] * 1e6:>14.2f} {ours.latency_s * 1e6:>14.2f} "
              f"{sim['latency_s'] / ours.latency_s:>12.4f}")
        print(f"run time: SANA-FE {sim['seconds']:.1f} s ({sim['runs']} runs), ours "
              f"{ours_s:.2f} s (mapping included)\n")


if __name__ == "__main__":
    main()
