"""Fixed-point limits as small named rules, checked together (in the style of rockpool's Xylo DRC).

Each rule takes an int graph and yields ``(node name, message)`` for every violation. Limits follow
Loihi as Lava's ``bit_accurate_loihi`` LIF models it (docs/references.md §2): 24-bit membrane,
17-bit unsigned threshold mantissa (the membrane threshold is ``vth << 6``), 13-bit signed bias
mantissa with a 3-bit exponent, 12-bit decays, weight exponents -8..7.
"""

from __future__ import annotations

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.ir.semantics import (
    DECAY_BITS,
    LOIHI_WEIGHT_BITS,
    MEMBRANE_GAIN,
    V_MAX,
    signed_limit,
)

THRESHOLD_MANT_MAX = 2 ** 17 - 1
BIAS_MANT_MAX = 2 ** 12 - 1
BIAS_EXP_MAX = 7
WEIGHT_EXP_RANGE = (-8, 7)


class RuleViolation(UserError):
    """One or more fixed-point rules failed; the message names each rule and node."""


def threshold_is_positive(graph):
    for p in graph.level_populations:
        if p.v_threshold <= 0:
            yield p.name, f"threshold mantissa is {p.v_threshold} (rounds to zero or below): " \
                          "use more weight bits or a larger threshold_bits"


def threshold_fits_17_bits(graph):
    for p in graph.level_populations:
        if p.v_threshold > THRESHOLD_MANT_MAX:
            yield p.name, f"threshold mantissa {p.v_threshold} exceeds {THRESHOLD_MANT_MAX}"


def retention_fits_12_bits(graph):
    for p in graph.level_populations:
        r = p.v_retention * 2 ** DECAY_BITS
        if r != round(r) or not 0 <= r <= 2 ** DECAY_BITS:
            yield p.name, f"retention {p.v_retention} is not a multiple of 2^-12 in [0, 1]"


def bias_fits_13_bits(graph):
    for layer in graph.layers:
        if layer.bias.size and int(np.abs(layer.bias).max()) > BIAS_MANT_MAX:
            yield layer.name, f"bias mantissa exceeds +-{BIAS_MANT_MAX}"
        if not 0 <= layer.bias_exp <= BIAS_EXP_MAX:
            yield layer.name, f"bias exponent {layer.bias_exp} outside 0..{BIAS_EXP_MAX}"


def weight_exp_in_range(graph):
    lo, hi = WEIGHT_EXP_RANGE
    for layer in graph.layers:
        if not lo <= layer.weight_exp <= hi:
            yield layer.name, f"weight exponent {layer.weight_exp} outside {lo}..{hi}"


def weights_fit_their_bits(graph):
    for p in graph.projections:
        limit = signed_limit(p.weight_bits)
        if int(np.abs(p.weight).max()) > limit:
            yield p.target, f"projection {p.name}: weight mantissa exceeds {p.weight_bits} bits"


def weights_fit_loihi(graph):
    for p in graph.projections:
        if p.weight_bits > LOIHI_WEIGHT_BITS:
            yield p.target, f"projection {p.name}: {p.weight_bits}-bit weights; Loihi takes " \
                            f"at most {LOIHI_WEIGHT_BITS}"


def threshold_below_state_limit(graph):
    for p in graph.level_populations:
        if MEMBRANE_GAIN * p.v_threshold >= V_MAX:
            yield p.name, "membrane threshold (64 x mantissa) is not below the 24-bit state limit"


REPRESENTABILITY_RULES = [threshold_is_positive, threshold_fits_17_bits, retention_fits_12_bits,
                          bias_fits_13_bits, weight_exp_in_range, weights_fit_their_bits,
                          threshold_below_state_limit]
LOIHI_RULES = REPRESENTABILITY_RULES + [weights_fit_loihi]


def find_violations(graph, rules) -> list[tuple[str, str, str]]:
    """``(rule name, node, message)`` for every failure of every rule."""
    if graph.numeric != "int":
        raise UserError("fixed-point rules apply to int graphs; quantize the graph first")
    return [(rule.__name__, node, msg) for rule in rules for node, msg in rule(graph)]


def check_rules(graph, rules) -> None:
    failures = find_violations(graph, rules)
    if failures:
        lines = [f"{rule} failed at {node}: {msg}" for rule, node, msg in failures[:5]]
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        raise RuleViolation("; ".join(lines) + more)
