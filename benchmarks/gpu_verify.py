"""``verify`` of torch, ir-float and ir-int on 10,000 ``cifar10``-preset images on one device: the
wall time of the whole run, and of each backend, with ``--device cuda`` against a short CPU run of
the same chunks in the same process (the ratio printed is per sample).

The network and data are those of benchmarks/verify_scale.py (initialised, calibrated weights so
every level fires; CIFAR-format random images written to a temporary folder, since nothing can be
downloaded). Progress goes to stderr every ``--report-every`` chunks with the samples done and the
rate so far, so a run stopped by a time limit still gives its throughput.

Usage: ``python benchmarks/gpu_verify.py [--samples 10000] [--chunk 64] [--cpu-samples 16]
[--device cuda]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ["torch", "ir-float", "ir-int"]


def timed_verify(ckpt, device, samples, chunk, report_every):
    from mlf_deploy.workflows.options import VerifyOptions
    from mlf_deploy.workflows.pipeline import load_pipeline
    from mlf_deploy.workflows.verify import verify

    start = time.perf_counter()
    pipe = load_pipeline(ckpt, device=device)
    chunks = [0]

    def progress(message):
        if message.startswith("torch"):
            chunks[0] += 1
            if chunks[0] % report_every == 1:
                done = (chunks[0] - 1) * chunk
                wall = time.perf_counter() - start
                rate = f", {done / wall:.1f} samples/s" if done else ""
                print(f"  {device}: {wall:.0f} s, {done} samples done{rate}", file=sys.stderr,
                      flush=True)

    summary = verify(pipe, BACKENDS, VerifyOptions(samples=samples, chunk=chunk), progress=progress)
    return summary, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--chunk", type=int, default=64, help="samples per chunk on the device")
    ap.add_argument("--cpu-samples", type=int, default=16, help="the CPU baseline's samples "
                    "(0: none)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--report-every", type=int, default=10, help="chunks between progress lines")
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    import torch

    from benchmarks.verify_scale import write_inputs

    with tempfile.TemporaryDirectory(prefix="gpu-verify-") as tmp:
        t0 = time.perf_counter()
        ckpt = write_inputs(tmp, args.samples, (64, 128, 256))
        print(f"cifar10 preset (DS-ResNet-20 64/128/256, K=3, T=4), initialised weights; "
              f"{args.samples} test images and checkpoint written in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        runs = {}
        if args.cpu_samples:
            runs["cpu"] = timed_verify(ckpt, "cpu", args.cpu_samples, min(args.chunk, 8),
                                       args.report_every)
        runs[args.device] = timed_verify(ckpt, args.device, args.samples, args.chunk,
                                         args.report_every)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"device: {name}; torch {torch.__version__}; {os.cpu_count()} CPUs")
    print(f"{'device':<8}{'samples':>8}{'wall s':>9}{'s/sample':>10}{'10,000 at this rate':>21}"
          f"  passed   per backend (s)")
    for device, (summary, wall) in runs.items():
        per = wall / summary["samples"]
        backends = ", ".join(f"{n} {r['seconds']:.1f}" for n, r in summary["backends"].items())
        print(f"{device:<8}{summary['samples']:>8}{wall:>9.1f}{per:>10.4f}"
              f"{per * 1e4 / 60:>17.1f} min  {str(summary['passed']):<8} {backends}")
    if "cpu" in runs and args.device in runs and args.device != "cpu":
        cpu_per = runs["cpu"][1] / runs["cpu"][0]["samples"]
        dev_per = runs[args.device][1] / runs[args.device][0]["samples"]
        print(f"speed-up per sample, {args.device} over cpu: {cpu_per / dev_per:.1f}x; "
              f"target: 10,000 samples <= 10 min on one GPU")


if __name__ == "__main__":
    main()
