"""``verify`` at real size: the ``cifar10`` preset (DS-ResNet-20, widths 64/128/256, K=3, T=4,
3x32x32) through torch, ir-float, ir-int, onnx-float and onnx-int, chunk by chunk, at two sample
counts, to show that verify's memory does not grow with ``--samples``.

Weights: initialised, not trained (a CPU training run of this network here takes hours). BatchNorm
statistics come from a few training-mode passes over the training images and the BN scales/shifts
are raised (uniform 1.0-2.5 / 0.0-0.8) so every level fires: a silent network would flatter every
backend. The images are CIFAR-10 python batches written into a temporary folder (no data can be
downloaded here), read through mlf-deploy's own loader; the checkpoint carries the input range, as
``train`` writes it, so verify never reads the training split.

Each sample count runs ``verify`` in a fresh process, whose peak RSS (``ru_maxrss``) is printed:
flat across the counts when memory does not grow with the number of samples. Printed per backend:
seconds per sample, its speed relative to torch (>1: faster) and 10,000 samples extrapolated.

Usage: ``python benchmarks/verify_scale.py [--samples 2 8] [--chunk 2] [--widths 64 128 256]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ["ir-float", "ir-int", "onnx-float", "onnx-int"]


def write_inputs(folder: str, test_samples: int, widths) -> str:
    """CIFAR-format batches and an initialised, calibrated ``cifar10``-preset checkpoint."""
    from mlf_deploy.data import dataset_spec
    from mlf_deploy.data.layouts import make_cifar10_batches
    from mlf_deploy.models import preset_args

    make_cifar10_batches(folder, per_batch=max(16, test_samples))
    spec = dataset_spec("cifar10", 0, data_dir=folder)
    return calibrated_checkpoint(folder, spec, preset_args("cifar10", widths=list(widths)))


def calibrated_checkpoint(folder: str, spec: dict, args: dict) -> str:
    """``folder/checkpoint.pt``: a model of ``args`` on ``spec``'s data, initialised with seed 0
    and calibrated so every level fires (BN statistics from two training-split batches, BN gains
    and shifts raised)."""
    import torch

    from mlf_deploy.checkpoint import save_checkpoint
    from mlf_deploy.data import open_split
    from mlf_deploy.data.ranges import split_range
    from mlf_deploy.models import DSResNet, TdBatchNorm

    train = open_split(spec, "train")
    torch.manual_seed(0)
    model = DSResNet(**args).train()
    with torch.no_grad():
        for i in range(2):
            model(train.x[8 * i:8 * (i + 1)])
        for m in model.modules():
            if isinstance(m, TdBatchNorm) and m.weight is not None:  # the input BN has no affine
                m.weight.uniform_(1.0, 2.5)
                m.bias.uniform_(0.0, 0.8)
    path = os.path.join(folder, "checkpoint.pt")
    save_checkpoint(path, {"model_args": args, "state_dict": model.eval().state_dict(),
                           "config": {}, "dataset": spec, "input": split_range(train),
                           "metrics": {}, "epoch": 0})
    return path


def child(ckpt: str, samples: int, chunk: int | None) -> None:
    """One verify run in this process; prints its numbers as one JSON line."""
    import torch

    from mlf_deploy.workflows.options import VerifyOptions
    from mlf_deploy.workflows.pipeline import load_pipeline
    from mlf_deploy.workflows.verify import verify

    start = time.perf_counter()
    pipe = load_pipeline(ckpt)
    chunks = [0]

    def progress(message):  # one line per 25 chunks, to stderr (stdout carries the result)
        if message.startswith("torch"):
            chunks[0] += 1
            if chunks[0] % 25 == 1:
                print(f"  {time.perf_counter() - start:.0f} s: {message}", file=sys.stderr,
                      flush=True)
    summary = verify(pipe, BACKENDS, VerifyOptions(samples=samples, chunk=chunk), progress=progress)
    wall = time.perf_counter() - start
    print(json.dumps({
        "samples": summary["samples"], "chunk": summary["chunk"], "passed": summary["passed"],
        "wall_s": wall, "threads": torch.get_num_threads(),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
        "neurons": pipe.graph_float.summary()["neurons"],
        "backends": {n: {k: r[k] for k in ("seconds", "spike_mismatches", "spike_total",
                                           "state_mismatches", "within_tolerance", "reason")}
                     for n, r in summary["backends"].items()}}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--chunk", type=int, default=2, help="0: verify's default")
    ap.add_argument("--widths", type=int, nargs=3, default=[64, 128, 256])
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # CKPT SAMPLES
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]), args.chunk or None)
    load = [os.getloadavg()]
    runs = []
    with tempfile.TemporaryDirectory(prefix="verify-scale-") as tmp:
        t0 = time.perf_counter()
        ckpt = write_inputs(tmp, max(args.samples), args.widths)
        print(f"cifar10 preset, widths {args.widths}, initialised weights; data and checkpoint "
              f"written in {time.perf_counter() - t0:.0f} s", flush=True)
        for n in args.samples:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", ckpt, str(n),
                   "--chunk", str(args.chunk)]
            out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            if out.returncode != 0:
                sys.exit(f"verify of {n} samples failed (its error is printed above)")
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            load.append(os.getloadavg())
    big = runs[-1]
    n, torch_s = big["samples"], big["backends"]["torch"]["seconds"] / big["samples"]
    print(f"{big['neurons']:,} neurons x T=4; {os.cpu_count()} CPUs, torch {big['threads']} "
          f"thread(s); per-sample figures from the {n}-sample run")
    print(f"{'backend':11s} {'s/sample':>9s} {'vs torch':>9s} {'10,000 samples':>15s} "
          f"{'spike mismatches':>22s}  within tolerance")
    for name, r in big["backends"].items():
        per = r["seconds"] / n
        print(f"{name:11s} {per:9.3f} {torch_s / per:8.2f}x {per * 1e4 / 3600:13.1f} h "
              f"{r['spike_mismatches']:>10,}/{r['spike_total']:<11,} "
              f"{'yes' if r['within_tolerance'] else 'NO: ' + r['reason']}")
    print("(10,000 samples: extrapolated from the per-sample time, one backend alone)")
    for run in runs:
        print(f"verify --samples {run['samples']} --chunk {run['chunk']}: {run['wall_s']:.0f} s, "
              f"passed {run['passed']}, peak RSS {run['peak_rss_gib']:.2f} GiB")
    print("load average (1 min) before and after each run: "
          + ", ".join(f"{a[0]:.1f}" for a in load))


if __name__ == "__main__":
    main()
