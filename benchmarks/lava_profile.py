"""Where a Lava run's time goes, process type by process type (a torch-free worker).

Each model class of the run config is subclassed with a timer around ``run_spk``: the CPU time
(``time.process_time``, so time spent waiting for other processes or for a core is excluded) of
the model's own step, and the CPU time of the whole OS process per Lava step, which adds Lava's
phase handshakes and channel traffic. Step 1 is left out (it waits for every process to start).
On a shared 2-core machine CPU time, unlike wall time, says what each type costs.

    python benchmarks/lava_profile.py JOB.pkl      # JOB.pkl: pickled (graph, frames); prints JSON
"""

from __future__ import annotations

import gc
import glob
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _Timed:
    out_dir = ""  # set in the parent before Lava forks
    last_step = 0

    def run_spk(self) -> None:
        if self.time_step == 2:
            self._model_cpu, self._cpu0 = 0.0, time.process_time()
        start = time.process_time()
        super().run_spk()
        if self.time_step >= 2:
            self._model_cpu += time.process_time() - start
        if self.time_step == self.last_step:
            name = type(self).__mro__[2].__name__
            with open(os.path.join(self.out_dir, f"{os.getpid()}.json"), "w") as f:
                json.dump(dict(type=name, model=self._model_cpu,
                               process=time.process_time() - self._cpu0), f)


def profile(graph, frames) -> dict:
    """Build, compile and run one network with timed models; times in seconds."""
    from mlf_deploy.exporters.lava.export import build_processes
    from mlf_deploy.exporters.lava.lava_import import import_lava
    from mlf_deploy.runtimes.lava_sim import release, run_config

    import_lava()
    from lava.magma.core.run_conditions import RunSteps

    t0 = time.perf_counter()
    net = build_processes(graph, frames)
    t1 = time.perf_counter()
    cfg, timed = run_config(graph, net, record=False), {}
    for key, model in cfg.exception_proc_model_map.items():
        if model not in timed:
            timed[model] = type(f"Timed{model.__name__}", (_Timed, model), {})
        cfg.exception_proc_model_map[key] = timed[model]
    with tempfile.TemporaryDirectory() as out_dir:
        _Timed.out_dir, _Timed.last_step = out_dir, net.steps
        first = net.procs[0]
        gc.freeze()  # as mlf_deploy.runtimes.lava.simulate does
        first.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
        t2 = time.perf_counter()
        first.run(condition=RunSteps(num_steps=net.steps - 1), run_cfg=cfg)
        t3 = time.perf_counter()
        release(first)  # as mlf_deploy.runtimes.lava.simulate does
        t4 = time.perf_counter()
        types: dict = {}
        for path in glob.glob(os.path.join(out_dir, "*.json")):
            with open(path) as f:
                rec = json.load(f)
            row = types.setdefault(rec["type"], dict(n=0, model_ms=0.0, process_ms=0.0))
            row["n"] += 1
            row["model_ms"] += rec["model"] * 1e3 / (net.steps - 1)
            row["process_ms"] += rec["process"] * 1e3 / (net.steps - 1)
    return dict(procs=len(net.procs), steps=net.steps, build_s=t1 - t0, start_s=t2 - t1,
                step_s=(t3 - t2) / (net.steps - 1), stop_s=t4 - t3, types=types)


def format_profile(prof: dict) -> str:
    rows = [f"  {prof['procs']} Lava processes, {prof['steps']} Lava steps: build "
            f"{prof['build_s']:.1f} s, compile+start+1st step {prof['start_s']:.1f} s, "
            f"{prof['step_s'] * 1e3:.0f} ms per step (wall), end {prof['stop_s']:.1f} s",
            f"  {'process type':<24} {'count':>5} {'model CPU ms/step':>18} "
            f"{'process CPU ms/step':>20}"]
    for name, r in sorted(prof["types"].items(), key=lambda kv: -kv[1]["process_ms"]):
        rows.append(f"  {name:<24} {r['n']:>5} {r['model_ms']:>18.1f} {r['process_ms']:>20.1f}")
    total = sum(r["process_ms"] for r in prof["types"].values())
    rows.append(f"  {'all':<24} {sum(r['n'] for r in prof['types'].values()):>5} "
                f"{sum(r['model_ms'] for r in prof['types'].values()):>18.1f} {total:>20.1f}")
    return "\n".join(rows)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    with open(sys.argv[1], "rb") as f:
        print("JSON" + json.dumps(profile(*pickle.load(f))))
