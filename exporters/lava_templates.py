"""Text of the files `export_lava` writes beside the graph: the README and the standalone loader
(whose builder functions are filled in from exporters/lava.py, so there is one builder)."""

README = """# MLF network for Lava

- `graph.mlfg`: the int deployment graph (a header line, a SHA-256 line, then a zip of `graph.json`
  and one `.npy` per array).
- `run_lava_network.py`: rebuilds the Lava processes from it and runs them (numpy + lava-nc 0.10 only):
  `python run_lava_network.py --input x.npy --out result.npz`; it prints its progress to stderr
  (building the processes takes seconds, compiling and running them minutes) and then the
  predicted classes. `result.npz` gets `logits` and the readout populations' spikes per model step.
  `mlf-deploy run THIS_FOLDER --input x.npy` does the same from the package.
- `input.json`: the input pipeline, also stored in the graph's metadata (`input_pipeline`).

## Input

`x.npy` holds **raw samples as the data set stores them** (`raw_layout`, `raw_units` in
`input.json`; for digits: `(B, 1, 8, 8)` pixel values 0..16; event sets: `(B, T, C, H, W)` event
counts). The loader then applies, in order:

1. `x = (x / divide - mean) / std` per channel (`normalise`; absent for event counts);
2. static images are repeated over the `timesteps`; event frames go to `(T, B, C, H, W)`;
3. `x * input_gain + input_offset` per channel when these are present (a folded normalisation);
4. in this integer graph: `clip(round(x / input_scale), -(2^(b-1) - 1), 2^(b-1) - 1)` with
   `b = input_value_bits` ("model units" below are the values after step 1 and 2).

With `--model-units`, `x.npy` holds values after steps 1-2 (`(B, C, H, W)` images or
`(T, B, C, H, W)` frames). Class names are `class_names` in `input.json`.

Mapping: one `LIFReset` per population (fixed_pt: du=4095, dv=4096-round(rho*4096), vth mantissa,
bias_mant/bias_exp), one `Conv` per projection (kernel flipped, (W, H, C) layout, weight_exp folded in),
fan-in summed at each LIF's `a_in`. Each connection adds one step, so skip paths are delayed by a
ring-buffer `SpikeDelay` process (defined in the loader) and layer `l` at depth `d` shows model
step `t` at Lava step `t + d`.
Input projections with a negative weight exponent are computed host-side and fed by a RingBuffer.
A graded graph (`--spikes graded`) has one `GradedMLF` per layer instead (K membranes, sending the
level count as a graded spike into `Conv`s with `num_message_bits` > 0); `result.npz` then holds
the readout sources' payloads.

Trust: `run_lava_network.py` is Python and runs with this folder first on its import path, so it
trusts everything in this folder. Run it only from a folder you wrote or checked; a file named like
a module (`numpy.py`, `lava/`) placed here would run. The graph's SHA-256 detects accidental
changes, not deliberate ones. `.mlf-deploy-output.json` lists the files of this export: `mlf-deploy
export --force` replaces the folder only while it holds nothing else.
"""

LOADER = '''"""Rebuild and run an exported MLF network on Lava; needs numpy and lava-nc 0.10 only."""
import argparse
import functools
import hashlib
import io
import json
import sys
import time
import zipfile
from types import SimpleNamespace

import numpy as np

# @SHIM@


class Graph:
    def __init__(self, path):
        raw = open(path, "rb").read()
        magic, digest, data = raw.split(b"\\n", 2)
        if magic != b"MLFGRAPH 1" or digest != b"sha256:" + hashlib.sha256(data).hexdigest().encode():
            raise SystemExit(f"{path}: not an mlf-deploy graph file, or changed since export")
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            header = json.loads(zf.read("graph.json"))
            body = header["graph"]
            arrays = {n[7:-4]: np.load(io.BytesIO(zf.read(n)), allow_pickle=False)
                      for n in zf.namelist() if n.startswith("arrays/")}
        # schema 2 stores equal arrays once, integers narrowed: key -> [stored key, dtype]
        refs = header.get("arrays") or {k: [k, a.dtype.str] for k, a in arrays.items()}
        arrays = {k: arrays[ref].astype(np.dtype(dtype)) for k, (ref, dtype) in refs.items()}
        fix = lambda v: arrays[v["$array"]] if isinstance(v, dict) else \\
            tuple(tuple(i) if isinstance(i, list) else i for i in v) if isinstance(v, list) else v
        self.nodes = {d["name"]: SimpleNamespace(**{k: fix(v) for k, v in d.items()})
                      for d in body["nodes"]}
        self.numeric, self.metadata = body["numeric"], body["metadata"]
        self.spikes = body.get("spikes", "binary")
        kind = lambda t: [n for n in self.nodes.values() if n.type == t]
        self.input, self.readout, self.layers = kind("Input")[0], kind("Readout")[0], kind("Layer")
        self.projections = kind("Projection")

    def projections_into(self, layer):
        return [p for p in self.projections if p.target == layer]

    def populations_of(self, layer):
        return [self.nodes[n] for n in self.nodes[layer].populations]


# @BUILDER@


def run(graph, frames):
    import_lava()  # before any lava import: patches lava's dataclasses for Python 3.11
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.monitor.process import Monitor

    start = time.time()
    say = lambda text: print(f"[{time.time() - start:6.1f} s] {text}", file=sys.stderr, flush=True)
    say(f"building the Lava processes of {len(graph.layers)} layers ...")
    net, (steps_t, batch) = build_processes(graph, frames), frames.shape[:2]
    say(f"{len(net.procs)} processes built; compiling and running {net.steps} steps (each Lava "
        "process is an OS process: this takes minutes) ...")
    monitors = {}
    for name in graph.readout.sources:
        monitors[name] = Monitor()
        monitors[name].probe(net.lifs[name].s_out, net.steps)
    delay, integer = spike_delay_classes(), graph.numeric == "int"
    lv = _lava_classes()
    # Lava's compiler looks up process instances here first; SpikeDelay is in no package it searches
    models = {ring: delay.fixed if integer else delay.float for ring in net.relays.values()}
    graded = lv.GRADED_MODELS["fixed" if integer else "float"]
    models.update({p: graded for p in net.procs if isinstance(p, lv.GradedMLF)})
    cfg = Loihi2SimCfg(select_tag="fixed_pt" if integer else "floating_pt",
                       exception_proc_model_map=models)
    try:
        net.procs[0].run(condition=RunSteps(num_steps=net.steps), run_cfg=cfg)
        raw = {k: next(iter(next(iter(m.get_data().values())).values())) for k, m in monitors.items()}
    finally:
        net.procs[0].stop()
    say("run finished; reading the readout spikes")
    spikes = {}
    for name, s in raw.items():
        c, h, w = graph.nodes[name].shape
        rows = net.depth[name] + np.arange(steps_t * batch)  # Lava step of (sample, model step)
        s = np.asarray(s).reshape(net.steps, w, h, c)[rows].reshape(batch, steps_t, w, h, c)
        spikes[name] = s.transpose(1, 0, 4, 3, 2).astype(np.uint8)  # (T, B, C, H, W)
    # What each readout source sent: its spikes, or a graded sender's payload (its level count).
    counts = sum(s.sum(axis=(0, 3, 4), dtype=np.float64) for s in spikes.values())
    return logits_from_accumulator(graph, counts @ graph.readout.weight.T.astype(np.float64)), spikes


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--graph", default=__file__.rsplit("/", 1)[0] + "/graph.mlfg")
    ap.add_argument("--input", required=True, help=".npy of raw samples (see README.md: Input)")
    ap.add_argument("--model-units", action="store_true",
                    help="the input is already normalised and laid out (T, B, C, H, W) for events")
    ap.add_argument("--out", default="result.npz")
    args = ap.parse_args()
    g = Graph(args.graph)
    x = np.load(args.input, allow_pickle=False)
    logits, spikes = run(g, input_values(g, x if args.model_units else raw_model_input(g, x)))
    np.savez(args.out, logits=logits, **{k.replace("/", "__"): v for k, v in spikes.items()})
    names = (g.metadata.get("input_pipeline") or {}).get("class_names")
    pred = logits.argmax(1).tolist()
    print("predictions:", pred)
    if names:
        print("classes:", [names[p] for p in pred])
'''
