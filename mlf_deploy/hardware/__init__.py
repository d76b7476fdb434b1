"""Hardware-oriented evaluation: mapping a deployment graph onto a Loihi-2-like target
(:mod:`.target`, :mod:`.mapping`, :mod:`.rules`) and accuracy / SynOps / energy / latency sweeps
(:mod:`.sweep`) with their plots (:mod:`.plots`). A backend comes in as a *runner* callable, so
nothing here imports one."""

from mlf_deploy.hardware.mapping import Mapping, map_graph
from mlf_deploy.hardware.paths import layers_from_input, pipeline_depth
from mlf_deploy.hardware.rules import HARDWARE_RULES, check_mapping
from mlf_deploy.hardware.target import LOIHI2, Target

__all__ = ["Mapping", "map_graph", "layers_from_input", "pipeline_depth", "HARDWARE_RULES",
           "check_mapping", "LOIHI2", "Target"]
