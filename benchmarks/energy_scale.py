"""``energy`` and ``evaluate`` at real size: the ``cifar10`` preset (DS-ResNet-20, widths
64/128/256, K=3, T=4, 3x32x32) at two sample counts, each command in a fresh process under
``/usr/bin/time -v``, to show that their memory does not grow with ``--samples`` (they stream the
samples in verify's chunks and keep totals).

Weights and data as in ``benchmarks/verify_scale.py`` (initialised and calibrated so every level
fires; CIFAR-10 python batches written into a temporary folder). Printed per command and count:
wall seconds, peak RSS, and the peak RSS as a ratio of the smallest count's (1.00: flat).

Usage: ``python benchmarks/energy_scale.py [--samples 32 256] [--commands energy evaluate]
[--evaluate-args "--weight-bits 8,6,4"]``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify_scale import ROOT, write_inputs  # noqa: E402


def measure(argv: list[str]) -> tuple[float, int, str]:
    """``(wall seconds, peak RSS bytes, output)`` of one command under ``/usr/bin/time -v``."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, os.path.join(ROOT, "cli.py"),
                           *argv], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return wall, rss * 1024, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--commands", nargs="+", default=["energy", "evaluate"])
    ap.add_argument("--evaluate-args", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ckpt = write_inputs(folder, max(args.samples), (64, 128, 256))
        for command in args.commands:
            extra = args.evaluate_args.split() if command == "evaluate" else []
            base = None
            for n in sorted(args.samples):
                wall, rss, out = measure([command, ckpt, "--samples", str(n), *extra])
                base = base or rss
                acc = re.search(r"accuracy \([^)]*\): ([\d.]+)", out)
                print(f"{command} --samples {n} {' '.join(extra)}: {wall:.0f} s, peak RSS "
                      f"{rss / 2 ** 30:.2f} GiB ({rss / base:.2f}x the {min(args.samples)}-sample "
                      f"run)" + (f", accuracy {acc.group(1)}" if acc else ""), flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
