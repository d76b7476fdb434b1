"""The typed options of each use case: one frozen dataclass per call, with its defaults, checked
once when it is made. The command layer builds them from its flags; a library caller builds them
directly. Messages name an option by its field (:func:`mlf_deploy.errors.option`), so a command
line shows its own flag for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlf_deploy.energy import PRESETS
from mlf_deploy.errors import UserError, option
from mlf_deploy.ir.semantics import WEIGHT_BITS_RANGE, valid_weight_bits
from mlf_deploy.verification.agreement import DEFAULT_TOLERANCE
from mlf_deploy.workflows.chip_report import SIMULATOR_SAMPLES, SIMULATORS

TARGETS = ("ir", "lava", "onnx", "nir")
SPIKES = ("binary", "graded")
SPLITS = ("train", "test")


def _one_of(name: str, value, choices) -> None:
    if value not in choices:
        raise UserError(f"{option(name)} must be one of {', '.join(map(repr, choices))}, "
                        f"got {value!r}")


def _at_least_one(name: str, value: int | None, what: str = "") -> None:
    if value is not None and value < 1:
        raise UserError(f"{option(name)} must be at least 1{what}, got {value}")


def _energy_model(name: str) -> None:
    if name not in PRESETS:
        raise UserError(f"unknown energy model {name!r}; choose one of {', '.join(PRESETS)}")


def _weight_bits(name: str, bits) -> None:
    if bits is not None and not valid_weight_bits(bits):
        raise UserError("{} must be an integer from {} to {}, got {!r}".format(
            option(name), *WEIGHT_BITS_RANGE, bits))


@dataclass(frozen=True)
class ExportOptions:
    """How :func:`~mlf_deploy.workflows.export_checkpoint.export_checkpoint` writes a graph."""

    target: str = "ir"  # ir (graph file), lava (folder), onnx (model) or nir (file)
    weight_bits: int | None = None  # int graph width; None: the fine-tuned width, else 8
    as_float: bool = False  # write the float graph, not the int one
    mode: str | None = None  # onnx only: "sequence" [default] or "step" (one timestep a call)
    logits_only: bool = False  # onnx sequence models only: the logits alone, no records
    nir_target: str = "snntorch"  # nir only: whose LIF discretisation the file targets
    nir_dequantised: bool = False  # nir only: the int graph dequantised, not the float graph
    spikes: str = "binary"  # lowering: binary or graded
    force: bool = False  # replace an earlier output of this tool
    data_dir: str | None = None  # where the checkpoint's dataset files live

    def __post_init__(self):
        _one_of("spikes", self.spikes, SPIKES)
        _weight_bits("weight_bits", self.weight_bits)
        if self.as_float and self.weight_bits is not None:
            raise UserError(f"{option('weight_bits', self.weight_bits)} sets the integer graph's "
                            f"width and {option('as_float')} exports the float graph; drop one "
                            "of them")
        if self.logits_only and (self.target != "onnx" or self.mode == "step"):
            raise UserError(f"{option('logits_only')} applies to {option('target', 'onnx')} "
                            "sequence models only (a step model carries its membranes from call "
                            f"to call); drop {option('logits_only')}")
        if self.mode is not None and self.target != "onnx":
            raise UserError(f"{option('mode', self.mode)} applies to {option('target', 'onnx')} "
                            f"only; a {self.target} export runs the whole sequence (drop "
                            f"{option('mode')})")
        if self.target not in TARGETS:
            raise UserError(f"unknown export target {self.target!r}; choose ir, lava, onnx or nir")
        _one_of("mode", self.mode or "sequence", ("sequence", "step"))
        if self.target == "nir" and self.spikes == "graded":
            raise UserError(f"NIR has no graded-spike neuron: export {option('target', 'nir')} "
                            f"with {option('spikes', 'binary')}")

    @property
    def onnx_mode(self) -> str:
        return self.mode or "sequence"


@dataclass(frozen=True)
class ImportOptions:
    """How :func:`~mlf_deploy.workflows.export_checkpoint.import_nir_file` reads a NIR file."""

    nir_source: str | None = None  # whose LIF discretisation; None: the file's label, snntorch
    timesteps: int | None = None  # per sample, for files that do not record them
    force: bool = False  # replace an earlier output of this tool

    def __post_init__(self):
        _at_least_one("timesteps", self.timesteps)


@dataclass(frozen=True)
class VerifyOptions:
    """Which samples :func:`~mlf_deploy.workflows.verify.verify` runs, and its accuracy bar."""

    samples: int | None = 16  # first N samples of the split; None: all
    split: str = "test"
    chunk: int | None = None  # samples per chunk; None: what keeps a record under 128 MB
    tolerance: float = DEFAULT_TOLERANCE  # accuracy ir-int may lose against ir-float (fraction)

    def __post_init__(self):
        _at_least_one("samples", self.samples)
        _one_of("split", self.split, SPLITS)
        _at_least_one("chunk", self.chunk, " sample")
        if not 0 <= self.tolerance <= 1:
            raise UserError(f"{option('tolerance')} is a fraction of accuracy from 0 to 1, got "
                            f"{self.tolerance}")


@dataclass(frozen=True)
class RunOptions:
    """How :func:`~mlf_deploy.workflows.run_artifact.run_artifact` runs raw samples."""

    batch_size: int | None = None  # samples at a time; None: 32, fewer for a recording ONNX
    labels_path: str | None = None  # class indices (.npy, .npz or text): adds the accuracy
    trust_input: bool = False  # skip the raw-units check (shape, NaN and inf still refused)
    device: str = "cpu"  # where a graph file's reference simulator runs

    def __post_init__(self):
        _at_least_one("batch_size", self.batch_size)


@dataclass(frozen=True)
class EnergyOptions:
    """What :func:`~mlf_deploy.workflows.analysis.energy_report` runs and prices."""

    split: str = "test"
    samples: int | None = None  # first N samples; None: all
    energy_model: str = "45nm-fp32"  # of the table and plots (the JSON has every model)
    plot_path: Any = None  # PNG of per-layer SynOps and energy (and its _lowerings companion)
    spikes: str = "binary"  # the lowering run
    simulator: str | None = None  # "sanafe": also price with SANA-FE's Loihi 1 model
    simulator_samples: int = SIMULATOR_SAMPLES  # samples SANA-FE runs

    def __post_init__(self):
        _one_of("split", self.split, SPLITS)
        _at_least_one("samples", self.samples)
        _energy_model(self.energy_model)
        _one_of("spikes", self.spikes, SPIKES)
        _one_of("simulator", self.simulator, (None, *SIMULATORS))
        _at_least_one("simulator_samples", self.simulator_samples)


@dataclass(frozen=True)
class EvaluateOptions:
    """What :func:`~mlf_deploy.workflows.analysis.evaluate_report` sweeps and maps."""

    weight_bits: tuple[int, ...] | None = None  # widths swept, the first mapped; see widths()
    timesteps: tuple[int, ...] | None = None  # inference timesteps; None: 1..T of the model
    split: str = "test"
    samples: int | None = None  # first N samples; None: all
    energy_model: str = "45nm-fp32"
    weight_sharing: bool = False  # conv weights shared per core (Loihi 2 conv synapses)
    plot_dir: Any = None  # folder for accuracy_energy.png, layers.png and lowerings.png
    spikes: str = "binary"  # the lowering mapped

    def __post_init__(self):
        if self.weight_bits is not None:
            if not self.weight_bits:
                raise UserError(f"{option('weight_bits')} names no width; give at least one")
            for bits in self.weight_bits:
                _weight_bits("weight_bits", bits)
        for steps in self.timesteps or ():
            _at_least_one("timesteps", steps)
        _one_of("split", self.split, SPLITS)
        _at_least_one("samples", self.samples)
        _energy_model(self.energy_model)
        _one_of("spikes", self.spikes, SPIKES)

    def widths(self, own_bits: int) -> list[int]:
        """The widths swept: those given, else the model's own ``own_bits`` first, then 8, 6, 4."""
        return list(self.weight_bits or dict.fromkeys([own_bits, 8, 6, 4]))


@dataclass(frozen=True)
class DemoOptions:
    """How :func:`~mlf_deploy.workflows.demo.run_demo` runs."""

    quick: bool = False  # fewer epochs and samples (CI: under 3 minutes)
    force: bool = False  # replace an earlier demo folder
    progress: bool = True  # progress bars
    threads: int | None = None  # torch threads of every step; None: OMP_NUM_THREADS, else 1

    def __post_init__(self):
        _at_least_one("threads", self.threads)
