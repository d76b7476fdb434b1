"""SynOps and energy per inference of a deployment graph from a measured run.

Counting (:mod:`.counting`) is exact and graded: every spike of every level population costs its
fan-out, borders included. Pricing (:mod:`.breakdown`) uses named, cited per-op constants
(:mod:`.models`). Nothing here imports a backend: a run's :class:`~mlf_deploy.results.RunResult`
comes in as data.
"""

from mlf_deploy.energy.breakdown import EnergyBreakdown, LayerEnergy, estimate, worst_case_result
from mlf_deploy.energy.counting import (
                                        ann_macs,
                                        conv_fanout,
                                        input_ops,
                                        projection_fanout,
                                        projection_synops,
                                        readout_synops,
)
from mlf_deploy.energy.op_energy import PRESETS, EnergyModel

__all__ = ["EnergyBreakdown", "LayerEnergy", "estimate", "worst_case_result", "ann_macs",
           "conv_fanout", "input_ops", "projection_fanout", "projection_synops", "readout_synops",
           "PRESETS", "EnergyModel"]
