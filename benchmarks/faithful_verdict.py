"""Faithful deployments must pass: train small digits models briefly (one factor varied at a time
around digits / DS-ResNet-14 / K=3 / DS blocks / 3 epochs, plus the configurations a user found
failing under the old constant bounds), then run the default `mlf-deploy verify` on 16, 64 and the
whole split (360). Prints one row per run: command, samples, verdict, both halves of ir-int's
verdict, and the accuracies.

    .venv/bin/python benchmarks/faithful_verdict.py --out runs/verdict [--only d14-k3]
    [--train-only]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

BASE = ["--dataset", "digits", "--depth", "14", "--levels", "3", "--epochs", "3"]
CONFIGS = {  # name: options replacing the base's
    "d14-k3": [],
    "d8-k3": ["--depth", "8"],
    "d20-k3": ["--depth", "20"],
    "d32-k3": ["--depth", "32"],
    "d14-k1": ["--levels", "1"],
    "d14-k2": ["--levels", "2"],
    "d14-k4": ["--levels", "4"],
    "d14-k3-plain": ["--variant", "plain"],
    "d14-k3-events": ["--dataset", "digits-events"],
    "d20-k2": ["--depth", "20", "--levels", "2"],  # reported FAILED by the old 2 % / 3 % bounds
    "d8-k4-plain": ["--depth", "8", "--levels", "4", "--variant", "plain"],  # likewise
}
FINETUNED = "d14-k3-ft4"  # d14-k3 fine-tuned for 4-bit weights, verified at 4 bits
SAMPLES = (16, 64, 360)
CLI = [str(Path(sys.executable).parent / "mlf-deploy")]


def options(extra: list) -> list:
    merged = dict(zip(BASE[::2], BASE[1::2]))
    merged.update(zip(extra[::2], extra[1::2]))
    return [x for kv in merged.items() for x in kv]


def train(out: Path, name: str) -> Path:
    ckpt = out / name / "checkpoint.pt"
    if ckpt.exists():
        return ckpt
    if name == FINETUNED:
        base = train(out, "d14-k3")
        cmd = CLI + ["finetune", str(base), "--weight-bits", "4", "--epochs", "1",
                     "--out", str(out / name), "--no-progress"]
    else:
        cmd = CLI + ["train", *options(CONFIGS[name]), "--out", str(out / name), "--threads", "1",
                     "--no-progress"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return ckpt


def verify(ckpt: Path, samples: int, bits: int) -> dict:
    cmd = ["verify", str(ckpt), "--samples", str(samples)]
    cmd += ["--weight-bits", str(bits)] if bits != 8 else []
    res = subprocess.run(CLI + cmd + ["--json"], capture_output=True, text=True)
    if res.returncode not in (0, 1):
        raise SystemExit(res.stderr)
    out = json.loads(res.stdout.splitlines()[-1])
    b = out["backends"]["ir-int"]
    st = b["statistics"]
    return {"command": "mlf-deploy " + " ".join(cmd), "samples": out["samples"],
            "verdict": "PASSED" if out["passed"] else "FAILED",
            "deployment": "ok" if st["deployment"]["passed"] else
            "FAIL " + ",".join(st["deployment"]["failed_layers"]),
            "task": "ok" if st["task"]["passed"] else "FAIL",
            "drop_pp": round(100 * st["task"]["drop"], 2),
            "acc_float": round(out["backends"]["ir-float"]["accuracy"], 4),
            "acc_int": round(b["accuracy"], 4)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/verdict")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--samples", nargs="*", type=int, default=list(SAMPLES))  # 0: whole split
    ap.add_argument("--train-only", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    names = [n for n in [*CONFIGS, FINETUNED] if not args.only or n in args.only]
    ckpts = {n: train(out, n) for n in names}
    if args.train_only:
        return
    print("| model | command | samples | verdict | correct deployment? | good enough? "
          "| drop (pp) | ir-float acc | ir-int acc |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.samples:  # every model at one count before the next count
        for name, ckpt in ckpts.items():
            r = verify(ckpt, n, 4 if name == FINETUNED else 8)
            print(f"| {name} | `{r['command']}` | {r['samples']} | {r['verdict']} | "
                  f"{r['deployment']} | {r['task']} | {r['drop_pp']} | {r['acc_float']} | "
                  f"{r['acc_int']} |", flush=True)


if __name__ == "__main__":
    main()
