"""Bootstrap confidence intervals for accuracies."""

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
