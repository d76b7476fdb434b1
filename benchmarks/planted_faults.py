"""Detection rates of planted deployment faults: each fault of tests/faults.py, at a place each
seed picks, injected into the quantizer of a checkpoint; `verify` at its default 16 samples must
say FAILED and name the planted layer. Prints one row per fault: detected (FAILED naming the
layer), FAILED at all, out of the seeds. Also runs the correct graph once per checkpoint.

    .venv/bin/python benchmarks/planted_faults.py CKPT [CKPT ...] --seeds 5
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from faults import FAULTS, faulty_quantize  # noqa: E402

from mlf_deploy.workflows import pipeline  # noqa: E402
from mlf_deploy.workflows.verify import verify  # noqa: E402

BACKENDS = ["torch", "ir-float", "ir-int"]


def run(ckpt: str, fault: str | None, seed: int) -> tuple[bool, bool, str]:
    """``(failed, named the planted layer, planted layer)``; ``fault`` None: the correct graph."""
    planted = {"layer": "-"}
    real = pipeline.quantize
    if fault is not None:
        pipeline.quantize = faulty_quantize(fault, seed, planted)
    try:
        out = verify(pipeline.load_pipeline(ckpt, 8), BACKENDS)
    finally:
        pipeline.quantize = real
    failed = out["backends"]["ir-int"]["layer_check"]["failed_layers"]
    return not out["passed"], failed == [planted["layer"]], planted["layer"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    print("| checkpoint | fault | FAILED naming the layer | FAILED | layers hit |")
    print("|---|---|---|---|---|")
    for ckpt in args.checkpoints:
        failed, _, _ = run(ckpt, None, 0)
        print(f"| {ckpt} | none (correct graph) | - | {int(failed)}/1 | - |", flush=True)
        for fault in FAULTS:
            rows = [run(ckpt, fault, seed) for seed in range(args.seeds)]
            print(f"| {ckpt} | {fault} | {sum(r[1] for r in rows)}/{len(rows)} | "
                  f"{sum(r[0] for r in rows)}/{len(rows)} | "
                  f"{', '.join(sorted({r[2] for r in rows}))} |", flush=True)


if __name__ == "__main__":
    main()
