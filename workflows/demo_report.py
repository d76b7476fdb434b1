"""The demo's human-readable report: what was built, how each backend agreed, what it would cost."""

from __future__ import annotations

from pathlib import Path

from mlf_deploy.hardware.rules import group_violations
from mlf_deploy.verification.verdict_text import layer_rows, verdict_lines
from mlf_deploy.workflows.demo_results import DemoResults

VERDICT = {True: "every backend agreed within its tolerance", False: "SOME BACKEND DISAGREED"}


COLUMNS = (
    "Columns: *compared with* is the reference whose spikes and membranes this backend must "
    "reproduce (the spike and state mismatch columns count differences from it, over every "
    "population, level, timestep and sample); *top-1 vs torch* and *max abs logit diff vs torch* "
    "always compare with the torch model (run in float64); *accuracy* is against the labels. "
    "*Within tolerance* applies the rule in the *tolerance* column. Exact backends must be "
    "exact. The integer graph (ir-int) is lossy by design, so its spike mismatches with ir-float "
    "are rounding, compounded layer after layer, and it is asked two questions instead "
    "(docs/verdict.md): *is it a correct deployment?* (each layer, fed ir-float's own spikes, "
    "must deviate no more than a rounding-sized perturbation of the float graph does on the same "
    "samples, so a wrong threshold, scale, sign, decay or wiring is named by layer) and *is it "
    "good enough?* (its accuracy drop against ir-float, with an exact paired 95 % interval, must "
    "not be shown above the 1 pp tolerance).")


def _verdict(b: dict) -> str:
    text = "yes" if b["within_tolerance"] else "NO"
    lines = verdict_lines(b)
    return text + (" (" + "; ".join(lines) + ")" if lines else "" if b["within_tolerance"]
                   else ": " + b["reason"])


def _drift_rows(report: dict) -> list[str]:
    b = report["backends"].get("ir-int") or {}
    if not b.get("layer_check"):
        return []
    rows = ["### Per-layer drift of the integer graph", "",
            "Percent of ir-float's spikes that differ in each layer: *own* with the layer fed "
            "ir-float's spikes (its own rounding), the *floor* a rounding-sized perturbation of "
            "the float graph gives, and *free-running* (the rounding of every layer before it, "
            "compounded). A layer whose own drift stands above its floor is where quantization "
            "hurts: widen or fine-tune it.", "",
            "| layer | own % | floor % | free-running % | within floor |", "|---|---|---|---|---|"]
    for line in layer_rows(b)[1:]:
        rows.append("| " + " | ".join(line.split()) + " |")
    return rows + ["", "![per-layer drift](drift.png)", ""]


def _verify_rows(report: dict) -> list[str]:
    rows = ["| backend | samples | compared with | accuracy | top-1 vs torch | spike mismatches "
            "| state mismatches | max abs logit diff vs torch | tolerance | within tolerance |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, b in report["backends"].items():
        state = "n/a" if b["state_mismatches"] is None else f"{b['state_mismatches']:,}"
        rows.append(f"| {name} | {b['samples']} | {b['reference'] or 'labels'} | "
                    f"{b['accuracy']:.4f} | {b['top1_agreement']:.4f} | "
                    f"{b['spike_mismatches']:,} / {b['spike_total']:,} | {state} | "
                    f"{b['logits_max_abs_diff']:.2e} | {b['tolerance']} | {_verdict(b)} |")
    return rows


def _verify_section(report: dict, lava_report: dict | None) -> list[str]:
    lines = [f"### Reference simulator and ONNX Runtime: {report['samples']} test samples", "",
             *_verify_rows(report), ""]
    if lava_report:
        lines += [f"### Lava: {lava_report['samples']} test samples", "",
                  "Each Lava process is an OS process, so Lava runs on fewer samples; the rows "
                  "it is compared with are rerun on the same samples and listed here again, "
                  "so every row of this table counts the same samples.", "",
                  *_verify_rows(lava_report), ""]
    return lines + [COLUMNS, "", *_drift_rows(report)]


def _energy_lines(summary: dict, models: dict) -> list[str]:
    lines = [f"SynOps per inference: {summary['synops_per_inference']:,.0f}. Energy per inference:"]
    for name, pj in summary["energy_pj"].items():
        note = models.get(name, {}).get("note", "")
        caveat = (" **A pre-silicon minimum**: simulated per-op energies, not a measurement; a "
                  "real chip spends more (static power, spike routing, host I/O)."
                  if name.startswith("loihi1") else "")
        lines.append(f"- `{name}`: {pj:,.0f} pJ ({note}).{caveat}")
    return lines


def _drc_lines(mapping: dict) -> list[str]:
    violations = mapping.get("violations") or []
    if not violations:
        return ["The design-rule check (DRC) passed: the network fits the target."]
    target = mapping.get("target", {})
    lines = [f"The design-rule check (DRC) found {len(violations)} violation(s) against the "
             f"modelled target `{target.get('name', '?')}`. These say whether the network would "
             "fit that chip budget, not whether any backend computed it correctly, so they do not "
             "change the verdict above:"]
    for g in group_violations(violations):
        why = ("the network needs more neuron cores than the target's chips hold; deploy it on "
               "more chips or with fewer or narrower layers" if g["rule"] == "cores_fit_chips"
               else "see docs/energy.md for the rule")
        where = (f"at `{g['node']}`" if g["count"] == 1 else
                 f"{g['count']} times in {g['nodes']} node(s), worst at `{g['node']}`")
        lines.append(f"- `{g['rule']}` {where}: {g['message']} ({why}).")
    return lines


def write_report(path: Path, results: DemoResults) -> None:
    r = results
    summary, report, lava_report, energy_text, eval_text, trained, pipe = (
        r.summary, r.report, r.lava_report, r.energy_text, r.eval_text, r.trained, r.pipe)
    energy_models, mapping = r.energy_models, r.mapping
    g = pipe.graph_int.summary()
    args = pipe.ckpt["model_args"]
    q = pipe.quant_report.to_dict()
    lines = [
        "# mlf-deploy demo report", "",
        f"**Verdict: {VERDICT[bool(summary['passed'])]}.**",
        "",
        "## What was built",
        f"- An MLF spiking DS-ResNet-{args['depth']} (widths {tuple(args['widths'])}, "
        f"K={args['levels']} levels, T={args['timesteps']}, variant `{args['variant']}`) trained "
        f"on scikit-learn's 8x8 digits for {trained['epochs']} epochs: "
        f"**test accuracy {trained['test_accuracy']:.4f}** (torch, float32).",
        f"- Lowered to a deployment graph of {g['layers']} layers, {g['populations']} "
        f"single-threshold populations ({g['neurons']:,} neurons), {g['projections']} "
        f"projections, largest residual "
        f"fan-in {g['max_fan_in']} populations; quantized to {q['weight_bits']}-bit weights "
        f"({q['weights_clipped']} clipped, worst relative threshold rounding "
        f"{q['worst_threshold_error']['relative']:.2e} at "
        f"{q['worst_threshold_error']['population']}).",
        "- Exported to `exports/`: the float and integer graph files, ONNX sequence and step "
        "models (float and integer), the graded lowering of the integer graph (one neuron per "
        "MLF position "
        "sending its level count: `graph-int-graded.mlfg`, `model-int-graded-sequence.onnx`, "
        "`lava-graded/`), and a Lava network with its standalone loader "
        f"({'run on Lava below' if summary['lava'] == 'ran' else 'not run: ' + summary['lava']}).",
        "",
        "## How each backend agreed", "", *_verify_section(report, lava_report),
        "Spikes and states are compared per population and timestep with each backend's reference; "
        "details in `verify.json`" + (" and `verify-lava.json`." if lava_report else "."), "",
        "## What it would cost",
        *_energy_lines(summary, energy_models),
        "", "```", energy_text, "```", "", "![per-layer SynOps and energy](energy.png)", "",
        "## Hardware-oriented evaluation (Loihi-2-like target)", "", "```", eval_text, "```", "",
        *_drc_lines(mapping), "",
        "![accuracy against energy](evaluate/accuracy_energy.png)", "",
        "![per-layer energy by weight width](evaluate/layers.png)", "",
        "![both lowerings, Loihi 1 per-event bill](evaluate/lowerings.png)", "",
        "## Files", "- `train/checkpoint.pt`, `train/metrics.jsonl`: the trained model and its "
                    "history",
        "- `exports/`: deployment artefacts", "- `verify*.json`, `energy.json`, `evaluate.json`, "
        "`summary.json`: machine-readable results", "",
        "Seconds per step: " + ", ".join(f"{k} {v}" for k, v in summary["seconds"].items()) + ".",
    ]
    path.write_text("\n".join(lines) + "\n")
