"""Export a deployment graph as a Lava folder, after refusing what Lava cannot run exactly.

The processes themselves are built by :mod:`mlf_deploy.exporters.lava.lava_build` (numpy + lava
only), which the exported folder holds a copy of, so the exported network is built by the code the
tests check. See docs/lava.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mlf_deploy.exporters.lava.lava_build import (  # noqa: F401 - the builder's names, as before
    build_processes,
    correlate,
    host_fed,
    lava_shape,
    lava_step_offsets,
    lava_weight,
)
from mlf_deploy.exporters.lava.readme_text import README as _README
from mlf_deploy.ir import portable
from mlf_deploy.ir import semantics as sem
from mlf_deploy.outputs import check_output_dir, staged_output
from mlf_deploy.quantization.rules import LOIHI_RULES, RuleViolation, check_rules


# -- Lava-specific design rules (on top of LOIHI_RULES) -----------------------------------------
def lava_conv_weight_exp_nonnegative(graph):
    """Lava's fixed_pt Conv ignores weight_exp; a non-negative one is folded into the weights, a
    negative one (floor shift) is only possible for input projections, which run on the host."""
    for p in graph.projections:
        layer = graph.nodes[p.target]
        if graph.numeric == "int" and p.kind == "conv2d" and p.source != graph.input.name \
                and layer.weight_exp < 0:
            yield layer.name, f"projection {p.name}: weight exponent {layer.weight_exp} < 0"


def lava_projection_kind_supported(graph):
    for p in graph.projections:
        if p.kind not in ("conv2d", "dense"):
            yield p.target, f"projection {p.name}: kind {p.kind!r} has no Lava process"


LAVA_RULES = [lava_conv_weight_exp_nonnegative, lava_projection_kind_supported]


def check_lava(graph) -> None:
    """Refuse a graph Lava cannot run exactly, naming rule and node, before any process exists."""
    if graph.numeric == "int":
        return check_rules(graph, LOIHI_RULES + LAVA_RULES)
    fails = [f"{r.__name__} failed at {n}: {m}" for r in LAVA_RULES[1:] for n, m in r(graph)]
    if fails:
        raise RuleViolation("; ".join(fails[:5]))


# -- export --------------------------------------------------------------------------------------
SHIPPED = ("run_lava_network.py", "lava_build.py", "lava_delay.py", "lava_graded.py",
           "lava_import.py")
"""The modules of this folder the exported folder holds (beside ``portable.py``), copied whole."""


def export_lava(graph, out_dir, force: bool = False, protect=()) -> Path:
    """Write ``graph.mlfg``, ``run_lava_network.py`` with the modules it imports (:data:`SHIPPED`
    and ``portable.py``; numpy + lava only), ``input.json`` and ``README.md`` into ``out_dir``,
    atomically (a staging folder renamed into place). An existing ``out_dir`` is replaced only
    with ``force`` and only if it is an earlier export of ours."""
    from mlf_deploy.ir import save_graph

    check_lava(graph)
    out = check_output_dir(out_dir, force, protect, what="Lava export folder")
    with staged_output(out, "lava-export") as tmp:
        save_graph(graph, tmp / "graph.mlfg")
        here = Path(__file__).parent
        for name in SHIPPED:
            shutil.copyfile(here / name, tmp / name)
        shutil.copyfile(portable.__file__, tmp / "portable.py")
        (tmp / "README.md").write_text(_README)
        (tmp / "input.json").write_text(json.dumps(sem.describe_input(graph), indent=1) + "\n")
    return out
