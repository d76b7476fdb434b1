r"""Hardware resources of the binary and the graded lowering of one network, side by side.

Both forms compute the same per-level spikes (bit for bit, checked by ``verify``), so one run's
level spikes price both: a binary level spike is one message and, per target synapse, one
accumulate (AC); a graded neuron sends one message per step in which any level fired, carrying the
count, and each target synapse does one multiply-accumulate by that payload. Static columns come
from the graphs: neurons (compartments) and state registers, weights stored once per projection
(a conv kernel per source; the binary form repeats it per source population), the synapses a
per-synapse store would expand them to, and cores/chips of the Loihi-2-like mapping.

Energy of a graded synaptic op is not published for Loihi 2 (docs/energy.md), so it is given as a
ratio ``r`` to a binary op: with ``ops_g`` graded ops and ``synops_b`` binary ones, the graded form
spends less synaptic energy exactly when ``r < synops_b / ops_g`` (the break-even ratio).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mlf_deploy.energy.counting import projection_fanout, spike_counts
from mlf_deploy.energy.op_energy import INT8_AC_PJ, INT8_MAC_PJ, LOIHI1_SYNOP_PJ
from mlf_deploy.hardware.layer_costs import mapped_weight_bits, registers_per_neuron
from mlf_deploy.hardware.mapping import map_graph
from mlf_deploy.hardware.rules import violation_lines
from mlf_deploy.hardware.target import LOIHI2, Target
from mlf_deploy.ir import Graph
from mlf_deploy.results import RunResult
from mlf_deploy.run_totals import fired_samples

# Lava's graded ports carry 24-bit payloads (precision=24; lava proc/graded, proc/sdn models).
GRADED_PAYLOAD_BITS = 24
# ASSUMPTION (no published Loihi 2 figure): a neuron program holds at most 8 state registers.
MAX_REGISTERS_PER_NEURON = 8
# Graded-op energy ratios shown: 1 (ASSUMPTION: the weight read dominates, as on Loihi 1 where a
# SynOp is 23.6 pJ against a sub-pJ add) and Horowitz's 45 nm INT8 MAC/AC (0.23/0.03 pJ, cited).
GRADED_OP_RATIOS = {"same-as-AC (assumption)": 1.0,
                    "int8 MAC/AC (Horowitz)": INT8_MAC_PJ / INT8_AC_PJ}


@dataclass
class FormResources:
    spikes: str
    neurons: int
    registers: int
    registers_per_neuron: int
    projections: int
    weights_stored: int
    synaptic_memory_bytes: float
    expanded_synapses: int
    spike_messages: float  # per inference
    synaptic_ops: float  # per inference, readout included; ACs (binary) or payload MACs (graded)
    cores: int | None  # None: not mapped
    chips: int | None
    violations: list = field(default_factory=list)


def _sender_events(graph: Graph, result: RunResult, sender: str, graded: bool) -> np.ndarray:
    """Messages per position over time and batch ``(C, H, W)``: spikes, or steps with a payload."""
    levels = graph.sender_levels(sender)
    if graded:
        return fired_samples(result, levels).sum(axis=0)
    return sum(spike_counts(result, n) for n in levels)


def form_resources(graph: Graph, result: RunResult, target: Target = LOIHI2,
                   mapping: bool = True) -> FormResources:
    """Resources of ``graph`` (binary or graded) priced with ``result``'s per-level spikes;
    ``mapping=False`` leaves cores and chips out (None)."""
    batch, graded = result.batch, graph.graded
    events = {p.name: _sender_events(graph, result, p.name, graded) for p in graph.populations}
    fans = {p.name: projection_fanout(graph, p) for p in graph.projections}
    ops = 0
    for p in graph.projections:
        if p.source != graph.input.name:
            ops += int((events[p.source] * fans[p.name]).sum())
    classes = graph.readout.weight.shape[0]
    ops += sum(int(events[s].sum()) for s in graph.readout.sources) * classes
    placed = map_graph(graph, target) if mapping else None
    size = lambda shape: int(np.prod(shape))
    return FormResources(
        graph.spikes, sum(size(p.shape) for p in graph.populations),
        sum(size(p.shape) * registers_per_neuron(graph, p.layer) for p in graph.populations),
        max(registers_per_neuron(graph, layer.name) for layer in graph.layers),
        len(graph.projections), sum(int(np.asarray(p.weight).size) for p in graph.projections),
        sum(np.asarray(p.weight).size * mapped_weight_bits(p, target) / 8
            for p in graph.projections),
        sum(int(fan.sum()) for fan in fans.values()),
        float(sum(int(e.sum()) for e in events.values())) / batch, ops / batch,
        placed.cores if placed else None, placed.chips_needed if placed else None,
        [list(v) for v in (placed.violations if placed else [])]
        + [list(v) for v in graded_violations(graph)])


def graded_violations(graph: Graph) -> list[tuple[str, str, str]]:
    """Design rules of the graded form: payload width and state registers per neuron."""
    out = []
    for p in graph.populations if graph.graded else []:
        bits = p.payload_bits
        if bits > GRADED_PAYLOAD_BITS:
            out.append(("graded_payload_fits", p.name, f"payload 0..{p.levels} needs {bits} bits; "
                        f"graded spikes carry {GRADED_PAYLOAD_BITS}"))
        regs = registers_per_neuron(graph, p.layer)
        if regs > MAX_REGISTERS_PER_NEURON:
            out.append(("registers_per_neuron_fit", p.name, f"{regs} state registers per neuron; "
                        f"assumed limit {MAX_REGISTERS_PER_NEURON}"))
    return out


def compare_forms(binary: Graph, graded: Graph, result: RunResult, target: Target = LOIHI2,
                  mapping: bool = True) -> dict:
    """Both forms' resources, the ratios binary/graded, and the graded-op energy sensitivity."""
    b, g = (form_resources(graph, result, target, mapping) for graph in (binary, graded))
    ratio = lambda key: getattr(b, key) / getattr(g, key) if getattr(g, key) else None
    break_even = ratio("synaptic_ops")
    energy = {name: {"binary_pj": b.synaptic_ops * LOIHI1_SYNOP_PJ,
                     "graded_pj": g.synaptic_ops * LOIHI1_SYNOP_PJ * r, "graded_op_ratio": r}
              for name, r in GRADED_OP_RATIOS.items()}
    return {"binary": asdict(b), "graded": asdict(g),
            "binary_over_graded": {k: ratio(k) for k in (
                "neurons", "registers", "weights_stored", "synaptic_memory_bytes",
                "expanded_synapses", "spike_messages", "synaptic_ops", "cores")},
            "break_even_graded_op_ratio": break_even, "binary_op_pj": LOIHI1_SYNOP_PJ,
            "synaptic_energy": energy, "samples": result.batch}


COLUMNS = [("neurons", "neurons", "{:,.0f}"), ("registers", "state registers", "{:,.0f}"),
           ("registers_per_neuron", "registers/neuron", "{:d}"),
           ("projections", "projections", "{:,d}"),
           ("synaptic_memory_bytes", "weights stored (KB)", "{:,.1f}"),
           ("expanded_synapses", "expanded synapses", "{:,d}"),
           ("spike_messages", "spike messages/inf", "{:,.0f}"),
           ("synaptic_ops", "synaptic ops/inf", "{:,.0f}"), ("cores", "cores", "{:d}"),
           ("chips", "chips", "{:d}")]


def format_cell(value, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def forms_table(cmp: dict) -> str:
    """A text table of :func:`compare_forms`: one row per column, binary | graded | ratio."""
    rows = [f"{'resource':<22} {'binary':>14} {'graded':>14} {'binary/graded':>13}"]
    for key, label, fmt in COLUMNS:
        b, g = cmp["binary"][key], cmp["graded"][key]
        if key == "synaptic_memory_bytes":
            b, g = b / 1024, g / 1024
        r = cmp["binary_over_graded"].get(key)
        rows.append(f"{label:<22} {format_cell(b, fmt):>14} {format_cell(g, fmt):>14} "
                    f"{'' if r is None else f'{r:.2f}x':>13}")
    drc = cmp["graded"]["violations"]
    rows.append(f"{'DRC violations':<22} {len(cmp['binary']['violations']):>14} {len(drc):>14}"
                + "".join(f"\n  {form}: {line}" for form in ("binary", "graded")
                          for line in violation_lines(cmp[form]["violations"])))
    rows.append(f"synaptic ops: binary = one AC per spike per synapse; graded = one multiply by "
                f"the "
                f"payload per message per synapse. Graded wins on synaptic energy while a graded "
                f"op "
                f"costs < {cmp['break_even_graded_op_ratio']:.2f}x a binary op. These are "
                f"synaptic energies only; an energy model's total (the table above, e.g. "
                f"loihi1-proxy) also prices neuron updates and the input, so it is larger.")
    for name, e in cmp["synaptic_energy"].items():
        rows.append(f"  at {e['graded_op_ratio']:.2f}x ({name}), {cmp['binary_op_pj']} pJ/binary "
                    f"op "
                    f"(Loihi 1 proxy): binary {e['binary_pj'] / 1e6:.3f} uJ, graded "
                    f"{e['graded_pj'] / 1e6:.3f} uJ per inference")
    return "\n".join(rows)
