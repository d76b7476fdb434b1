"""A verdict on a lossy backend that does not depend on how many samples were run.

An approximate backend (the quantized graph) is allowed to change the predicted class on a small
fraction of inputs. A fixed accuracy gap cannot be judged on a few samples (one flipped sample out
of 16 is 6.25 points), so the rule is a one-sided binomial test on the paired top-1 disagreements
with the reference on the same samples:

    H0: the backend disagrees with its reference on at most ``bound`` of all inputs.

The backend fails only when the data reject H0 at level ``alpha``, i.e. when the one-sided
Clopper-Pearson lower confidence bound of the disagreement rate exceeds ``bound``. A backend that
truly disagrees on at most ``bound`` of inputs therefore fails with probability at most ``alpha``
at every sample count, and one that disagrees more fails with a probability that grows with the
sample count. The two-sided 95 % interval is reported with every verdict.
"""

from __future__ import annotations

from scipy.stats import beta

DISAGREEMENT_BOUND = 0.02  # at most 2 % of top-1 predictions may change under 8-bit quantization
ALPHA = 0.05

# A class-level test on 16 samples detects only gross faults: the digits network absorbs a doubled
# threshold in any single population with at most 1 class change in 16. Spikes are millions of
# paired observations even then, and the fraction that 8-bit rounding flips is a property of the
# graph, not of the sample count (2.134 % on 16 samples, 2.137 % on 360, for the quick digits
# model; 2.19 % for the full one). A doubled level-0 threshold in the first four layers raises it
# to 3.1-5.2 %. The bound is calibrated on those models for 8-bit weights and wider; narrower
# weights round more, so there only the class-level test applies.
SPIKE_MISMATCH_BOUND = 0.03
SPIKE_BOUND_MIN_BITS = 8


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial confidence interval of a rate seen ``k`` times in ``n``."""
    if n <= 0:
        return 0.0, 1.0
    tail = (1 - confidence) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(tail, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - tail, k + 1, n - k))
    return lo, hi


def one_sided_lower(k: int, n: int, alpha: float = ALPHA) -> float:
    """The one-sided (1 - alpha) lower confidence bound of the rate."""
    return 0.0 if k == 0 or n <= 0 else float(beta.ppf(alpha, k, n - k + 1))


def disagreement_verdict(k: int, n: int, bound: float = DISAGREEMENT_BOUND,
                         alpha: float = ALPHA) -> dict:
    """The test above for ``k`` disagreements in ``n`` paired samples, as a JSON-ready dict."""
    lo, hi = clopper_pearson(k, n)
    lower = one_sided_lower(k, n, alpha)
    return {"disagreements": int(k), "samples": int(n), "rate": k / n if n else 0.0,
            "ci95": [lo, hi], "one_sided_lower": lower, "bound": bound, "alpha": alpha,
            "passed": lower <= bound}


def spike_verdict(mismatches: int, total: int, weight_bits: int | None) -> dict:
    """The spike-level rule above, as a JSON-ready dict (``applies`` False below 8-bit weights)."""
    rate = mismatches / total if total else 0.0
    applies = weight_bits is not None and weight_bits >= SPIKE_BOUND_MIN_BITS
    return {"spike_mismatch_rate": rate, "spike_bound": SPIKE_MISMATCH_BOUND, "applies": applies,
            "passed": (not applies) or rate <= SPIKE_MISMATCH_BOUND}
