"""A few hundred real ``train`` steps of the ``cifar10`` preset, and what bf16 autocast does to
spikes.

No CIFAR-10 can be downloaded here, so the script writes files in the CIFAR-10 python-batch layout
(``cifar-10-batches-py/data_batch_1..5``, ``test_batch``) holding a synthetic but learnable task:
each class is a fixed random 3x32x32 pattern, each image that pattern plus noise. ``mlf-deploy``'s
own ``train`` (the loader, augmentation, SGD schedule and checkpointing a user gets) then runs on
it.

Printed: samples/s of eager and compiled training (the ratio is what ``--compile`` buys; the
first epoch includes compilation, so the steady rate is taken from the last epoch), the accuracy the
run reaches, and, for one batch of the trained model, the share of spike sites (level, timestep,
neuron) whose value differs between a float32 forward pass and one under bf16 autocast.

Usage: ``python benchmarks/gpu_train.py [--device cuda] [--per-class 640] [--epochs 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_cifar_like(root: str, per_class: int, test_per_class: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, size=(10, 3072))
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)

    def batch(n_per_class):
        labels = np.repeat(np.arange(10), n_per_class)
        rng.shuffle(labels)
        noise = rng.normal(0, 60, size=(labels.size, 3072))
        data = np.clip(patterns[labels] * 0.5 + 64 + noise, 0, 255).astype(np.uint8)
        return {b"data": data, b"labels": labels.tolist()}

    train = batch(per_class)
    n = len(train[b"labels"])
    for i in range(5):
        part = slice(i * n // 5, (i + 1) * n // 5)
        with open(os.path.join(folder, f"data_batch_{i + 1}"), "wb") as f:
            pickle.dump({b"data": train[b"data"][part], b"labels": train[b"labels"][part]}, f)
    with open(os.path.join(folder, "test_batch"), "wb") as f:
        pickle.dump(batch(test_per_class), f)


def run_train(data_dir, out_dir, device, epochs, compile_):
    from mlf_deploy.training import TrainConfig, train

    t0 = time.perf_counter()
    rows = []
    result = train(TrainConfig(dataset="cifar10", data_dir=data_dir, out_dir=out_dir, device=device,
                               epochs=epochs, compile=compile_), progress=False,
                   log=lambda line: rows.append(line))
    return result, time.perf_counter() - t0, rows


def bf16_spike_disagreement(checkpoint, data_dir, device):
    import torch

    from mlf_deploy.checkpoint import load_model
    from mlf_deploy.data import dataset_spec, load_split

    model, _ = load_model(checkpoint)
    model = model.to(device).eval()
    spec = dataset_spec("cifar10", 0, data_dir=data_dir)
    x, _ = load_split(spec, "test")
    x = x[:64].to(device)
    model.set_recording(True)
    with torch.no_grad():
        model(x)
        ref = {k: v["spikes"].clone() for k, v in model.activity().items()}
        with torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu",
                            dtype=torch.bfloat16):
            model(x)
        low = {k: v["spikes"] for k, v in model.activity().items()}
    differ = sum(int((ref[k] != low[k]).sum()) for k in ref)
    total = sum(ref[k].numel() for k in ref)
    return differ, total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--per-class", type=int, default=640, help="training images per class")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--modes", default="eager,compiled", help="which training runs, eager first")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar_like(tmp, args.per_class, max(10, args.per_class // 10))
        report = {}
        for tag in args.modes.split(","):
            compile_ = tag == "compiled"
            res, secs, rows = run_train(tmp, os.path.join(tmp, tag), args.device, args.epochs,
                                        compile_)
            steps = args.epochs * -(-10 * args.per_class // 64)
            report[tag] = {"seconds": secs, "steps": steps, "log": rows[-args.epochs:],
                           "test_accuracy": res.get("test_accuracy")}
            print(f"{tag}: {steps} steps of batch 64 in {secs:.1f} s; test accuracy "
                  f"{res.get('test_accuracy')}; last epoch: {rows[-1] if rows else ''}", flush=True)
        try:
            differ, total = bf16_spike_disagreement(os.path.join(tmp, "eager", "checkpoint.pt"),
                                                    tmp, args.device)
            print(f"bf16 autocast vs float32 forward (64 test images): {differ} of {total} spike "
                  f"sites differ ({differ / total:.4%})")
            report["bf16_spike_sites_differ"] = [differ, total]
        except Exception as exc:  # the measurement is optional; say why it could not run
            print(f"bf16 check failed: {type(exc).__name__}: {exc}")
        print(json.dumps(report))


if __name__ == "__main__":
    main()
