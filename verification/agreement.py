"""Is the quantized graph good enough? The task-level half of ir-int's verdict (the other half,
"is it a correct deployment?", is the per-layer check in :mod:`runtimes.layer_check`).

The question is the accuracy the user loses by deploying: the paired difference between
ir-float's and ir-int's accuracy on the same samples. Of ``n`` samples, ``b`` are right on
ir-float and wrong on ir-int and ``c`` the reverse, so the drop is ``(b - c) / n`` and its true
value is ``p_b - p_c``, the difference of two rates of the same multinomial draw. Its exact
(conservative) lower confidence bound is the one-sided Clopper-Pearson lower bound of ``p_b``
minus the upper bound of ``p_c``, each at level ``alpha / 2`` (Bonferroni): the drop is below it
with probability at most ``alpha``, whatever ``n`` and the other rates. The graph fails only when
that lower bound exceeds the user's ``tolerance``: when the data show the drop is above it. With
few samples the bound is wide and nothing fails on accuracy alone; the per-layer check is what
finds a wrong deployment there. The two-sided interval is built the same way, and the exact
McNemar test (``b`` of ``b + c`` discordant pairs against a fair coin) says whether the two
graphs differ at all.
"""

from __future__ import annotations

from scipy.stats import beta, binomtest

DEFAULT_TOLERANCE = 0.01  # one percentage point of accuracy (verify --tolerance)
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


def one_sided_upper(k: int, n: int, alpha: float = ALPHA) -> float:
    """The one-sided (1 - alpha) upper confidence bound of the rate."""
    return 1.0 if n <= 0 or k >= n else float(beta.ppf(1 - alpha, k + 1, n - k))


def drop_bounds(b: int, c: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """One-sided (1 - alpha) lower and upper bounds of the paired drop ``p_b - p_c``."""
    lower = one_sided_lower(b, n, alpha / 2) - one_sided_upper(c, n, alpha / 2)
    upper = one_sided_upper(b, n, alpha / 2) - one_sided_lower(c, n, alpha / 2)
    return lower, upper


def accuracy_verdict(b: int, c: int, n: int, tolerance: float = DEFAULT_TOLERANCE,
                     alpha: float = ALPHA) -> dict:
    """The test above, as a JSON-ready dict: ``b`` samples only the reference gets right, ``c``
    samples only the tested graph gets right, of ``n`` paired samples."""
    lower, _ = drop_bounds(b, c, n, alpha)
    lo95, hi95 = drop_bounds(b, c, n, alpha / 2)
    mcnemar = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"samples": int(n), "reference_only_correct": int(b), "only_correct": int(c),
            "drop": (b - c) / n if n else 0.0, "drop_ci95": [lo95, hi95],
            "drop_lower_bound": lower, "tolerance": tolerance, "alpha": alpha,
            "mcnemar_p": mcnemar, "passed": lower <= tolerance}
