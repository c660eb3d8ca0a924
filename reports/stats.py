"""Statistics of the report: the exact McNemar test on paired outcomes (statsmodels), Holm's
step-down adjustment (statsmodels), Wilson intervals for accuracy (statsmodels), an interval for
the paired difference that agrees with the exact test, the power of that test and the smallest
difference a test split can detect (ROUGE-L is `students.evals.rouge_l`, pass@k is
`tasks.select.pass_at_k`).

Paired outcomes of two students on the same n problems: b = treatment right and control wrong,
c = treatment wrong and control right, m = b + c discordant pairs. Under "no difference" each
discordant pair is b or c with probability 1/2, so the exact test is a two-sided binomial test of
b out of m. Several training seeds are strata of one such test: their discordant pairs add up
(each is still b or c with probability 1/2 under no difference).
"""

from functools import lru_cache

import numpy as np
from scipy.stats import binom, norm
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint


def discordant(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(b, c): pairs where only the treatment (a) is right, and where only the control is."""
    a, b_ = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    return int((a & ~b_).sum()), int((~a & b_).sum())


def mcnemar_p(b: int, c: int) -> float:
    """Exact McNemar p-value from the discordant counts (the concordant cells do not enter it)."""
    return float(mcnemar([[0, b], [c, 0]], exact=True).pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    if not pvalues:
        return []
    return [float(p) for p in multipletests(pvalues, method="holm")[1]]


def wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of k successes in n (nan, nan for n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    lo, hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    # exactly 0 at k = 0 and 1 at k = n (floating point gives 5.6e-17 for 0/3)
    return 0.0 if k == 0 else float(lo), 1.0 if k == n else float(hi)


def paired_interval(b: int, c: int, n: int, confidence: float) -> tuple[float, float]:
    """Interval of the accuracy difference (b - c) / n = d * (2q - 1), d the discordant share, q the
    share of discordant pairs the treatment wins. q gets the Clopper-Pearson interval (the exact
    test inverted), d the Wilson interval; the difference spans their corners. Its sign is q's, so it
    excludes 0 exactly when the exact McNemar p <= 1 - confidence."""
    if n == 0:
        return float("nan"), float("nan")
    m = b + c
    q_lo, q_hi = (0.0, 1.0) if m == 0 else proportion_confint(b, m, alpha=1 - confidence, method="beta")
    d_lo, d_hi = wilson(m, n, confidence)
    low, high = 2 * q_lo - 1, 2 * q_hi - 1  # (2q - 1) in [-1, 1]
    return float(low * (d_lo if low >= 0 else d_hi)), float(high * (d_hi if high >= 0 else d_lo))


@lru_cache(maxsize=256)  # the same n recurs for every power of a table
def critical(n: int, alpha: float) -> np.ndarray:
    """Per discordant count m = 0..n, the largest c with 2 P(X <= c) <= alpha, X ~ Bin(m, 1/2): the
    test rejects b <= c or b >= m - c (c = -1: it never rejects)."""
    m = np.arange(n + 1)
    c = binom.ppf(alpha / 2, m, 0.5)  # smallest k with P(X <= k) >= alpha / 2
    out = np.where(2 * binom.cdf(c, m, 0.5) <= alpha, c, c - 1).astype(int)
    out.flags.writeable = False  # shared by the cache
    return out


def mcnemar_power(n: int, p10: float, p01: float, alpha: float) -> float:
    """Exact power of the two-sided exact McNemar test on n pairs when a pair is (right, wrong)
    with probability p10 and (wrong, right) with p01: summed over the discordant count m."""
    pd = p10 + p01
    if pd <= 0:
        return 0.0
    m = np.arange(n + 1)
    c = critical(n, alpha)
    q = p10 / pd
    reject = np.where(c >= 0, binom.cdf(c, m, q) + binom.sf(m - c - 1, m, q), 0.0)  # P(b <= c) + P(b >= m - c)
    return float((binom.pmf(m, n, pd) * reject).sum())


@lru_cache(maxsize=4096)  # a table repeats (n, discordance); each power sums over n + 1 discordant counts
def detectable_difference(n: int, discordance: float, alpha: float, power: float) -> float | None:
    """Smallest accuracy difference (in steps of 1 point) the exact McNemar test detects with `power`
    on n pairs, given the share of discordant pairs (at least the difference itself); None: not even
    100 points. Power grows with the difference, so the grid is bisected."""
    if n == 0:
        return None
    grid = np.linspace(0.01, 1.0, 100)

    def enough(delta: float) -> bool:
        pd = min(1.0, max(discordance, delta))
        return mcnemar_power(n, (pd + delta) / 2, (pd - delta) / 2, alpha) >= power

    lo, hi = 0, len(grid)  # answer index in [lo, hi); hi = len: none
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(grid[mid]) else (mid + 1, hi)
    return float(grid[lo]) if lo < len(grid) else None


@lru_cache(maxsize=4096)
def problems_needed(delta: float, discordance: float, alpha: float, power: float, limit: int) -> int | None:
    """Pairs the exact McNemar test needs to detect `delta` with `power` (normal approximation of
    Connor 1987 for the start, then the exact power); None when delta is 0 or past `limit`."""
    delta = abs(delta)
    if delta <= 0:
        return None
    pd = min(1.0, max(discordance, delta))
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    n = max(1, int(np.ceil((za * np.sqrt(pd) + zb * np.sqrt(max(pd - delta**2, 0.0))) ** 2 / delta**2)))
    while n < limit and mcnemar_power(n, (pd + delta) / 2, (pd - delta) / 2, alpha) < power:
        n = int(np.ceil(n * 1.05)) + 1
    return n if n < limit else None
