"""Is the reference simulator fast enough to evaluate a whole test split? Times the torch model's
own evaluation and the reference simulator (float and int, with and without recorded states) on the
digits test split, in one run, and prints ratios against torch.

    .venv/bin/python benchmarks/reference_eval.py [--checkpoint CKPT] [--repeats 3]

Without a checkpoint it uses a digits DS-ResNet-14 with BN statistics from a few training batches.
"""

import argparse
import statistics
import time

import torch

from mlf_deploy.checkpoint import load_model
from mlf_deploy.data import dataset_spec, load_split
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.lowering import lower
from mlf_deploy.models import preset
from mlf_deploy.quantization import quantize


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    spec = dataset_spec("digits", seed=0)
    x_train, _ = load_split(spec, "train")
    x, y = load_split(spec, "test")
    if args.checkpoint:
        model, _ = load_model(args.checkpoint)
    else:
        model = preset("digits").train()
        with torch.no_grad():
            for i in range(0, 512, 128):
                model(x_train[i:i + 128])
        model.eval()
    graph = lower(model, tuple(x.shape[1:]))
    qgraph, _ = quantize(graph, 8, input_max=float(x_train.abs().max()))

    @torch.no_grad()
    def torch_eval():
        return torch.cat([model(x[i:i + 256]) for i in range(0, len(x), 256)])

    rows = [("torch eval (float32)", *timed(torch_eval, args.repeats))]
    for name, g in (("ir-float", graph), ("ir-int", qgraph)):
        for states in (False, True):
            label = f"{name}{' + states' if states else ''}"
            rows.append((label, *timed(lambda g=g, s=states: run_reference(g, x, record_states=s),
                                       args.repeats)))
    base = rows[0][1]
    print(f"{len(x)} test samples, T={graph.timesteps}, "
          f"{graph.summary()['populations']} populations")
    for label, sec, _ in rows:
        print(f"{label:<22} {sec * 1000:8.1f} ms  {sec / len(x) * 1e3:7.3f} ms/sample  "
              f"{sec / base:5.2f}x torch")


if __name__ == "__main__":
    main()
