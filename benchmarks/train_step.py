"""Time and peak memory of one training step of the ``cifar10`` preset (DS-ResNet-20, 64/128/256).

One step is forward, cross-entropy, backward and an SGD update (momentum 0.9, as in the paper's
training), with direct encoding: a ``(B, 3, 32, 32)`` batch repeated over T=4 timesteps. Variants:

* ``ours``: the network as built by ``mlf_deploy.models.preset('cifar10')`` with the neuron kernel
  ``train`` picks (``auto``: the fused Triton kernels on CUDA, the torch path on the CPU);
* ``ours_torch``: the same with the torch path forced (on the CPU the same code as ``ours``);
* ``paper_loop``: the same network with every MLF computed as the paper's code does
  (benchmarks/baselines.py: time folded into the batch, per-timestep loop, one autograd function
  per level);
* ``relu``: the same network with ReLU in place of MLF (the convolution and tdBN floor).

Each variant runs in a fresh subprocess so that allocator state and peak memory are its own.
Time: median wall time of ``--steps`` steps after ``--warmup`` steps, and the median process CPU
time (all threads), which is the steadier of the two when other jobs share the cores.
Memory, two measures:

* ``saved MiB``: what autograd keeps for backward in one forward pass (distinct storages packed by
  the saved-tensor hooks, parameters excluded). Exact and deterministic, and it is where the
  neuron implementations differ.
* ``peak MiB``: peak resident set size during the first training step minus the resident set
  size just before it, in the fresh process that has only built the model, optimizer and batch
  (the momentum buffers the first SGD step creates are included, the same for every variant).
  Later steps would read near zero: malloc keeps the first step's freed memory. It also sees
  temporaries, but it is only as good as RSS: with proactive page reclaim (DAMON) or memory
  pressure on the host it can read low. The peak is VmHWM after a reset through
  /proc/self/clear_refs (Linux), else ``ru_maxrss``.

On a GPU (``--device cuda``) time is wall time (``loss.item()`` synchronises) and ``peak MiB`` is
``torch.cuda.max_memory_allocated`` during the first step; ``--compile`` wraps the model in
``torch.compile`` (its compile time falls in the warm-up and is printed apart), and ``--amp bf16``
runs the step under bf16 autocast.

Usage: ``python benchmarks/train_step.py [--steps 5] [--batch 8] [--warmup 2] [--device cuda]
[--compile] [--amp bf16]``.
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
VARIANTS = ("ours", "ours_torch", "paper_loop", "relu")


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


def _saved_for_backward(model, x, y, loss_fn, torch):
    """Bytes autograd keeps for backward in one forward pass: distinct storages packed by the
    saved-tensor hooks, parameters excluded. Exact and independent of the allocator and of the
    kernel's page reclaim, unlike RSS."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[st.data_ptr()] = st.nbytes()
        return t

    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model(x), y)
    loss.backward()  # frees the graph; the gradients are discarded by the next step
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def worker(variant, steps, warmup, batch, timesteps, threads, device="cpu", compile_=False,
           amp="none"):
    sys.path.insert(0, ROOT)
    import contextlib

    import torch
    from torch import nn

    if threads:
        torch.set_num_threads(threads)

    from benchmarks.baselines import PaperLoopMLF, ReLUNeuron, swap_neurons
    from mlf_deploy.models import preset
    from mlf_deploy.neuron_kernel import resolve_neuron_kernel, set_neuron_kernel

    torch.manual_seed(0)
    model = preset("cifar10", timesteps=timesteps)
    kernel = resolve_neuron_kernel("auto" if variant == "ours" else "torch", device)
    set_neuron_kernel(model, kernel)
    if variant == "paper_loop":
        swap_neurons(model, PaperLoopMLF)
    elif variant == "relu":
        swap_neurons(model, ReLUNeuron)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, 32, 32).to(device)
    y = torch.randint(0, 10, (batch,)).to(device)
    loss_fn = nn.CrossEntropyLoss()
    run = torch.compile(model) if compile_ else model
    cuda = device.startswith("cuda")

    def autocast():
        if amp == "bf16":
            return torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(run(x), y)
        loss.backward()
        opt.step()
        return loss.item()  # forces the step to finish before the clock stops

    # Peak memory of the first step in this fresh process: later steps reuse memory that malloc
    # kept from the first one, so their RSS barely moves and would read near zero.
    gc.collect()
    t_first = time.perf_counter()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 1024
        step()
        peak_mib, peak_method = (torch.cuda.max_memory_allocated() / 1024 - base) / 1024, "cuda"
    else:
        base = _status_kb("VmRSS")
        exact_peak = _reset_peak()
        step()
        if exact_peak:
            peak_mib, peak_method = (_status_kb("VmHWM") - base) / 1024, "VmHWM"
        else:
            peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
            peak_method = "ru_maxrss"
    first_step_s = time.perf_counter() - t_first
    for _ in range(warmup - 1):
        step()
    saved_mib = _saved_for_backward(model, x, y, loss_fn, torch) / 2**20
    times, cpu_times = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    print(json.dumps({"variant": variant, "times": times, "cpu_times": cpu_times,
                      "peak_mib": peak_mib, "saved_mib": saved_mib, "peak_method": peak_method,
                      "first_step_s": first_step_s, "kernel": kernel,
                      "threads": torch.get_num_threads()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--amp", default="none", choices=("none", "bf16"), help="autocast dtype")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, max(1, args.warmup), args.batch, args.timesteps,
                      args.threads, args.device, args.compile, args.amp)

    results = {}
    for variant in args.variants.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant,
               "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch", str(args.batch), "--timesteps", str(args.timesteps),
               "--threads", str(args.threads), "--device", args.device, "--amp", args.amp]
        cmd += ["--compile"] if args.compile else []
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode:
            sys.exit(f"{variant} failed:\n{res.stderr}")
        results[variant] = json.loads(res.stdout.strip().splitlines()[-1])

    any_r = next(iter(results.values()))
    print(f"cifar10 preset (DS-ResNet-20 64/128/256), T={args.timesteps}, batch {args.batch}, "
          f"32x32, {args.device}{' compiled' if args.compile else ''}"
          f"{' bf16 autocast' if args.amp == 'bf16' else ''}, {any_r['threads']} CPU threads, "
          "one process per variant; median of "
          f"{args.steps} steps after {args.warmup} warm-up")
    print("saved MiB = tensors autograd keeps for backward (params excluded); peak MiB = max RSS "
          f"during the first step minus RSS before it ({any_r['peak_method']}); "
          "cpu s = process CPU time per step (all threads)")
    print(f"{'variant':<12}{'wall s/step':>12}{'min':>8}{'max':>8}{'cpu s/step':>12}"
          f"{'saved MiB':>11}{'peak MiB':>10}{'1st step s':>11}")
    for v, r in results.items():
        print(f"{v:<12}{statistics.median(r['times']):>12.4f}{min(r['times']):>8.4f}"
              f"{max(r['times']):>8.4f}{statistics.median(r['cpu_times']):>12.4f}"
              f"{r['saved_mib']:>11.1f}{r['peak_mib']:>10.1f}{r['first_step_s']:>11.2f}")

    def ratio(a, b, key):
        return statistics.median(results[a][key]) / statistics.median(results[b][key])

    relu_target = "<= 1.3" if args.device.startswith("cuda") else "<= 1.23, the CPU before"
    if "ours" in results:
        print(f"ours ran the {results['ours']['kernel']} neuron kernel")
    for other, target in (("paper_loop", "<= 0.333"), ("relu", relu_target),
                          ("ours_torch", "< 1")):
        if {"ours", other} <= results.keys():
            print(f"time   ours/{other:<10} = {ratio('ours', other, 'times'):.3f} wall, "
                  f"{ratio('ours', other, 'cpu_times'):.3f} cpu   (target {target})")
    if {"ours", "paper_loop"} <= results.keys():
        ours, base = results["ours"], results["paper_loop"]
        print(f"memory ours/paper_loop = {ours['saved_mib'] / base['saved_mib']:.3f} saved, "
              f"{ours['peak_mib'] / base['peak_mib']:.3f} peak   (target <= 0.4 saved)")


if __name__ == "__main__":
    main()
