"""Training step time against torch's thread count, on this machine as loaded as it is now.

Alternates thread counts over the same digits training steps (batch 32, the digits preset) for a
few rounds, so that load from other processes hits every setting alike, and prints each count's
median step time as a ratio to one thread, with the 1-minute load average before and after, and
the count ``mlf_deploy.training_env.choose_threads`` picks (fixed: docs/determinism.md).

    .venv/bin/python benchmarks/train_threads.py --threads 1,2 --steps 10 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from mlf_deploy.data import dataset_spec, load_split, model_input  # noqa: E402
from mlf_deploy.models import DSResNet, preset_args  # noqa: E402
from mlf_deploy.training_env import choose_threads  # noqa: E402


def step_seconds(model, opt, x, y, steps: int) -> float:
    t0 = time.perf_counter()
    for i in range(steps):
        idx = torch.arange(i * 32, (i + 1) * 32) % len(x)
        loss = torch.nn.functional.cross_entropy(model(model_input(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    load_before = os.getloadavg()[0]
    picked, _ = choose_threads()
    x, y = load_split(dataset_spec("digits"), "train")
    torch.manual_seed(0)
    model = DSResNet(**preset_args("digits", in_channels=1, num_classes=10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    times = {n: [] for n in counts}
    for _ in range(args.rounds):
        for n in counts:
            torch.set_num_threads(n)
            times[n].append(step_seconds(model, opt, x, y, args.steps))
    base = statistics.median(times[counts[0]])
    print(f"cores {len(os.sched_getaffinity(0))}, load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; train's default is {picked}")
    for n in counts:
        med = statistics.median(times[n])
        print(f"{n} thread(s): {med * 1e3:.0f} ms per step (median of {args.rounds}), "
              f"{med / base:.2f}x the time of {counts[0]}")


if __name__ == "__main__":
    main()
