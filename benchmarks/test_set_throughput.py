"""A whole test set through the deployed network: seconds per sample of ``mlf-deploy run`` on the
integer ONNX export (``--logits-only``, and the default recording export for comparison) and on the
integer graph file (the reference simulator), against torch's own evaluation of the same samples,
for the ``cifar10`` preset at its real size.

This is the path for a 10,000-image test set: ``verify`` compares every backend with its reference
and so runs the slow reference simulators too, while ``run`` executes one artifact in batches of 32.
The ONNX and graph-file predictions are checked equal on every sample (all are the integer graph,
bit for bit). Weights: initialised and calibrated as in verify_scale.py
(no trained cifar10 model can be made here); CIFAR-format files are written to a temporary folder.
Prints per-sample seconds, speed relative to torch, and the time 10,000 samples would take.

Usage: ``python benchmarks/test_set_throughput.py [--samples 256] [--widths 64 128 256]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--widths", type=int, nargs=3, default=[64, 128, 256])
    args = ap.parse_args()

    import torch

    from benchmarks.verify_scale import write_inputs
    from mlf_deploy.data import model_input
    from mlf_deploy.data.cifar_pickle import read_cifar10_batch
    from mlf_deploy.workflows.export_checkpoint import export_checkpoint
    from mlf_deploy.workflows.options import ExportOptions
    from mlf_deploy.workflows.pipeline import load_pipeline
    from mlf_deploy.workflows.run_artifact import run_artifact

    with tempfile.TemporaryDirectory(prefix="test-set-") as folder:
        ckpt = write_inputs(folder, args.samples, args.widths)
        pipe = load_pipeline(ckpt)
        raw = read_cifar10_batch(os.path.join(folder, "cifar-10-batches-py", "test_batch"))[0]
        raw = raw[:args.samples]  # (B, 3, 32, 32) pixel values 0..255, as the data set stores them
        np.save(os.path.join(folder, "raw.npy"), raw)
        export_checkpoint(ckpt, os.path.join(folder, "int.onnx"),
                          ExportOptions("onnx", logits_only=True))
        export_checkpoint(ckpt, os.path.join(folder, "int-recording.onnx"), ExportOptions("onnx"))
        export_checkpoint(ckpt, os.path.join(folder, "int.mlfg"))
        x = pipe.split("test")[0][:args.samples]  # normalised images, as training reads them

        def torch_eval():
            with torch.no_grad():
                return torch.cat([pipe.model(model_input(x[i:i + 32])).argmax(1)
                                  for i in range(0, len(x), 32)]).tolist()
        torch_pred, torch_s = _timed(torch_eval)
        onnx, onnx_s = _timed(lambda: run_artifact(os.path.join(folder, "int.onnx"),
                                                   os.path.join(folder, "raw.npy")))
        rec, rec_s = _timed(lambda: run_artifact(os.path.join(folder, "int-recording.onnx"),
                                                 os.path.join(folder, "raw.npy")))
        ref, ref_s = _timed(lambda: run_artifact(os.path.join(folder, "int.mlfg"),
                                                 os.path.join(folder, "raw.npy")))
    same = onnx["predictions"] == ref["predictions"] == rec["predictions"]
    agree = float(np.mean(np.asarray(onnx["predictions"]) == np.asarray(torch_pred)))
    print(f"cifar10 preset, widths {args.widths}, {args.samples} test samples, "
          f"{torch.get_num_threads()} torch thread(s), load average at the end "
          f"{os.getloadavg()[0]:.1f}")
    print(f"both ONNX exports and the int graph file predict the same class on every sample: "
          f"{same}; top-1 agreement of the int network with torch {agree:.4f}")
    print(f"{'path':34} {'s/sample':>9} {'vs torch':>9} {'10,000 samples':>15}")
    for name, seconds in (("torch eval (float32, batch 32)", torch_s),
                          ("mlf-deploy run int.onnx (logits)", onnx_s),
                          ("run int-recording.onnx (default)", rec_s),
                          ("mlf-deploy run int.mlfg (ir-int)", ref_s)):
        per = seconds / args.samples
        print(f"{name:34} {per:>9.3f} {torch_s / seconds:>8.2f}x {per * 10_000 / 3600:>13.2f} h")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
