"""Statistics of the report: bootstrap intervals, the exact McNemar test on paired outcomes,
Holm's step-down adjustment, the power of McNemar's test (exact) and the smallest difference a
test split can detect, ROUGE-L (pass@k is `tasks.select.pass_at_k`).

Paired outcomes of two students on the same n problems: b = treatment right and control wrong,
c = treatment wrong and control right. Under "no difference" each discordant pair is b or c
with probability 1/2, so the exact test is a two-sided binomial test of b out of b + c.
"""

import numpy as np


def bootstrap_ci(correct: np.ndarray, n_boot: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of a 0/1 vector, resampling items with replacement."""
    correct = np.asarray(correct, dtype=float)
    if correct.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, correct.size, size=(n_boot, correct.size))  # (B, n)
    means = correct[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_bootstrap_diff(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, confidence: float = 0.95,
                          seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) - mean(b), interval low, high), resampling the same items for both arms."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or a.size != b.size:
        return float("nan"), float("nan"), float("nan")
    lo, hi = bootstrap_ci(a - b, n_boot, confidence, seed)
    return float((a - b).mean()), lo, hi


def discordant(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(b, c): pairs where only the treatment (a) is right, and where only the control is."""
    a, b_ = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    return int((a & ~b_).sum()), int((~a & b_).sum())


def binom_two_sided(k: int, n: int) -> float:
    """Two-sided exact binomial p-value of k successes in n at p = 1/2 (symmetric: twice the smaller tail)."""
    from scipy.stats import binom

    return 1.0 if n == 0 else float(min(1.0, 2 * binom.cdf(min(k, n - k), n, 0.5)))


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Exact McNemar p-value for paired 0/1 outcomes."""
    b_, c = discordant(a, b)
    return binom_two_sided(b_, b_ + c)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def critical(m: np.ndarray, alpha: float) -> np.ndarray:
    """Per discordant count m, the largest c with 2 P(X <= c) <= alpha, X ~ Bin(m, 1/2): the test
    rejects b <= c or b >= m - c (c = -1: it never rejects)."""
    from scipy.stats import binom

    c = binom.ppf(alpha / 2, m, 0.5)  # smallest k with P(X <= k) >= alpha / 2
    return np.where(2 * binom.cdf(c, m, 0.5) <= alpha, c, c - 1).astype(int)


def mcnemar_power(n: int, p10: float, p01: float, alpha: float = 0.05) -> float:
    """Exact power of the two-sided exact McNemar test on n pairs when a pair is (right, wrong)
    with probability p10 and (wrong, right) with p01: summed over the discordant count m."""
    from scipy.stats import binom

    pd = p10 + p01
    if pd <= 0:
        return 0.0
    m = np.arange(n + 1)
    c = critical(m, alpha)
    q = p10 / pd
    reject = np.where(c >= 0, binom.cdf(c, m, q) + binom.sf(m - c - 1, m, q), 0.0)  # P(b <= c) + P(b >= m - c)
    return float((binom.pmf(m, n, pd) * reject).sum())


def detectable_difference(n: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """Smallest accuracy difference the exact McNemar test detects with `power` on n pairs,
    given the share of discordant pairs (at least the difference itself); None: not even 100 points."""
    if n == 0:
        return None
    grid = np.linspace(0.01, 1.0, 100)
    for delta in grid:
        pd = min(1.0, max(discordance, delta))
        if mcnemar_power(n, (pd + delta) / 2, (pd - delta) / 2, alpha) >= power:
            return float(delta)
    return None


def problems_needed(delta: float, discordance: float, alpha: float = 0.05, power: float = 0.8,
                    limit: int = 100_000) -> int | None:
    """Pairs the exact McNemar test needs to detect `delta` with `power` (normal approximation of
    Connor 1987 for the start, then the exact power); None when delta is 0."""
    from scipy.stats import norm

    delta = abs(delta)
    if delta <= 0:
        return None
    pd = min(1.0, max(discordance, delta))
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    n = int(np.ceil((za * np.sqrt(pd) + zb * np.sqrt(max(pd - delta**2, 0.0))) ** 2 / delta**2))
    n = max(n, 1)
    while n < limit and mcnemar_power(n, (pd + delta) / 2, (pd - delta) / 2, alpha) < power:
        n = int(np.ceil(n * 1.05)) + 1
    return n if n < limit else None


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 of whitespace tokens (lower case): longest common subsequence over both lengths."""
    from rapidfuzz.distance import LCSseq

    cand, ref = candidate.lower().split(), reference.lower().split()
    if not cand or not ref:
        return 0.0
    lcs = LCSseq.similarity(cand, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(cand), lcs / len(ref)
    return 2 * p * r / (p + r)
