"""Latency (batch 1) and throughput (batch 64) of the ONNX sequence model in ONNX Runtime, against
the torch model in eager mode and the reference simulator, in one run on one machine.

Model: the ``digits`` preset (DS-ResNet-14, widths 16/32/64, K=3, T=4, 1x8x8 static input) with
random weights whose BatchNorm statistics come from a few training-mode passes and whose BN shifts
are raised so every level fires (an untrained net is nearly silent, which would flatter any backend
that skips work). Every timing is end to end from the raw ``(B, 1, 8, 8)`` batch to logits: host
input encoding (``prepare_input``) included for the graph backends, direct encoding inside the torch
model. ONNX models are exported with ``record=False`` (logits and overflow only, as deployed) and
also with ``record=True`` (every spike and state, as ``verify`` runs them).

Usage: ``python benchmarks/onnx_latency.py [--repeat 50] [--threads 0] [--deployed | --profile]``
(threads 0: library defaults, else intra-op threads of torch and ONNX Runtime alike;
``--deployed``: batch 1 and 64 of torch and the two exact sequence models as deployed only, with a
check that they are exact, for a loaded machine where the whole table takes too long;
``--profile``: ONNX Runtime's profile of those two models at batch 64, by op type and node kind).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from mlf_deploy.exporters.onnx.export import export_onnx  # noqa: E402
from mlf_deploy.ir.reference import run_reference  # noqa: E402
from mlf_deploy.ir.semantics import prepare_input  # noqa: E402
from mlf_deploy.lowering import lower  # noqa: E402
from mlf_deploy.models import TdBatchNorm, preset  # noqa: E402
from mlf_deploy.quantization import quantize  # noqa: E402


def calibrated_model(seed=0):
    torch.manual_seed(seed)
    model = preset("digits").train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, 1, 8, 8) * 2)
        for m in model.modules():
            if isinstance(m, TdBatchNorm):
                m.weight.uniform_(1.0, 2.5)
                m.bias.uniform_(0.0, 0.8)
    return model.eval()


def timed(fns: dict, x, repeat, warmup=2) -> tuple[dict, dict]:
    """Median wall time of each ``fn(x)`` in milliseconds, and the median over repeats of the
    first backend's time over each one's. The backends take turns within every repeat, so load
    from other processes on a shared machine hits them alike; the per-repeat ratio also cancels
    load that changes between repeats."""
    for _ in range(warmup):
        for fn in fns.values():
            fn(x)
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - t0)
    base = times[next(iter(fns))]
    ratio = {name: statistics.median(b / t for b, t in zip(base, ts)) for name, ts in times.items()}
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}, ratio


def session(graph, record, threads, precision="float64"):
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    model = export_onnx(graph, "sequence", record=record, precision=precision)
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    dtype = np.dtype(precision)
    feed = lambda x: {"input": prepare_input(graph, x).astype(dtype, copy=False)}
    return (lambda x: sess.run(["logits"], feed(x))[0]), len(model.graph.node)


def profile(graph, threads, batch=64, runs=8) -> None:
    """ONNX Runtime's own profile of the deployed sequence model at ``batch``: kernel time per op
    type and per kind of node (the last part of a node's name, e.g. ``Gather:im2col``)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or 0
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    model = export_onnx(graph, "sequence", record=False)
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = (np.random.default_rng(0).random((batch, 1, 8, 8)) * 2).astype(np.float32)
    for _ in range(runs):
        sess.run(["logits"], {"input": prepare_input(graph, x)})
    path = sess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    shutil.rmtree(os.path.dirname(path))
    run_ms = [e["dur"] / 1e3 for e in events if e.get("name") == "model_run"][2:]  # after warmup
    by_op, by_kind = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"]["op_name"]
            tail = e["name"][:-len("_kernel_time")].rsplit("/", 1)[-1].split(":")[0]
            by_op[op] += e["dur"] / 1e3 / runs
            by_kind[f"{op}:{tail.rstrip('0123456789_')}"] += e["dur"] / 1e3 / runs
    total = sum(by_op.values())
    print(f"onnx-{graph.numeric} batch {batch}: run {statistics.median(run_ms):.1f} ms (median), "
          f"kernels {total:.1f} ms in {len(model.graph.node)} nodes")
    for name, counter, n in (("op type", by_op, 10), ("node kind", by_kind, 14)):
        print(f"  by {name}: " + ", ".join(f"{k} {v:.1f} ms ({100 * v / total:.0f}%)"
                                           for k, v in counter.most_common(n)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch and ORT intra-op threads (0: default)")
    ap.add_argument("--deployed", action="store_true",
                    help="only torch and the exact onnx-float / onnx-int sequence models as "
                         "deployed (no recording), batch 1 and 64")
    ap.add_argument("--profile", action="store_true",
                    help="ONNX Runtime's profile of the deployed models at batch 64, by op type")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = calibrated_model()
    g_float = lower(model, (1, 8, 8), "static")
    g_int, _ = quantize(g_float, 8, input_max=2.0)
    print(f"digits preset: {g_float.summary()}")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs")

    backends = {"torch eager (float32)": lambda x: model(torch.as_tensor(x))}
    if args.profile:
        return [profile(graph, args.threads) for graph in (g_float, g_int)]
    if args.deployed:
        return deployed(backends, g_float, g_int, args)
    for name, graph in (("float", g_float), ("int", g_int)):
        for record in (False, True):
            fn, nodes = session(graph, record, args.threads)
            backends[f"onnx-{name} seq{' +record' if record else ''} ({nodes} ops)"] = fn
    fast, nodes = session(g_float, False, args.threads, "float32")
    backends[f"onnx-float seq float32 fast ({nodes} ops)"] = fast
    backends["reference ir-float"] = lambda x: run_reference(g_float, x, record_states=False).logits
    backends["reference ir-int"] = lambda x: run_reference(g_int, x, record_states=False).logits

    rng = np.random.default_rng(0)
    inputs = {b: (rng.random((b, 1, 8, 8)) * 2).astype(np.float32) for b in (1, 64)}
    with torch.no_grad():
        # sanity: the exported float model agrees with torch on this input
        onnx_float = next(fn for name, fn in backends.items() if name.startswith("onnx-float"))
        diff = np.abs(onnx_float(inputs[64]) - model(torch.as_tensor(inputs[64])).numpy()).max()
        ref = run_reference(g_float, inputs[64]).logits
        exact = np.abs(onnx_float(inputs[64]) - ref).max()
        fast_diff = np.abs(fast(inputs[64]) - ref).max()
        b1, r1 = timed(backends, inputs[1], args.repeat)
        b64, r64 = timed(backends, inputs[64], max(5, args.repeat // 5))
    print(f"max |logits - reference ir-float| on 64 samples: onnx-float {exact:.1e}, float32 fast "
          f"{fast_diff:.1e}, torch eager float32 {diff:.1e} (torch and ir-float differ where a "
          f"membrane lies within float32 rounding of a threshold; the difference then propagates)")
    print(f"{'backend':44s} {'batch-1 ms':>10s} {'vs torch':>9s} {'batch-64 samples/s':>19s} "
          f"{'vs torch':>9s}")
    for name in backends:
        print(f"{name:44s} {b1[name]:10.3f} {r1[name]:8.2f}x {64e3 / b64[name]:19.0f} "
              f"{r64[name]:8.2f}x")
    print(f"(vs torch: median over repeats of torch's time / the backend's, >1 is faster; load "
          f"average {' '.join(f'{x:.1f}' for x in os.getloadavg())})")


def deployed(backends, g_float, g_int, args):
    """Batch 1 and 64 of torch and the two exact deployed sequence models (``record=False``)."""
    for name, graph in (("float", g_float), ("int", g_int)):
        fn, nodes = session(graph, False, args.threads)
        backends[f"onnx-{name} seq ({nodes} ops)"] = fn
    rng = np.random.default_rng(0)
    inputs = {b: (rng.random((b, 1, 8, 8)) * 2).astype(np.float32) for b in (1, 64)}
    fns = list(backends.values())
    diff_float = np.abs(fns[1](inputs[64]) - run_reference(g_float, inputs[64]).logits).max()
    same_int = np.array_equal(fns[2](inputs[64]), run_reference(g_int, inputs[64]).logits)
    print(f"on 64 samples: max |onnx-float - ir-float| logits {diff_float:.1e}; onnx-int logits "
          f"{'identical to' if same_int else 'DIFFER from'} ir-int")
    with torch.no_grad():
        b1, r1 = timed(backends, inputs[1], args.repeat)
        b64, r64 = timed(backends, inputs[64], args.repeat)
    print(f"{'backend':44s} {'batch-1 samples/s':>18s} {'vs torch':>9s} "
          f"{'batch-64 samples/s':>19s} {'vs torch':>9s}")
    for name in backends:
        print(f"{name:44s} {1e3 / b1[name]:18.0f} {r1[name]:8.2f}x {64e3 / b64[name]:19.0f} "
              f"{r64[name]:8.2f}x")
    print(f"(vs torch: median over the {args.repeat} repeats of torch's time / the backend's; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})")


if __name__ == "__main__":
    main()
