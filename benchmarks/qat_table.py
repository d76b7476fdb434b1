"""Post-training quantization against quantization-aware fine-tuning on the embedded digits data.

Trains (or reuses) the digits model with the `train` defaults, then for each weight width: the
post-training int graph's accuracy on the whole test split (integer reference), quantization-aware
training for that width (`train --init BASE --weight-bits N`, which `finetune` is another name
for), and the fine-tuned checkpoint's int graph accuracy, measured again by lowering, quantizing
and running the integer reference on the written checkpoint (not the number fine-tuning printed),
plus `verify`'s torch-int row against it and the Loihi-2-like core count. Prints one row per width.

    .venv/bin/python benchmarks/qat_table.py --out runs/qat [--bits 8,6,4,3,2] [--epochs 5] \
        [--jobs 5] [--threads 1]

``--jobs N`` runs the widths in N processes (each fine-tuning is independent and seeded, so the
numbers do not depend on N). Every process runs torch on ``--threads`` threads (default: the fixed
training default), never on a count taken from the machine: the count changes the weights
(docs/determinism.md).
"""

import argparse
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from mlf_deploy.checkpoint import read_checkpoint
from mlf_deploy.hardware import Target, map_graph
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.threads import TRAIN_THREADS
from mlf_deploy.training import TrainConfig, train
from mlf_deploy.workflows.pipeline import load_pipeline
from mlf_deploy.workflows.verify import verify


def int_accuracy(pipe) -> float:
    x, y = pipe.data("test")
    logits = run_reference(pipe.graph_int, x, record_states=False).logits
    return float((logits.argmax(1) == y.numpy()).mean())


def _done(path: Path, cfg: TrainConfig) -> bool:
    """A checkpoint this run would write already exists (rerunning only re-measures it)."""
    if not path.exists():
        return False
    done = read_checkpoint(path).get("config", {})
    keys = ("init", "weight_bits", "epochs", "lr", "max_samples", "seed", "batch_size")
    return all(done.get(k) == getattr(cfg, k) for k in keys if getattr(cfg, k) is not None)


def one_width(base: Path, out: Path, bits: int, args, threads: int) -> dict:
    torch.set_num_threads(threads)
    post = int_accuracy(load_pipeline(base, bits))
    tuned = out / f"finetuned-{bits}bit"
    cfg = TrainConfig(init=str(base), out_dir=str(tuned), weight_bits=bits, epochs=args.epochs,
                      lr=args.lr, max_samples=args.max_samples, threads=threads, force=True)
    if not _done(tuned / "checkpoint.pt", cfg):
        train(cfg, progress=False, log=lambda *_: None)
    pipe = load_pipeline(tuned / "checkpoint.pt", None)  # the width it was fine-tuned for
    history = pipe.ckpt["history"]
    acc = int_accuracy(pipe)
    rep = verify(pipe, ["torch-int"], samples=None)["backends"]["torch-int"]
    return dict(bits=bits, post_training=post, finetuned=acc,
                reported=pipe.ckpt["metrics"]["test_accuracy"],
                torch_int_spike_mismatches=rep["spike_mismatches"],
                torch_int_state_mismatches=rep["state_mismatches"], spike_total=rep["spike_total"],
                cores=map_graph(pipe.graph_int, Target()).cores,
                samples_per_s=sum(r["samples_per_s"] for r in history) / len(history))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/qat")
    ap.add_argument("--bits", default="8,6,4,3,2")
    ap.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs")
    ap.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate")
    ap.add_argument("--seed", type=int, default=0, help="seed of the base training")
    ap.add_argument("--jobs", type=int, default=1, help="widths fine-tuned in parallel")
    ap.add_argument("--threads", type=int, default=TRAIN_THREADS, help="torch threads per job")
    ap.add_argument("--train-epochs", type=int, default=None, help="base training (smoke runs)")
    ap.add_argument("--max-samples", type=int, default=None, help="train samples (smoke runs)")
    args = ap.parse_args()
    out = Path(args.out)
    base = out / "base" / "checkpoint.pt"
    if not base.exists():
        train(TrainConfig(dataset="digits", out_dir=str(base.parent), seed=args.seed,
                          epochs=args.train_epochs, max_samples=args.max_samples,
                          threads=args.threads),
              progress=False, log=lambda *_: None)
    float_acc = read_checkpoint(base)["metrics"]["test_accuracy"]
    widths = [int(b) for b in args.bits.split(",")]
    threads = args.threads
    print(f"float model (torch, float32) test accuracy {float_acc:.4f}: {base}; fine-tuning "
          f"{args.epochs} epochs at lr {args.lr}; {threads} torch thread(s) per job")
    head = (f"{'bits':>4} {'post-training':>13} {'fine-tuned':>10} {'gain pp':>7} "
            f"{'vs float pp':>11} {'torch-int spike mism':>20} {'cores':>5} {'samples/s':>9}")
    print(head)
    print("-" * len(head))
    rows = []
    # spawn, not fork: a forked child of a process whose OpenMP pool is running can hang
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for r in pool.map(one_width, *zip(*[(base, out, b, args, threads) for b in widths])):
            r["float"] = float_acc
            rows.append(r)
            print(f"{r['bits']:>4} {r['post_training']:>13.4f} {r['finetuned']:>10.4f} "
                  f"{100 * (r['finetuned'] - r['post_training']):>+7.2f} "
                  f"{100 * (r['finetuned'] - float_acc):>+11.2f} "
                  f"{r['torch_int_spike_mismatches']:>9}/{r['spike_total']:<10} {r['cores']:>5} "
                  f"{r['samples_per_s']:>9.1f}", flush=True)
    (out / "qat_table.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
