"""A mapping that fails a design rule in many places says so once per rule: how many failures,
in how many nodes, and the worst of them (largest need over the target's limit)."""

from __future__ import annotations

from conftest import make_graphs, make_model

from mlf_deploy.hardware import Target, map_graph
from mlf_deploy.hardware.rules import group_violations
from mlf_deploy.workflows.demo_report import _drc_lines

# small enough that many layers of the tiny net fail two rules
TIGHT = Target(fan_in_axons=60, synaptic_memory_bytes=256)


def _mapping():
    _, g_int = make_graphs(make_model())
    return map_graph(g_int, TIGHT)


def test_each_failing_rule_is_one_line_with_its_count_and_worst_case():
    m = _mapping()
    rules = [r for r, _, _ in m.violations]
    assert rules.count("core_fan_in_fits") > 1 and rules.count("core_memory_fits") > 1
    drc = [line for line in m.table().splitlines() if line.startswith("DRC ")]
    assert len(drc) == len(set(rules))
    # the worst case, found here from the mapping's own figures
    fan_in = max(m.layers, key=lambda lm: lm.max_axons_in)
    line = next(x for x in drc if "core_fan_in_fits" in x)
    count = rules.count("core_fan_in_fits")
    assert f"failed {count} times in {count} node(s); worst at {fan_in.name}: a core needs " \
           f"{fan_in.max_axons_in} input axons" in line
    memory = max(m.core_list, key=lambda c: c.synapse_bytes)
    line = next(x for x in drc if "core_memory_fits" in x)
    assert f"worst at {memory.layer}: one output row needs {memory.synapse_bytes / 1024:.1f} KB" \
        in line
    summary = next(x for x in m.table().splitlines() if " cores on " in x)
    assert f"{len(m.violations)} DRC failure(s)" in summary


def test_the_demo_report_groups_them_too():
    m = _mapping()
    groups = group_violations(m.to_dict()["violations"])
    assert sum(g["count"] for g in groups) == len(m.violations)
    lines = _drc_lines(m.to_dict())
    assert f"found {len(m.violations)} violation(s)" in lines[0]
    assert len(lines) == 1 + len(groups)
    for g, line in zip(groups, lines[1:]):
        if g["count"] == 1:
            assert line.startswith(f"- `{g['rule']}` at `{g['node']}`: {g['message']}")
        else:
            assert line.startswith(f"- `{g['rule']}` {g['count']} times in {g['nodes']} node(s), "
                                   f"worst at `{g['node']}`: {g['message']}")
    assert any(g["count"] > 1 for g in groups)


def test_a_single_failure_keeps_its_one_line():
    _, g_int = make_graphs(make_model())
    tight = map_graph(g_int, Target(cores_per_chip=4))
    drc = [line for line in tight.table().splitlines() if line.startswith("DRC ")]
    assert drc == [f"DRC cores_fit_chips failed at {g_int.readout.name}: {tight.cores} cores "
                   f"need {tight.chips_needed} chip(s); the target has 1 chip(s) of 4 cores"]
