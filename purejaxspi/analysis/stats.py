"""Bootstrap statistics of run scores (rliable), reproducible for a seed.

rliable resamples from numpy's global generator whatever RandomState it is handed, so every estimate
here runs inside `seeded_bootstrap`, which seeds that generator and restores it afterwards.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

# rliable passes a RandomState to arch, which warns about it on every bootstrap
warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)

CI = 0.95


@contextlib.contextmanager
def seeded_bootstrap(seed: int):
    """Make rliable's bootstrap reproducible: its stratified resampling draws from numpy's global
    generator, not from the RandomState it is handed, so seed that (and restore it afterwards)."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield np.random.RandomState(seed)
    finally:
        np.random.set_state(saved)


def curve_estimates(scores: np.ndarray, aggregate: str, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Point estimate [B] and CI [2, B] across runs of scores [runs, B], by rliable's stratified bootstrap."""
    from rliable import library as rly

    from purejaxspi.lifecycle.metrics import trim_mean

    # rliable's aggregate_iqm / aggregate_mean, per bin at once (axis 0 is the runs)
    func = (lambda s: trim_mean(s, 0.25, axis=0)) if aggregate == "iqm" else (lambda s: np.mean(s, axis=0))
    with seeded_bootstrap(seed) as random_state:
        point, interval = rly.get_interval_estimates(
            {"g": scores}, func, reps=reps, confidence_interval_size=CI, random_state=random_state
        )
    return point["g"], interval["g"]


def aggregate_estimates(scores: dict[str, np.ndarray], gap_threshold: float, reps: int, seed: int):
    """rliable's IQM, median, mean and optimality gap per group, each (point, [low, high])."""
    from rliable import library as rly
    from rliable import metrics

    def func(s):
        return np.array(
            [
                metrics.aggregate_iqm(s),
                metrics.aggregate_median(s),
                metrics.aggregate_mean(s),
                metrics.aggregate_optimality_gap(s, gap_threshold),
            ]
        )

    with seeded_bootstrap(seed) as random_state:
        point, interval = rly.get_interval_estimates(
            scores, func, reps=reps, confidence_interval_size=CI, random_state=random_state
        )
    return point, interval


def improvement_estimates(scores: dict[str, np.ndarray], reps: int, seed: int, max_pairs: int = 10):
    """P(X > Y) with CIs for pairs of groups (all pairs, at most max_pairs)."""
    from rliable import library as rly
    from rliable import metrics

    groups = list(scores)
    pairs = [(x, y) for i, x in enumerate(groups) for y in groups[i + 1 :]][:max_pairs]
    if not pairs:
        return {}, {}
    paired = {f"{x}  >  {y}": (scores[x], scores[y]) for x, y in pairs}
    with seeded_bootstrap(seed) as random_state:
        return rly.get_interval_estimates(
            paired,
            metrics.probability_of_improvement,
            reps=reps,
            confidence_interval_size=CI,
            random_state=random_state,
        )


AGGREGATE_NAMES = ("IQM", "Median", "Mean", "Optimality gap")
