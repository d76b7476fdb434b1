"""``mlf-deploy demo``: the whole toolchain on the embedded digits data, into one output folder.

train -> lower and quantize -> export (IR, Lava, ONNX) -> verify every backend against torch ->
energy -> hardware evaluation -> report.md. The folder is built under a temporary name beside the
target and renamed at the end, so an interrupted demo leaves no half-written output.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

from mlf_deploy.fileio import check_writable
from mlf_deploy.ir import save_graph
from mlf_deploy.outputs import check_output_dir, output_lock, staged_output
from mlf_deploy.training import TrainConfig, train
from mlf_deploy.verification.backends import demo_backends
from mlf_deploy.verification.verdict_text import drift_plot
from mlf_deploy.workflows.analysis import energy_report, evaluate_report
from mlf_deploy.workflows.demo_report import write_report
from mlf_deploy.workflows.demo_results import DemoResults
from mlf_deploy.workflows.options import DemoOptions, EnergyOptions, EvaluateOptions, VerifyOptions
from mlf_deploy.workflows.pipeline import load_pipeline
from mlf_deploy.workflows.verify import verify

VERIFY_FIELDS = ("reference", "samples", "accuracy", "top1_agreement", "spike_mismatches",
                 "spike_total", "state_mismatches", "logits_max_abs_diff", "tolerance",
                 "statistics", "within_tolerance")


def verify_block(report: dict) -> dict:
    """One verification run for summary.json: each run keeps its own sample count, so a backend
    run on 8 samples is never listed beside, or merged with, the same backend on 360."""
    return {"samples": report["samples"], "passed": report["passed"],
            "backends": {n: {k: b.get(k) for k in VERIFY_FIELDS}
                         for n, b in report["backends"].items()}}


def _dump(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, default=float) + "\n")


def run_demo(out_dir, options: DemoOptions | None = None, log=print) -> dict:
    """Run the demo into ``out_dir``; returns the summary also written to ``summary.json``.
    ``options.threads``: torch threads of every step (None: ``OMP_NUM_THREADS``, else training's
    fixed default), so the demo's figures do not depend on the machine's load."""
    options = options or DemoOptions()
    out = check_output_dir(out_dir, options.force, what="demo output folder")
    check_writable(out.parent / f".{out.name}.probe")  # creates the parent folder, nothing else
    with output_lock(out), staged_output(out, "demo") as stage:
        summary = _run(stage, options, log)
        check_output_dir(out, options.force, what="demo output folder")  # changed while we ran?
    summary["out"] = str(out)
    return summary


class _Steps:
    """Logs each step as it starts and records its seconds."""

    def __init__(self, log):
        self.log, self.seconds = log, {}

    @contextmanager
    def step(self, name: str):
        self.log(f"==> {name}")
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)


def _run(stage: Path, options: DemoOptions, log) -> dict:
    start, steps, quick = time.perf_counter(), _Steps(log), options.quick
    with steps.step("train"):
        trained = train(TrainConfig(dataset="digits", out_dir=str(stage / "train"), seed=0,
                                    epochs=4 if quick else None, threads=options.threads),
                        progress=options.progress, log=log)
    with steps.step("lower + quantize + export"):
        pipe = load_pipeline(trained["checkpoint"], weight_bits=8)
        lava_note = _export(pipe, stage / "exports")
    with steps.step("verify"):
        report, lava_report = _verify(pipe, stage, quick, lava_note is None, log)
    with steps.step("energy"):
        energy_text, energy = energy_report(pipe, EnergyOptions(plot_path=stage / "energy.png"))
        _dump(stage / "energy.json", energy)
    with steps.step("evaluate"):
        eval_text, evaluation = evaluate_report(pipe, EvaluateOptions(
            weight_bits=(8, 6, 4), samples=128 if quick else None, plot_dir=stage / "evaluate"),
            lowerings_text=False)  # the energy section has them
        _dump(stage / "evaluate.json", evaluation)
    summary = {
        "checkpoint": str(Path("train") / "checkpoint.pt"), "quick": quick,
        "test_accuracy": trained["test_accuracy"], "epochs": trained["epochs"],
        "passed": report["passed"] and (lava_report is None or lava_report["passed"]),
        "verify": verify_block(report),
        "verify_lava": verify_block(lava_report) if lava_report else None,
        "lava": lava_note or "ran", "synops_per_inference": energy["synops_per_inference"],
        "energy_pj": energy["energy_pj"], "ann_energy_pj": energy.get("ann_energy_pj"),
        "cores": evaluation["mapping"].get("cores"), "seconds": steps.seconds,
    }
    summary["seconds"]["total"] = round(time.perf_counter() - start, 2)
    write_report(stage / "report.md", DemoResults(
        summary, trained, pipe, report, lava_report, energy_text, energy.get("models", {}),
        eval_text, evaluation["mapping"]))
    _dump(stage / "summary.json", summary)
    return summary


def _export(pipe, exports: Path) -> str | None:
    """Every artifact of the trained model into ``exports``; returns why Lava cannot run here,
    or None when it can."""
    exports.mkdir()
    save_graph(pipe.graph_float, exports / "graph-float.mlfg")
    save_graph(pipe.graph_int, exports / "graph-int.mlfg")
    graded = pipe.graph("int", "graded")
    save_graph(graded, exports / "graph-int-graded.mlfg")
    from mlf_deploy.exporters.onnx.export import export_onnx, save_onnx
    for graph in (pipe.graph_float, pipe.graph_int):
        for mode in ("sequence", "step"):
            save_onnx(export_onnx(graph, mode), exports / f"model-{graph.numeric}-{mode}.onnx")
    save_onnx(export_onnx(graded, "sequence"), exports / "model-int-graded-sequence.onnx")
    from mlf_deploy.exporters.lava.export import export_lava
    from mlf_deploy.exporters.lava.lava_import import LavaUnavailable, import_lava
    export_lava(pipe.graph_int, exports / "lava")  # plain files: needs no lava-nc
    export_lava(graded, exports / "lava-graded")
    try:
        import_lava()
    except LavaUnavailable as exc:  # only a missing lava-nc skips the Lava run; any other
        return str(exc)  # failure of the Lava step fails the demo
    return None


def _verify(pipe, stage: Path, quick: bool, with_lava: bool, log) -> tuple[dict, dict | None]:
    """verify's summaries on the reference and ONNX backends and, when Lava runs here, on Lava
    (8 samples), written to verify.json and verify-lava.json with the per-layer drift plot."""
    report = verify(pipe, demo_backends("main"), VerifyOptions(samples=64 if quick else 360),
                    progress=lambda n: log(f"    running {n}"))
    lava_report = None
    if with_lava:
        lava_report = verify(pipe, demo_backends("lava"), VerifyOptions(samples=8),
                             progress=lambda n: log(f"    running {n} (8 samples)"))
    _dump(stage / "verify.json", report)
    ir_int = report["backends"]["ir-int"]
    drift_plot(ir_int["layer_check"], ir_int["populations"], stage / "drift.png")
    if lava_report:
        _dump(stage / "verify-lava.json", lava_report)
    return report, lava_report
