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
