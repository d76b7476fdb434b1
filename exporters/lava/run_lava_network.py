"""Rebuild and run an exported MLF network on Lava; needs numpy and lava-nc 0.10 only.

``export_lava`` copies this file whole into the exported folder, beside copies of
``lava_build.py``, ``lava_delay.py``, ``lava_graded.py``, ``lava_import.py`` and
``mlf_deploy/ir/portable.py`` (graph reader, input pipeline, readout), and it runs there as a
script:
``python run_lava_network.py --input x.npy --out result.npz`` (README.md of the folder). Inside the
package it is importable and runs the same code on the package's modules.
"""

import argparse
import os
import sys
import time

import numpy as np

if __package__:
    from mlf_deploy.exporters.lava.lava_build import build_processes, lava_classes
    from mlf_deploy.exporters.lava.lava_delay import spike_delay_classes
    from mlf_deploy.exporters.lava.lava_import import import_lava
    from mlf_deploy.ir import portable
else:  # the exported folder; `python -I` leaves the script's own folder off the import path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import portable
    from lava_build import build_processes, lava_classes
    from lava_delay import spike_delay_classes
    from lava_import import import_lava


def run(graph, frames):
    """Run ``graph`` (a :class:`portable.GraphView`) on ``frames`` (T, B, C, H, W), the values its
    Input delivers; return the logits ``(B, classes)`` and the readout sources' spikes (or graded
    payloads) per model step, ``(T, B, C, H, W)`` each."""
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
    delay, integer, lv = spike_delay_classes(), graph.numeric == "int", lava_classes()
    # Lava's compiler looks up process instances here first; SpikeDelay is in no package it searches
    models = {ring: delay.fixed if integer else delay.float for ring in net.relays.values()}
    graded = lv.GRADED_MODELS["fixed" if integer else "float"]
    models.update({p: graded for p in net.procs if isinstance(p, lv.GradedMLF)})
    cfg = Loihi2SimCfg(select_tag="fixed_pt" if integer else "floating_pt",
                       exception_proc_model_map=models)
    try:
        net.procs[0].run(condition=RunSteps(num_steps=net.steps), run_cfg=cfg)
        raw = {k: next(iter(next(iter(m.get_data().values())).values()))
               for k, m in monitors.items()}
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
    return portable.logits_from_counts(graph, counts), spikes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--graph", default=os.path.join(os.path.dirname(__file__), "graph.mlfg"))
    ap.add_argument("--input", required=True, help=".npy of raw samples (see README.md: Input)")
    ap.add_argument("--model-units", action="store_true",
                    help="the input is already normalised and laid out (T, B, C, H, W) for events")
    ap.add_argument("--out", default="result.npz")
    args = ap.parse_args(argv)
    try:
        graph = portable.read_graph(args.graph)
        x, pipe = np.load(args.input, allow_pickle=False), portable.describe_input(graph)
        frames = portable.input_values(pipe, x) if args.model_units \
            else portable.raw_input_values(pipe, x)
    except (OSError, ValueError, KeyError) as exc:  # unreadable file, wrong shape, not our graph
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logits, spikes = run(graph, frames)
    np.savez(args.out, logits=logits, **{k.replace("/", "__"): v for k, v in spikes.items()})
    names = (graph.metadata.get("input_pipeline") or {}).get("class_names")
    pred = logits.argmax(1).tolist()
    print("predictions:", pred)
    if names:
        print("classes:", [names[p] for p in pred])
    return 0


if __name__ == "__main__":
    sys.exit(main())
