"""Time and peak memory of one training step of the ``cifar10`` preset (DS-ResNet-20, 64/128/256).

One step is forward, cross-entropy, backward and an SGD update (momentum 0.9, as in the paper's
training), with direct encoding: a ``(B, 3, 32, 32)`` batch repeated over T=4 timesteps. Variants:

* ``ours``: the network as built by ``mlf_deploy.models.preset('cifar10')`` (fused MLF);
* ``paper_loop``: the same network with every MLF computed as the paper's code does
  (benchmarks/baselines.py: time folded into the batch, per-timestep loop, one autograd function
  per level);
* ``relu``: the same network with ReLU in place of MLF (the convolution and tdBN floor).

Each variant runs in a fresh subprocess so that allocator state and peak memory are its own.
Time: median wall time of ``--steps`` steps after ``--warmup`` steps. Memory: the peak resident set
size during the timed steps minus the resident set size just before them (after the warm-up, so
parameters, gradients, momentum buffers and library workspaces are already counted in the base):
the memory one step needs on top of the model's steady state, i.e. mostly what autograd saves for
backward. The peak is read from VmHWM after resetting it through /proc/self/clear_refs (Linux);
where that is not allowed it falls back to ``ru_maxrss`` relative to the RSS before the first step,
which then also counts the one-off buffers of the first step.

Usage: ``python benchmarks/train_step.py [--steps 5] [--batch 8] [--warmup 2]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("ours", "paper_loop", "relu")


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def worker(variant, steps, warmup, batch, timesteps, threads):
    sys.path.insert(0, ROOT)
    import torch
    from torch import nn

    if threads:
        torch.set_num_threads(threads)

    from benchmarks.baselines import PaperLoopMLF, ReLUNeuron, swap_neurons
    from mlf_deploy.models import preset

    torch.manual_seed(0)
    model = preset("cifar10", timesteps=timesteps)
    if variant == "paper_loop":
        swap_neurons(model, PaperLoopMLF)
    elif variant == "relu":
        swap_neurons(model, ReLUNeuron)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()  # forces the step to finish before the clock stops

    base_first = _status_kb("VmRSS")
    for _ in range(warmup):
        step()
    gc.collect()
    base = _status_kb("VmRSS")
    exact_peak = _reset_peak()
    times, cpu_times = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    if exact_peak:
        peak_mib = (_status_kb("VmHWM") - base) / 1024
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_first) / 1024
    print(json.dumps({"variant": variant, "times": times, "cpu_times": cpu_times,
                      "peak_mib": peak_mib,
                      "peak_method": "VmHWM" if exact_peak else "ru_maxrss",
                      "threads": torch.get_num_threads()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, max(1, args.warmup), args.batch, args.timesteps,
                      args.threads)

    results = {}
    for variant in args.variants.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant,
               "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch", str(args.batch), "--timesteps", str(args.timesteps),
               "--threads", str(args.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode:
            sys.exit(f"{variant} failed:\n{res.stderr}")
        results[variant] = json.loads(res.stdout.strip().splitlines()[-1])

    any_r = next(iter(results.values()))
    print(f"cifar10 preset (DS-ResNet-20 64/128/256), T={args.timesteps}, batch {args.batch}, "
          f"32x32, CPU, {any_r['threads']} threads, one process per variant; median of "
          f"{args.steps} steps after {args.warmup} warm-up")
    print("peak MiB = max RSS during the timed steps minus RSS before them "
          f"({any_r['peak_method']}); cpu s = process CPU time per step (all threads)")
    print(f"{'variant':<12}{'wall s/step':>12}{'min':>8}{'max':>8}{'cpu s/step':>12}"
          f"{'peak MiB':>10}")
    for v, r in results.items():
        print(f"{v:<12}{statistics.median(r['times']):>12.3f}{min(r['times']):>8.3f}"
              f"{max(r['times']):>8.3f}{statistics.median(r['cpu_times']):>12.3f}"
              f"{r['peak_mib']:>10.1f}")

    def ratio(a, b, key):
        return statistics.median(results[a][key]) / statistics.median(results[b][key])

    for other, target in (("paper_loop", "<= 0.333"), ("relu", "<= 1.25")):
        if {"ours", other} <= results.keys():
            print(f"time   ours/{other:<10} = {ratio('ours', other, 'times'):.3f} wall, "
                  f"{ratio('ours', other, 'cpu_times'):.3f} cpu   (target {target})")
    if {"ours", "paper_loop"} <= results.keys():
        mem = results["ours"]["peak_mib"] / results["paper_loop"]["peak_mib"]
        print(f"memory ours/paper_loop = {mem:.3f}   (target <= 0.6)")


if __name__ == "__main__":
    main()
