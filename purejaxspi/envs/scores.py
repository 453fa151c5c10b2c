"""Human-normalised scores for Atari: `hns = (score - random) / (human - random)`.

The per-game random-agent and human scores (57 games, the table the literature uses) ship with the
package in `purejaxspi/data/atari_human_random_scores.csv`.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from importlib import resources

SCORES_FILE = "atari_human_random_scores.csv"


@functools.cache
def reference_scores() -> dict[str, tuple[float, float]]:
    """{env id: (random score, human score)} for the 57 games of the table."""
    text = resources.files("purejaxspi.data").joinpath(SCORES_FILE).read_text()
    return {row["env_id"]: (float(row["random"]), float(row["human"])) for row in csv.DictReader(io.StringIO(text))}


def human_normalised(env_id: str, score: float) -> float | None:
    """The score as a fraction of the way from random play (0) to human play (1); None off the table."""
    scores = reference_scores().get(env_id)
    if scores is None or score is None or not math.isfinite(score):
        return None
    random_score, human_score = scores
    return (score - random_score) / (human_score - random_score)
