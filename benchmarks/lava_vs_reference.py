"""Lava (fixed_pt CPU simulation) against the integer reference.

Default: DS-ResNet-14 and -20 (preset 'digits': widths (16, 32, 64), 1x8x8 input, K=3, T=4) with a
calibrated random model: per-sample time of the Lava run against the integer reference on the same
int graph, Lava compile/start time, process count, and stock Conv vs our FastConv per Lava step.
Lava runs in a torch-free worker (this script re-run with --worker), as runtimes/lava.py does.

``--preset cifar10`` / ``dvs_gesture``: the paper's network at its real input size (see
lava_preset.py): one user-visible ``run_lava`` per sample against ir-int (spikes and membranes),
its wall time, process count, peak memory and the per-process-type profile.

    .venv/bin/python benchmarks/lava_vs_reference.py [--samples 2] [--ref-batch 64]
    .venv/bin/python benchmarks/lava_vs_reference.py --preset cifar10 [--samples 1]
    [--spikes graded]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def calibrated_model(depth, seed=0, batch=8):
    """Random digits-sized DS-ResNet whose BN statistics come from a few training-mode passes,
    with BN scales/shifts raised so that every level fires (an untrained net is nearly silent)."""
    import torch

    from mlf_deploy.models import TdBatchNorm, ds_resnet

    torch.manual_seed(seed)
    model = ds_resnet(depth, (16, 32, 64), 1, 10, 3, 4, "ds").train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(batch, 1, 8, 8) * 2)
        for m in model.modules():
            if isinstance(m, TdBatchNorm):
                m.weight.uniform_(1.0, 2.5)
                m.bias.uniform_(0.0, 0.8)
    return model.eval()


def worker(job: str) -> None:
    """Torch-free: build, compile and run the Lava network with stock and fast Conv; print JSON."""
    import warnings

    from mlf_deploy.exporters.lava.export import build_processes
    from mlf_deploy.exporters.lava.lava_import import import_lava
    from mlf_deploy.runtimes.lava_sim import run_config

    warnings.filterwarnings("ignore", message=".*sparsity structure.*")
    import_lava()  # before any other lava import (Python 3.11 dataclass shim)
    from lava.magma.core.run_conditions import RunSteps

    with open(job, "rb") as f:
        graph, frames = pickle.load(f)
    out = {"conv_compute": conv_compute(graph)}
    for name, fast in (("fast", True), ("stock", False))[:1 + ("--stock" in sys.argv)]:
        t0 = time.perf_counter()
        net = build_processes(graph, frames)
        t1 = time.perf_counter()
        first, cfg = net.procs[0], run_config(graph, net, fast_conv=fast, record=False)
        first.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
        t2 = time.perf_counter()
        first.run(condition=RunSteps(num_steps=net.steps - 1), run_cfg=cfg)
        t3 = time.perf_counter()
        first.stop()
        t4 = time.perf_counter()
        out[name] = dict(build_s=t1 - t0, start_s=t2 - t1, step_s=(t3 - t2) / (net.steps - 1),
                         stop_s=t4 - t3, steps=net.steps, procs=len(net.procs),
                         total_s=t4 - t0)
    print("JSON" + json.dumps(out))


def conv_compute(graph, repeats=5):
    """Seconds per Lava step spent in the Conv models' arithmetic, summed over the network's Conv
    processes: Lava's stock ``conv.utils.conv`` vs our ``correlate`` (same inputs, same outputs).
    Isolates the models from the per-process messaging overhead, which dominates a busy machine."""
    import numpy as np
    from lava.proc.conv import utils

    from mlf_deploy.exporters.lava.export import correlate, host_fed, lava_shape, lava_weight

    rng, stock, fast = np.random.default_rng(0), 0.0, 0.0
    for p in graph.projections:
        if p.kind != "conv2d" or host_fed(graph, p):
            continue
        w = lava_weight(graph, p).astype(np.int32)
        x = (rng.random(lava_shape(graph.nodes[p.source].shape)) < 0.2).astype(np.int32)
        k, st, pad = np.array(w.shape[1:3]), np.array(p.stride[::-1]), np.array(p.padding[::-1])
        t = time.perf_counter()
        for _ in range(repeats):
            a = utils.conv(x, w, k, st, pad, np.array([1, 1]), 1)
        t1 = time.perf_counter()
        for _ in range(repeats):
            b = correlate(x.astype(np.int64), w[:, ::-1, ::-1, :].astype(np.int64), st, pad)
        t2 = time.perf_counter()
        assert np.array_equal(a, b), p.name
        stock, fast = stock + (t1 - t) / repeats, fast + (t2 - t1) / repeats
    return dict(stock_s=stock, fast_s=fast)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2, help="samples per Lava run")
    ap.add_argument("--ref-batch", type=int, default=64, help="batch of the reference run")
    ap.add_argument("--depths", default="14,20")
    ap.add_argument("--stock", action="store_true",
                    help="also time the whole network with Lava's stock Conv model")
    ap.add_argument("--preset", choices=["cifar10", "dvs_gesture", "cifar10_dvs"],
                    help="the paper's network at its real size instead of the digits nets")
    ap.add_argument("--no-profile", action="store_true", help="--preset: skip the profile run")
    ap.add_argument("--spikes", choices=["binary", "graded"], default="binary",
                    help="--preset: the lowering (graded: one Loihi 2 neuron per MLF position)")
    args = ap.parse_args()
    if args.preset:
        from benchmarks.lava_preset import main as preset_main
        return preset_main(args.preset, args.samples, not args.no_profile, args.spikes)

    import torch

    from mlf_deploy.ir.reference import run_reference
    from mlf_deploy.ir.semantics import prepare_input
    from mlf_deploy.lowering import lower
    from mlf_deploy.quantization import quantize
    from mlf_deploy.runtimes.lava import SINGLE_THREADED, run_lava

    torch.set_num_threads(1)
    print(f"{'net':10} {'procs':>5} {'start s':>8} {'lava ms/step':>12} "
          f"{'conv ms/step stock/fast':>15} {'conv x':>6} {'lava s/sample':>13} "
          f"{'ref ms/sample':>13} {'ref x':>7} exact")
    for depth in (int(d) for d in args.depths.split(",")):
        model = calibrated_model(depth)
        graph, _ = quantize(lower(model, (1, 8, 8), "static"), 8, input_max=2.0)
        x = torch.rand(args.ref_batch, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2
        run_reference(graph, x[:2])  # warm-up
        t = time.perf_counter()
        ref = run_reference(graph, x, record_states=False)
        ref_s = (time.perf_counter() - t) / args.ref_batch

        xs = x[:args.samples]
        t = time.perf_counter()  # the whole user-visible run: worker start, compile, run, read
        lava = run_lava(graph, xs, samples_per_run=args.samples, record_states=False)
        lava_s = (time.perf_counter() - t) / args.samples
        exact = all((lava.spikes[k] == ref.spikes[k][:, :args.samples]).all() for k in ref.spikes)

        with tempfile.TemporaryDirectory() as tmp:
            job = os.path.join(tmp, "job.pkl")
            with open(job, "wb") as f:
                pickle.dump((graph, prepare_input(graph, xs)), f)
            argv = [sys.executable, __file__, "--worker", job] + (["--stock"] if args.stock else [])
            res = subprocess.run(argv, capture_output=True, text=True, check=True,
                                 env=dict(os.environ, PYTHONPATH=str(ROOT), **SINGLE_THREADED))
        times = json.loads(res.stdout.split("JSON", 1)[1])
        fast, conv = times["fast"], times["conv_compute"]
        print(f"ds{depth:<8} {fast['procs']:5d} {fast['start_s']:8.2f} "
              f"{fast['step_s'] * 1e3:12.1f} "
              f"{conv['stock_s'] * 1e3:9.1f}/{conv['fast_s'] * 1e3:5.1f} "
              f"{conv['stock_s'] / conv['fast_s']:6.1f} "
              f"{lava_s:13.2f} {ref_s * 1e3:13.2f} {lava_s / ref_s:7.0f} {exact}")
        if "stock" in times:
            print(f"  whole network per Lava step: stock Conv "
                  f"{times['stock']['step_s'] * 1e3:.1f} ms, "
                  f"fast Conv {fast['step_s'] * 1e3:.1f} ms: "
                  f"{times['stock']['step_s'] / fast['step_s']:.2f}x")
        print(f"  detail: {json.dumps(times)}")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        main()
