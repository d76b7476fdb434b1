"""What the demo's steps produced, handed to its report as one value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DemoResults:
    """Each step's result, as :func:`~mlf_deploy.workflows.demo_report.write_report` reads them."""

    summary: dict  # what summary.json holds: verdict, accuracy, energy, seconds per step
    trained: dict  # training's result: checkpoint, epochs, test accuracy
    pipe: Any  # the :class:`~mlf_deploy.workflows.pipeline.Pipeline` of the trained checkpoint
    report: dict  # verify's summary on the reference and ONNX backends
    lava_report: dict | None  # verify's summary on the Lava backends; None when Lava did not run
    energy_text: str  # the energy table as printed
    energy_models: dict  # energy.json's "models": each energy model's note
    eval_text: str  # the hardware evaluation as printed
    mapping: dict  # evaluate.json's "mapping": the target, its cores and design-rule violations
