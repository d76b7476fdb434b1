"""Both lowerings priced per event on Loihi 1 (our bill), and SANA-FE beside it when asked.

``energy`` and ``evaluate`` print :func:`chip_report`; ``energy --simulator sanafe`` adds the
SANA-FE run on the first samples and the ratio of each of its energy categories to our bill on
the same samples.
"""

from __future__ import annotations

from mlf_deploy.energy.chip_bill import SANAFE_GROUPS, ChipTally, bill_table, chip_bill
from mlf_deploy.errors import UserError
from mlf_deploy.graded_lowering import with_spikes
from mlf_deploy.hardware.loihi1 import LOIHI1
from mlf_deploy.hardware.mapping import map_graph
from mlf_deploy.hardware.resources import GRADED_OP_RATIOS
from mlf_deploy.results import RunResult

SIMULATORS = ("sanafe",)
SIMULATOR_SAMPLES = 4  # SANA-FE builds every synapse; a few samples price a network well


def first_samples(result: RunResult, n: int) -> RunResult:
    return RunResult(result.backend, result.numeric,
                     {k: v[:, :n] for k, v in result.spikes.items()},
                     {k: v[:, :n] for k, v in result.states.items()}, result.logits[:n])


def chip_tallies(graph_int) -> dict:
    """Empty tallies of our Loihi 1 bill: the binary lowering, and the graded one at each assumed
    payload-op ratio. Add every run of the int graph (level spikes) to each."""
    mapping = map_graph(graph_int, LOIHI1)
    graded_graph = with_spikes(graph_int, "graded")
    graded_mapping = map_graph(graded_graph, LOIHI1)
    tallies = {"binary": ChipTally(graph_int, mapping)}
    for ratio in GRADED_OP_RATIOS.values():
        tallies[f"graded {ratio:.2f}x"] = ChipTally(graded_graph, graded_mapping,
                                                    graded_op_ratio=ratio)
    return tallies


def chip_report(graph_int, tallies: dict, result: RunResult | None = None,
                simulator: str | None = None,
                simulator_samples: int = SIMULATOR_SAMPLES) -> tuple[str, dict]:
    """Our Loihi 1 bill of the binary and graded lowerings (graded at each assumed payload-op
    ratio) from ``tallies`` (:func:`chip_tallies`, filled with every run, chunk by chunk), and
    with ``simulator="sanafe"`` SANA-FE's figures for the binary lowering on the first samples
    of ``result``."""
    if simulator not in (None, *SIMULATORS):
        raise UserError(f"unknown simulator {simulator!r}; choose {', '.join(SIMULATORS)}")
    bills = {name: tally.bill() for name, tally in tallies.items()}
    mapping, graded_mapping = tallies["binary"].mapping, next(
        t.mapping for name, t in tallies.items() if name != "binary")
    samples = bills["binary"].samples
    lines = [f"Loihi 1 per-event bill (SANA-FE's constants, our mapping: {mapping.cores} cores "
             f"binary, {graded_mapping.cores} graded), pJ per inference over {samples} "
             "samples; graded columns at the assumed payload-op/binary-op ratio named in "
             "docs/energy.md:", bill_table(bills)]
    out = {"costs": "loihi1-sanafe", "bills": {k: b.to_dict() for k, b in bills.items()},
           "graded_payload": {name: {"ratio": r, "source": "assumption" if r == 1.0 else
                                     "Horowitz ISSCC 2014 45 nm int8 MAC/AC"}
                              for name, r in GRADED_OP_RATIOS.items()}}
    if simulator == "sanafe":
        from mlf_deploy.runtimes.sanafe_check import sanafe_spikes, spike_mismatches
        from mlf_deploy.runtimes.sanafe_chip import import_sanafe, sanafe_bill
        import_sanafe()
        sub = first_samples(result, simulator_samples)
        ours = chip_bill(graph_int, sub, mapping)
        sim = sanafe_bill(graph_int, sub, mapping)
        check = spike_mismatches(graph_int, sub, sanafe_spikes(graph_int, sub, mapping))
        sim["spike_check"] = {"mismatches": sum(m for m, _ in check.values()),
                              "compared": sum(n for _, n in check.values()),
                              "how": "each layer fed ir-int's input spikes; input layer fed"}
        ratio = {g: (sim["energy_pj"][g] / ours.groups_pj[g]) if ours.groups_pj[g] else None
                 for g in SANAFE_GROUPS}
        ratio["total"] = sim["total_pj"] / ours.total_pj
        ratio["latency"] = sim["latency_s"] / ours.latency_s
        out["sanafe"] = {**sim, "ours_pj": ours.groups_pj, "ours_total_pj": ours.total_pj,
                         "ours_latency_s": ours.latency_s, "sanafe_over_ours": ratio}
        lines += ["", f"SANA-FE 2.2.9 (Loihi 1), binary lowering, first {sub.batch} samples, "
                  f"activity {sim['activity']}; {sim['runs']} run(s), {sim['seconds']:.1f} s:",
                  f"{'category':<10} {'SANA-FE pJ':>14} {'ours pJ':>14} {'ratio':>7}"]
        for g in SANAFE_GROUPS:
            r = ratio[g]
            lines.append(f"{g:<10} {sim['energy_pj'][g]:>14,.0f} {ours.groups_pj[g]:>14,.0f} "
                         f"{'n/a' if r is None else f'{r:.4f}':>7}")
        lines.append(f"{'sum':<10} {sim['total_pj']:>14,.0f} {ours.total_pj:>14,.0f} "
                     f"{ratio['total']:>7.4f}")
        lines.append(f"{'latency us':<10} {sim['latency_s'] * 1e6:>14.2f} "
                     f"{ours.latency_s * 1e6:>14.2f} {ratio['latency']:>7.4f}")
        sc = sim["spike_check"]
        lines.append(f"spikes: SANA-FE's LIFs set to our fixed-point rule, {sc['how']}: "
                     f"{sc['mismatches']} mismatches in {sc['compared']:,} neuron-steps "
                     f"({'reproduced' if sc['mismatches'] == 0 else 'NOT reproduced'})")
    return "\n".join(lines), out
