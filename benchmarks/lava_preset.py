"""``lava_vs_reference.py --preset NAME``: the paper's network at its real input size on Lava.

The model is the preset's DS-ResNet with random initial weights whose batch-norm statistics come
from a few training-mode passes and whose BN scales/shifts are raised (uniform 1.0-2.5 / 0.0-0.8)
so that every layer and level fires, as an untrained network would not; no trained weights or data
are needed. Inputs: images uniform in [0, 2) (cifar10, 3x32x32) or event counts 0..3 per pixel and
step (dvs_gesture, 2x32x32, the frame size of the DVS-Gesture loader: 128 px / 4, T=40;
cifar10_dvs, 2x42x42 as its loader makes them from 128 px, T=10).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INPUTS = {"cifar10": ("static", (3, 32, 32)), "dvs_gesture": ("events", (2, 32, 32)),
          "cifar10_dvs": ("events", (2, 42, 42))}


def preset_graph(name: str, seed: int = 0):
    import torch

    from mlf_deploy.lowering import lower
    from mlf_deploy.models import TdBatchNorm, preset
    from mlf_deploy.quantization import quantize

    kind, shape = INPUTS[name]
    torch.manual_seed(seed)
    model = preset(name).train()
    with torch.no_grad():
        for _ in range(2):
            model(sample(name, model.timesteps, 4, seed))
        for m in model.modules():
            if isinstance(m, TdBatchNorm) and m.weight is not None:  # the input BN has no affine
                m.weight.uniform_(1.0, 2.5)
                m.bias.uniform_(0.0, 0.8)
    from mlf_deploy.data.ranges import tensor_range
    from mlf_deploy.quantization import input_max_of_range

    float_graph = lower(model.eval(), shape, kind)
    x = sample(name, model.timesteps, 16, seed + 1)  # stands in for the training split
    return quantize(float_graph, 8, input_max=input_max_of_range(float_graph, tensor_range(x)))[0]


def sample(name: str, timesteps: int, batch: int, seed: int = 1):
    import torch

    kind, shape = INPUTS[name]
    g = torch.Generator().manual_seed(seed)
    if kind == "static":
        return torch.rand(batch, *shape, generator=g) * 2
    return torch.randint(0, 4, (timesteps, batch, *shape), generator=g).float()


class PeakMemory:
    """Peak of the summed PSS (shared pages split among their users) over the Lava worker and its
    processes (found as children of this process that run ``_worker``), sampled every 0.25 s."""

    def __init__(self):
        self.peak_kb, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        from mlf_deploy.runtimes.lava_guard import group_pids, lava_workers

        while not self._stop.wait(0.25):
            total = 0
            for worker in lava_workers(os.getpid()):
                for pid in group_pids(worker):
                    try:
                        with open(f"/proc/{pid}/smaps_rollup") as f:
                            total += next(int(x.split()[1]) for x in f if x.startswith("Pss:"))
                    except (OSError, StopIteration):
                        continue
            self.peak_kb = max(self.peak_kb, total)


def main(name: str, samples: int, with_profile: bool, spikes: str = "binary") -> None:
    import torch

    from benchmarks.lava_profile import format_profile
    from mlf_deploy.graded_lowering import with_spikes
    from mlf_deploy.ir.reference import run_reference
    from mlf_deploy.ir.semantics import prepare_input
    from mlf_deploy.runtimes.lava import SINGLE_THREADED, run_lava
    from mlf_deploy.runtimes.lava_guard import process_count

    torch.set_num_threads(1)
    graph = with_spikes(preset_graph(name), spikes)
    x = sample(name, graph.input.timesteps, samples)
    load_at_start = os.getloadavg()[0]
    t = time.perf_counter()
    ref = run_reference(graph, x)
    ref_s = (time.perf_counter() - t) / samples
    with PeakMemory() as mem:
        t = time.perf_counter()
        lava = run_lava(graph, x, samples_per_run=samples)
        lava_s = (time.perf_counter() - t) / samples
    spike_total = sum(int(v.sum()) for v in ref.spikes.values())
    bad_s = sum(int((lava.spikes[k] != ref.spikes[k]).sum()) for k in ref.spikes)
    bad_v = sum(int((lava.states[k] != ref.states[k]).sum()) for k in ref.states)
    values = sum(v.size for v in ref.states.values())
    print(f"{name} ({spikes} spikes): {process_count(graph)} Lava processes, {samples} sample(s) "
          f"per run, load average at start {load_at_start:.1f}")
    print(f"  lava-fixed {lava_s:.1f} s per sample (worker start, compile, run, read back), "
          f"ir-int {ref_s:.2f} s per sample; peak memory of the Lava run "
          f"{mem.peak_kb / 2**20:.2f} GB (PSS sum)")
    print(f"  exact against ir-int: {bad_s} of {spike_total} spikes and {bad_v} of {values} "
          f"membrane values differ")
    if with_profile:
        with tempfile.TemporaryDirectory() as tmp:
            job = os.path.join(tmp, "job.pkl")
            with open(job, "wb") as f:
                pickle.dump((graph, prepare_input(graph, x)), f)
            script = str(ROOT / "benchmarks" / "lava_profile.py")
            res = subprocess.run([sys.executable, script, job], capture_output=True, text=True,
                                 check=True,
                                 env=dict(os.environ, PYTHONPATH=str(ROOT), **SINGLE_THREADED))
        print(format_profile(json.loads(res.stdout.split("JSON", 1)[1])))
    print(f"load average at end: {os.getloadavg()}")
    sys.exit(0 if bad_s == bad_v == 0 else 1)
