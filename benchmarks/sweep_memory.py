"""evaluate's default sweep (widths 8,6,4 x T=1..4): peak memory when every point has its own
quantized graph (as before: 12 graphs) against one graph per weight width whose T is re-set
(now: 3 graphs sharing their weights across T), each in a fresh process under /usr/bin/time -v.

The "per point" run patches the sweep back to the old construction, ``quantize(with_timesteps(
float graph, T), bits)`` for every point (``run_memory.per_point_sweep``; tests/test_sweep_memory.py
shows both give equal graphs), so the two runs differ in that alone. Printed: peak RSS of each
and the ratio.

Usage: ``python benchmarks/sweep_memory.py [--model cifar10|cifar-small|digits] [--samples 1]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_memory import MODELS, measure, write_checkpoint  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cifar10", choices=sorted(MODELS))
    ap.add_argument("--samples", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = write_checkpoint(tmp, *MODELS[args.model])
        argv = ["evaluate", ckpt, "--samples", str(args.samples)]  # the default sweep
        rows = {}
        for label, mode in (("per point (before)", "per-point"), ("per width (now)", "now")):
            wall, rss, _ = measure(argv, mode)
            rows[label] = rss
            print(f"{args.model} evaluate --samples {args.samples}, graphs {label}: peak RSS "
                  f"{rss / 2 ** 30:.3f} GiB ({wall:.0f} s)", flush=True)
        before, now = rows.values()
        print(f"now / before: {now / before:.2f}x peak RSS ({(before - now) / 2 ** 30:.3f} GiB "
              f"less)")
    print(f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
