"""Peak memory of one epoch on a CIFAR10-DVS-sized set, streamed, against set size.

Writes a synthetic CIFAR10-DVS in tonic's layout (``CIFAR10DVS/<class>/*.aedat4``, uncompressed
AEDAT 4.0, 128x128; real content cannot be downloaded here). For each size, in a fresh process with
a cold frame cache, it reads one epoch exactly as training does (train split in the sampler's
order, then the test split, batch 32, DataLoader workers) and, for the sizes in --train-sizes,
runs ``mlf-deploy train --epochs 1`` itself. It samples the summed PSS (proportional set size:
shared pages counted once) of the process and its workers. For comparison it loads the same
training split as one tensor (``load_split``: how training held data before streaming). Printed:
peak memory per size and its ratio to the smallest size; streaming should stay near 1.0x.

    .venv/bin/python benchmarks/data_streaming.py                     # full size: 10,000 recordings
    .venv/bin/python benchmarks/data_streaming.py --sizes 200,400 --events 2000   # a quick look
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tree_rss_bytes(pid: int) -> int:
    """Proportional resident memory of ``pid`` and all its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            pass
    return total


def peak_rss(cmd: list[str], env: dict) -> tuple[int, float, str]:
    """Run ``cmd``; return its peak tree RSS (bytes), wall seconds and output tail."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_bytes(proc.pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out = proc.communicate()[0]
    watcher.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return peak[0], time.perf_counter() - t0, out.strip().splitlines()[-1] if out.strip() else ""


# One epoch read as training reads it: the DistributedSampler order, batches of 32, workers.
READ_EPOCH = """
import sys, torch
from torch.utils.data import DistributedSampler
from mlf_deploy.data import dataset_spec, open_split
from mlf_deploy.data.streaming import batches
spec = dataset_spec('cifar10-dvs', data_dir=sys.argv[1])
train, test = open_split(spec, 'train'), open_split(spec, 'test')
sampler = DistributedSampler(train, num_replicas=1, rank=0, shuffle=True, seed=0)
seen = events = 0
for dataset, order in ((train, list(sampler)), (test, range(len(test)))):
    for xb, yb in batches(dataset, order, 32, int(sys.argv[2])):
        seen, events = seen + len(yb), events + int(xb.sum())
print(f'{seen} samples, {events} events in frames')
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,3000,10000", help="recordings in the whole set")
    ap.add_argument("--events", type=int, default=20000, help="events per recording")
    ap.add_argument("--duration-us", type=int, default=1_300_000, help="length of a recording")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--train-sizes", default="1000",
                    help="sizes at which to also run a training epoch")
    ap.add_argument("--model", default="--depth 8 --widths 4,8,8",
                    help="model options of the epoch ('' for the cifar10_dvs preset itself)")
    ap.add_argument("--work-dir", default=None, help="where to write the files [a temp dir]")
    args = ap.parse_args()
    from mlf_deploy.data.layouts import make_event_set

    sizes = sorted(int(s) for s in args.sizes.split(","))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="mlf-stream-"))
    print(f"files under {work}; {args.events} events per recording over "
          f"{args.duration_us / 1e6:.1f} s, {args.workers} workers, model options {args.model!r}",
          flush=True)
    rows = []
    for n in sizes:
        data = work / f"set{n}"
        t0 = time.perf_counter()
        make_event_set("cifar10-dvs", data, per_class=n // 10, events=args.events,
                       duration_us=args.duration_us, seed=n)
        disk = sum(f.stat().st_size for f in data.rglob("*.aedat4"))
        made = time.perf_counter() - t0
        env = {**os.environ, "MLF_DEPLOY_CACHE": str(work / f"cache{n}"), "PYTHONPATH": str(ROOT)}
        read = [sys.executable, "-c", READ_EPOCH, str(data), str(args.workers)]
        stream_peak, stream_s, last = peak_rss(read, env)
        if str(n) in args.train_sizes.split(","):
            env["MLF_DEPLOY_CACHE"] = str(work / f"cache{n}-train")
            train = [sys.executable, str(ROOT / "cli.py"), "train", "--dataset", "cifar10-dvs",
                     "--data-dir", str(data), "--epochs", "1", "--workers", str(args.workers),
                     "--no-progress", "--out", str(work / f"run{n}"), *args.model.split()]
            train_peak, train_s, train_last = peak_rss(train, env)
            print(f"{n:>6} recordings: one training epoch (cold cache) peak PSS "
                  f"{train_peak / 2**20:,.0f} MiB in {train_s:.0f} s [{train_last}]", flush=True)
        whole = [sys.executable, "-c",
                 "import sys; from mlf_deploy.data import dataset_spec, load_split; "
                 "x, _ = load_split(dataset_spec('cifar10-dvs', data_dir=sys.argv[1]), 'train'); "
                 "print(tuple(x.shape))", str(data)]
        whole_peak, whole_s, shape = peak_rss(whole, env)
        rows.append((n, disk, stream_peak, whole_peak))
        print(f"{n:>6} recordings ({disk / 2**30:.2f} GiB, written in {made:.0f} s): one streamed "
              f"epoch peak PSS {stream_peak / 2**20:,.0f} MiB in {stream_s:.0f} s [{last}]; whole "
              f"train split as one tensor {shape}: {whole_peak / 2**20:,.0f} MiB", flush=True)
    n0, _, s0, w0 = rows[0]
    print("\nrecordings | set size vs smallest | streamed epoch peak PSS (vs smallest) "
          "| whole split in memory (vs smallest)")
    for n, _, s, w in rows:
        print(f"{n:>10} | {n / n0:.1f}x | {s / 2**20:,.0f} MiB ({s / s0:.2f}x) | "
              f"{w / 2**20:,.0f} MiB ({w / w0:.2f}x)")


if __name__ == "__main__":
    main()
