"""NIR files of a trained checkpoint run in the peers' own importers, against ir-float, on a whole
split.

For each target profile the float graph is written with ``nir.write``, read back with ``nir.read``
and run by each loader of :mod:`mlf_deploy.runtimes.nir_peers`; every population's spikes at every
timestep are
compared with the reference simulator's. Also: the export -> import round trip (graph checksum) and
the dequantised int graph against ir-int. Prints one row per loader.

    .venv/bin/python benchmarks/nir_peers.py runs/digits/checkpoint.pt [--samples N] [--json]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import nir
import numpy as np

from mlf_deploy.exporters.nir.export import write_nir
from mlf_deploy.exporters.nir.importer import read_nir
from mlf_deploy.ir import graph_checksum
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.ir.semantics import prepare_input
from mlf_deploy.quantization.dequantize import dequantize_graph
from mlf_deploy.runtimes.nir_peers import run_peer
from mlf_deploy.workflows.pipeline import load_pipeline

RUNS = [("snntorch", "snntorch-f64"), ("snntorch", "snntorch"), ("norse", "norse-nirtorch"),
        ("norse", "norse")]


def compare(spikes: dict, logits: np.ndarray, ref, y) -> dict:
    per_pop = {p: int((spikes[p] != ref.spikes[p]).sum()) for p in ref.spikes}
    same_shape = logits.shape == ref.logits.shape
    return {"spike_mismatches": sum(per_pop.values()),
            "spike_total": int(sum(s.size for s in ref.spikes.values())),
            "populations_with_mismatches": sum(v > 0 for v in per_pop.values()),
            "populations": len(per_pop),
            "top1_vs_ir_float": float((logits.argmax(1) == ref.logits.argmax(1)).mean())
            if same_shape else None,
            "accuracy": float((logits.argmax(1) == y).mean()) if same_shape else None,
            "logits_max_abs_diff": float(np.abs(logits - ref.logits).max()) if same_shape else None,
            "output_shape": list(logits.shape)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--samples", type=int, default=None, help="first N test samples (default: all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    pipe = load_pipeline(args.checkpoint)
    x, y = pipe.data("test", args.samples)
    y = y.numpy()
    graph = pipe.graph_float
    ref = run_reference(graph, x)
    frames = prepare_input(graph, x)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in ("snntorch", "norse"):
            path = Path(tmp) / f"{target}.nir"
            write_nir(graph, path, target)
            same = graph_checksum(read_nir(path)) == graph_checksum(graph)
            rows[f"round-trip {target}"] = {"identical": same}
            g = nir.read(str(path))
            for tgt, loader in RUNS:
                if tgt != target:
                    continue
                start = time.perf_counter()
                spikes, logits = run_peer(g, loader, frames)
                rows[loader] = {**compare(spikes, logits, ref, y),
                                "seconds": time.perf_counter() - start}
        deq = dequantize_graph(pipe.graph_int)
        ref_int, ref_deq = run_reference(pipe.graph_int, x), run_reference(deq, x)
        rows["dequantised int vs ir-int"] = compare(ref_deq.spikes, ref_deq.logits, ref_int, y)
    print(f"{len(y)} test samples, T={graph.timesteps}, ir-float accuracy "
          f"{float((ref.logits.argmax(1) == y).mean()):.4f}")
    print(f"{'run':<28} {'spike mismatches':>22} {'pops':>9} {'top-1 vs ref':>12} {'accuracy':>9} "
          f"{'max |dlogit|':>12}")
    for name, r in rows.items():
        if "identical" in r:
            print(f"{name:<28} graph identical after export -> import: {r['identical']}")
            continue
        fmt = (lambda v: "n/a" if v is None else f"{v:.4f}")
        diff = r["logits_max_abs_diff"]
        shape = "" if r["top1_vs_ir_float"] is not None else f"  (output shape {r['output_shape']})"
        print(f"{name:<28} {r['spike_mismatches']:>10,} / {r['spike_total']:<10,} "
              f"{r['populations_with_mismatches']:>3}/{r['populations']:<5} "
              f"{fmt(r['top1_vs_ir_float']):>12} {fmt(r['accuracy']):>9} "
              f"{'n/a' if diff is None else format(diff, '.2e'):>12}" + shape)
    if args.json:
        print(json.dumps(rows, sort_keys=True))


if __name__ == "__main__":
    main()
