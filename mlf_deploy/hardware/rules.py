"""Design rules of a mapping, as small named functions (as :mod:`mlf_deploy.quantization.rules`).

Each rule takes ``(graph, mapping, target)`` and yields ``(node, message, excess)`` per failure,
``excess`` = what the node needs over what the target has (so the worst failure of a rule is
known); the fixed-point rules of an int graph come from
``find_violations(graph, REPRESENTABILITY_RULES)``.
"""

from __future__ import annotations

from mlf_deploy.hardware.paths import layers_from_input
from mlf_deploy.ir.semantics import STATE_BITS
from mlf_deploy.quantization.rules import REPRESENTABILITY_RULES, find_violations


def core_neurons_fit(graph, mapping, target):
    for c in mapping.core_list:
        if c.neurons > target.neurons_per_core:
            yield (c.layer, f"a core holds {c.neurons} neurons; the target has "
                   f"{target.neurons_per_core}", c.neurons / target.neurons_per_core)


def core_memory_fits(graph, mapping, target):
    worst = {}
    for c in mapping.core_list:
        worst[c.layer] = max(worst.get(c.layer, 0), c.synapse_bytes)
    for layer, b in worst.items():
        if b > target.synaptic_memory_bytes:
            yield layer, (f"one output row needs {b / 1024:.1f} KB of synapses per core; the "
                          f"target has {target.synaptic_memory_bytes / 1024:.0f} KB"), \
                b / target.synaptic_memory_bytes


def core_fan_in_fits(graph, mapping, target):
    for lm in mapping.layers:
        if lm.max_axons_in > target.fan_in_axons:
            yield lm.name, (f"a core needs {lm.max_axons_in} input axons even for one output row; "
                            f"the target takes {target.fan_in_axons}"), \
                lm.max_axons_in / target.fan_in_axons


def core_fan_out_fits(graph, mapping, target):
    for lm in mapping.layers:
        if lm.max_axons_out > target.fan_out_axons:
            yield lm.name, (f"a core sends {lm.max_axons_out} output edges; the target takes "
                            f"{target.fan_out_axons}"), lm.max_axons_out / target.fan_out_axons


def residual_delays_fit(graph, mapping, target):
    """Every synapse on the chip adds one step, so paths of different depth into one layer must be
    aligned with synaptic delays on the shorter ones (docs/references.md §2)."""
    depth = layers_from_input(graph)
    for layer in graph.layers:
        src = [0 if p.source == graph.input.name else depth[graph.nodes[p.source].layer]
               for p in graph.projections_into(layer.name)]
        if max(src) - min(src) > target.max_delay:
            yield layer.name, (f"paths into it differ by {max(src) - min(src)} layers; delays "
                               f"reach only {target.max_delay} steps"), \
                (max(src) - min(src)) / max(target.max_delay, 1)


def cores_fit_chips(graph, mapping, target):
    if mapping.cores > target.cores_per_chip * target.chips:
        yield graph.readout.name, (f"{mapping.cores} cores need {mapping.chips_needed} chip(s); "
                                   f"the target has {target.chips} chip(s) of "
                                   f"{target.cores_per_chip} cores"), \
            mapping.cores / (target.cores_per_chip * target.chips)


def weights_fit_target(graph, mapping, target):
    for p in graph.projections:
        if p.weight_bits > target.weight_bits:
            yield (p.target, f"projection {p.name}: {p.weight_bits}-bit weights; the target "
                   f"takes {target.weight_bits}", p.weight_bits / target.weight_bits)


def states_fit_target(graph, mapping, target):
    if graph.numeric == "int" and STATE_BITS > target.state_bits:
        yield (graph.input.name, f"the int graph assumes {STATE_BITS}-bit states; the target has "
               f"{target.state_bits}", STATE_BITS / target.state_bits)


HARDWARE_RULES = [core_neurons_fit, core_memory_fits, core_fan_in_fits, core_fan_out_fits,
                  residual_delays_fit, cores_fit_chips, weights_fit_target, states_fit_target]


def check_mapping(graph, mapping, target, rules=HARDWARE_RULES) -> list[tuple[str, str, str]]:
    """``(rule name, node, message)`` for every failure, the fixed-point rules included, each
    rule's failures worst first; weight and state widths are judged against ``target`` only
    (:func:`weights_fit_target`), so each fact is reported once."""
    failures = []
    for rule in rules:
        found = sorted(rule(graph, mapping, target), key=lambda f: -f[2])
        failures += [(rule.__name__, node, msg) for node, msg, _ in found]
    if graph.numeric == "int":
        failures += find_violations(graph, REPRESENTABILITY_RULES)
    return failures


def group_violations(violations) -> list[dict]:
    """One entry per rule, in the order found: ``{rule, count, nodes, node, message}`` with the
    rule's first failure, its worst (:func:`check_mapping` lists each rule's worst first).
    ``violations``: ``(rule, node, message)`` tuples or their dicts (``Mapping.to_dict``)."""
    groups: dict[str, dict] = {}
    for v in violations:
        rule, node, msg = (v["rule"], v["node"], v["message"]) if isinstance(v, dict) else v
        g = groups.setdefault(rule, {"rule": rule, "count": 0, "nodes": set(), "node": node,
                                     "message": msg})
        g["count"] += 1
        g["nodes"].add(node)
    return [{**g, "nodes": len(g["nodes"])} for g in groups.values()]


def violation_line(group: dict) -> str:
    """``DRC rule failed at node: message``, or for a rule failing in several places its count
    and its worst case."""
    if group["count"] == 1:
        return f"DRC {group['rule']} failed at {group['node']}: {group['message']}"
    return (f"DRC {group['rule']} failed {group['count']} times in {group['nodes']} node(s); "
            f"worst at {group['node']}: {group['message']}")


def violation_lines(violations) -> list[str]:
    """:func:`violation_line` of each rule that failed."""
    return [violation_line(g) for g in group_violations(violations)]
