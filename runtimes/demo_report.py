"""The demo's human-readable report: what was built, how each backend agreed, what it would cost."""

from __future__ import annotations

from pathlib import Path

VERDICT = {True: "every backend agreed within its tolerance", False: "SOME BACKEND DISAGREED"}


def _verify_rows(*reports) -> list[str]:
    rows = ["| backend | compared with | accuracy | top-1 vs torch | spike mismatches | "
            "state mismatches | max abs logit diff vs torch | within tolerance |",
            "|---|---|---|---|---|---|---|---|"]
    for rep in reports:
        if not rep:
            continue
        for name, b in rep["backends"].items():
            if name in seen_in(rows):
                continue
            state = "n/a" if b["state_mismatches"] is None else f"{b['state_mismatches']:,}"
            rows.append(f"| {name} | {b['reference'] or 'labels'} | {b['accuracy']:.4f} | "
                        f"{b['top1_agreement']:.4f} | {b['spike_mismatches']:,} / {b['spike_total']:,} "
                        f"| {state} | {b['logits_max_abs_diff']:.2e} | "
                        f"{'yes' if b['within_tolerance'] else 'NO: ' + b['reason']} |")
    return rows


def seen_in(rows) -> set:
    return {r.split("|")[1].strip() for r in rows[2:]}


def write_report(path: Path, summary: dict, report: dict, lava_report: dict | None,
                 energy_text: str, eval_text: str, trained: dict, pipe) -> None:
    g = pipe.graph_int.summary()
    args = pipe.ckpt["model_args"]
    q = pipe.quant_report.to_dict()
    lines = [
        "# mlf-deploy demo report", "",
        f"**Verdict: {VERDICT[bool(summary['passed'])]}.**",
        "",
        "## What was built",
        f"- An MLF spiking DS-ResNet-{args['depth']} (widths {tuple(args['widths'])}, K={args['levels']} "
        f"levels, T={args['timesteps']}, variant `{args['variant']}`) trained on scikit-learn's 8x8 "
        f"digits for {trained['epochs']} epochs: **test accuracy {trained['test_accuracy']:.4f}** "
        f"(torch, float32).",
        f"- Lowered to a deployment graph of {g['layers']} layers, {g['populations']} single-threshold "
        f"populations ({g['neurons']:,} neurons), {g['projections']} projections, largest residual "
        f"fan-in {g['max_fan_in']} populations; quantized to {q['weight_bits']}-bit weights "
        f"({q['weights_clipped']} clipped, worst relative threshold rounding "
        f"{q['worst_threshold_error']['relative']:.2e} at {q['worst_threshold_error']['population']}).",
        "- Exported to `exports/`: the float and integer graph files, ONNX sequence and step models "
        "(float and integer), the graded lowering of the integer graph (one neuron per MLF position "
        "sending its level count: `graph-int-graded.mlfg`, `model-int-graded-sequence.onnx`, "
        "`lava-graded/`), and a Lava network with its standalone loader "
        f"({'written' if summary['lava'] == 'ran' else 'skipped: ' + summary['lava']}).", "",
        "## How each backend agreed",
        f"{report['samples']} test samples for torch, the reference simulator and ONNX Runtime"
        + (f"; {lava_report['samples']} for Lava (each Lava process is an OS process)." if lava_report else "."),
        "", *_verify_rows(report, lava_report), "",
        "Spikes and states are compared per population and timestep with each backend's reference; "
        "details in `verify.json`" + (" and `verify-lava.json`." if lava_report else "."), "",
        "## What it would cost",
        f"SynOps per inference: {summary['synops_per_inference']:,.0f}. Energy per inference (pJ): "
        + ", ".join(f"{k} {v:,.0f}" for k, v in summary["energy_pj"].items()) + ".",
        "", "```", energy_text, "```", "", "![per-layer SynOps and energy](energy.png)", "",
        "## Hardware-oriented evaluation (Loihi-2-like target)", "", "```", eval_text, "```", "",
        "![accuracy against energy](evaluate/accuracy_energy.png)", "",
        "## Files", "- `train/checkpoint.pt`, `train/metrics.jsonl`: the trained model and its history",
        "- `exports/`: deployment artefacts", "- `verify*.json`, `energy.json`, `evaluate.json`, "
        "`summary.json`: machine-readable results", "",
        "Seconds per step: " + ", ".join(f"{k} {v}" for k, v in summary["seconds"].items()) + ".",
    ]
    path.write_text("\n".join(lines) + "\n")
