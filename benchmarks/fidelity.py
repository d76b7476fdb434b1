"""Deployment fidelity on the embedded data: train each configuration with the CLI defaults, then
verify torch, ir-float, ir-int (8 bit), onnx-float and onnx-int on the whole test split, and
optionally Lava on 8 samples. Prints one row per configuration.

    .venv/bin/python benchmarks/fidelity.py --out runs/fidelity [--lava] [--only ds14-k3]
"""

import argparse
import json
import time
from pathlib import Path

from mlf_deploy.training import TrainConfig, train
from mlf_deploy.workflows.options import VerifyOptions
from mlf_deploy.workflows.pipeline import load_pipeline
from mlf_deploy.workflows.verify import verify

CONFIGS = {
    "ds14-k3": dict(dataset="digits", depth=14, levels=3),
    "ds14-k2": dict(dataset="digits", depth=14, levels=2),
    "ds20-k3": dict(dataset="digits", depth=20, levels=3),
    "ds20-k2": dict(dataset="digits", depth=20, levels=2),
    "plain14-k3": dict(dataset="digits", depth=14, levels=3, variant="plain"),
    "events-ds14-k3": dict(dataset="digits-events", depth=14, levels=3),
}
MAIN = ["torch", "ir-float", "ir-int", "onnx-float", "onnx-int"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/fidelity")
    ap.add_argument("--lava", action="store_true", help="also lava-float/lava-fixed on 8 samples")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    rows = []
    for name, cfg in CONFIGS.items():
        if args.only and name not in args.only:
            continue
        out = Path(args.out) / name
        start = time.perf_counter()
        ckpt = out / "checkpoint.pt"
        if not ckpt.exists():
            train(TrainConfig(out_dir=str(out), **cfg), progress=False, log=lambda *_: None)
        trained_s = time.perf_counter() - start
        pipe = load_pipeline(ckpt, 8)
        rep = verify(pipe, MAIN, VerifyOptions(samples=None))
        b = rep["backends"]
        row = {"config": name, "train_s": round(trained_s, 1), "samples": rep["samples"],
               "torch_acc": b["torch"]["accuracy"], "ir_float_acc": b["ir-float"]["accuracy"],
               "ir_float_min_pop_agreement": min(p["agreement"]
                                                 for p in b["ir-float"]["populations"]),
               "ir_float_top1": b["ir-float"]["top1_agreement"],
               "ir_int_acc": b["ir-int"]["accuracy"],
               "ir_int_drop_pp": 100 * (b["torch"]["accuracy"] - b["ir-int"]["accuracy"]),
               "onnx_float_spike_mism": b["onnx-float"]["spike_mismatches"],
               "onnx_int_spike_mism": b["onnx-int"]["spike_mismatches"],
               "onnx_int_state_mism": b["onnx-int"]["state_mismatches"], "passed": rep["passed"]}
        if args.lava:
            lrep = verify(pipe, ["lava-float", "lava-fixed"], VerifyOptions(samples=8))
            lb = lrep["backends"]
            row.update(lava_fixed_spike_mism=lb["lava-fixed"]["spike_mismatches"],
                       lava_fixed_state_mism=lb["lava-fixed"]["state_mismatches"],
                       lava_float_spike_mism=lb["lava-float"]["spike_mismatches"],
                       lava_passed=lrep["passed"])
        rows.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
