"""Hardware-oriented evaluation (issue 7): mapping a deployment graph onto a Loihi-2-like target
(:mod:`.target`, :mod:`.mapping`, :mod:`.rules`) and accuracy / SynOps / energy / latency sweeps
(:mod:`.sweep`) with their plots (:mod:`.plots`). A backend comes in as a *runner* callable, so
nothing here imports one."""

from mlf_deploy.hardware.mapping import Mapping, layer_depths, map_graph, pipeline_depth
from mlf_deploy.hardware.rules import HARDWARE_RULES, check_mapping
from mlf_deploy.hardware.target import LOIHI2, Target

__all__ = ["Mapping", "map_graph", "layer_depths", "pipeline_depth", "HARDWARE_RULES",
           "check_mapping", "LOIHI2", "Target"]
