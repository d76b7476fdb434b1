"""The run-size guard's estimate against the measured peak memory, on cases it was not tuned on.

Each case runs one command in a fresh process under ``/usr/bin/time -v``; the process keeps the
estimates its guard made (``mlf_deploy.run_memory.ESTIMATES``: resident size when the guard ran
plus the run's buffers counted from the code) and prints the largest at exit. Printed per case:
the estimate, the measured peak RSS and their ratio (1.00: exact; the target is 0.80-1.20).

Checkpoints are initialised and calibrated as in ``benchmarks/verify_scale.py`` (every level
fires); ``cifar10`` data are CIFAR-format batches written into a temporary folder, ``digits`` is
shipped.

Usage: ``python benchmarks/run_memory.py [--cases NAME ...] [--list]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify_scale import ROOT, calibrated_checkpoint  # noqa: E402

# (name, model, command arguments after the checkpoint)
CASES = [
    ("digits energy 64", "digits", ["energy", "--samples", "64"]),
    ("digits energy 360 (6 chunks)", "digits", ["energy", "--samples", "360"]),
    ("digits energy graded", "digits", ["energy", "--samples", "64", "--spikes", "graded"]),
    ("digits evaluate 64", "digits", ["evaluate", "--samples", "64"]),
    ("cifar10 16/32/64 energy 8", "cifar-small", ["energy", "--samples", "8"]),
    ("cifar10 16/32/64 energy graded 8", "cifar-small",
     ["energy", "--samples", "8", "--spikes", "graded"]),
    ("cifar10 16/32/64 evaluate 4", "cifar-small", ["evaluate", "--samples", "4",
                                                    "--weight-bits", "8,4"]),
    ("cifar10 preset energy 1", "cifar10", ["energy", "--samples", "1"]),
]
MODELS = {"digits": ("digits", None), "cifar-small": ("cifar10", (16, 32, 64)),
          "cifar10": ("cifar10", (64, 128, 256))}


def write_checkpoint(folder: str, dataset: str, widths) -> str:
    """An initialised, calibrated checkpoint of ``dataset``'s preset (``widths`` replaced)."""
    from mlf_deploy.data import dataset_spec
    from mlf_deploy.data.layouts import make_cifar10_batches
    from mlf_deploy.models import preset_args

    options = {}
    if dataset == "cifar10":
        make_cifar10_batches(folder, per_batch=64)
        options["data_dir"] = folder
    spec = dataset_spec(dataset, 0, **options)
    args = preset_args(dataset, **({"widths": list(widths)} if widths else {}))
    return calibrated_checkpoint(folder, spec, args)


def per_point_sweep() -> None:
    """Patch the sweep back to a quantized graph per point, ``quantize(with_timesteps(float
    graph, T), bits)`` (equal graphs: tests/test_sweep_memory.py), for the "before" run of
    ``benchmarks/sweep_memory.py``."""
    from mlf_deploy.hardware import sweep
    real_quantize, real_with_timesteps, seen = sweep.quantize, sweep.with_timesteps, {}

    def quantize(graph, bits, **kw):
        seen["float"], seen["kw"] = graph, kw
        return real_quantize(graph, bits, **kw)

    def with_timesteps(graph, steps):
        if graph.numeric == "float":
            return real_with_timesteps(graph, steps)
        bits = graph.metadata["quantization"]["weight_bits"]
        return real_quantize(real_with_timesteps(seen["float"], steps), bits, **seen["kw"])[0]

    sweep.quantize, sweep.with_timesteps = quantize, with_timesteps


def child(mode: str, argv: list[str]) -> None:
    """One command in this process; at exit, the largest estimate its guard made (stderr)."""
    import atexit

    from mlf_deploy import run_memory
    from mlf_deploy.commands.app import main as cli

    if mode == "per-point":
        per_point_sweep()
    largest = lambda: max(run_memory.ESTIMATES, key=lambda e: e["peak"], default=None)  # noqa: E731
    atexit.register(lambda: sys.stderr.write(f"ESTIMATE {json.dumps(largest())}\n"))
    cli(argv, prog_name="mlf-deploy")


def measure(argv: list[str], mode: str = "now") -> tuple[float, int, str]:
    """``(wall seconds, peak RSS bytes, stderr)`` of one command in a fresh process."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, os.path.abspath(__file__),
                           "--child", mode, *argv], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return time.perf_counter() - start, rss * 1024, proc.stderr


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2], sys.argv[3:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", help="case names (default: all); see --list")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        print("\n".join(name for name, _, _ in CASES))
        return
    cases = [c for c in CASES if not args.cases or c[0] in args.cases]
    print(f"{'case':<34} {'estimate':>9} {'measured':>9} {'ratio':>6}  (GiB; resident at the "
          f"guard + run buffers)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = {}
        for name, model, argv in cases:
            if model not in ckpts:
                os.makedirs(os.path.join(tmp, model))
                ckpts[model] = write_checkpoint(os.path.join(tmp, model), *MODELS[model])
            wall, rss, err = measure([argv[0], ckpts[model], *argv[1:]])
            est = json.loads(re.search(r"^ESTIMATE (.*)$", err, re.M).group(1))
            print(f"{name:<34} {est['peak'] / 2 ** 30:>9.3f} {rss / 2 ** 30:>9.3f} "
                  f"{est['peak'] / rss:>6.2f}  (resident {est['resident'] / 2 ** 30:.3f} + run "
                  f"{est['run'] / 2 ** 30:.3f}; {wall:.0f} s)", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
