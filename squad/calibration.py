"""Calibration: the slice of training articles held out to choose the null-odds threshold a model ships with.

A threshold chosen on the data a model is scored on flatters it, and threshold 0 is right only when the null odds
happen to be calibrated, which depends on how far training got. Holding out whole articles (never single questions:
questions of one article share their passages) gives an honest estimate of where the model should abstain.
"""

import random

import datasets
import numpy as np

from metrics.squad_v2.squad_metric import raw_scores, require_ids
from squad._shared import _column


def article_keys(dataset: datasets.Dataset) -> list[str]:
    """Return each row's article: its title, or its context where the data gives no title (flat files)."""
    return [title or context for title, context in zip(_column(dataset, "title"), _column(dataset, "context"))]


def split_calibration_articles(
    dataset: datasets.Dataset, fraction: float, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset, list[str]]:
    """Return (training rows, calibration rows, calibration articles): `fraction` of the articles, drawn with `seed`,
    held out whole; at least two, since what a threshold must survive is the spread from one article to the next,
    but never more than a third, and always at least one. Raises ValueError with fewer than two articles."""
    if not 0 < fraction < 1:
        raise ValueError(f"the calibration fraction must be between 0 and 1 (exclusive), got {fraction}")
    keys = article_keys(dataset)
    articles = sorted(set(keys))
    if len(articles) < 2:
        raise ValueError(
            f"a calibration split holds out whole articles, and the training data has {len(articles)}: "
            "give more articles, or turn calibration off (--calibration_fraction 0)"
        )
    count = max(1, min(max(2, round(fraction * len(articles))), len(articles) // 3))
    held_out = set(random.Random(seed).sample(articles, count))
    calibration_rows = [index for index, key in enumerate(keys) if key in held_out]
    training_rows = [index for index, key in enumerate(keys) if key not in held_out]
    return dataset.select(training_rows), dataset.select(calibration_rows), sorted(held_out)


def calibrated_null_threshold(
    references: dict[str, list[str]],
    non_null_predictions: dict[str, str],
    null_odds: dict[str, float],
    articles: dict[str, str] | None = None,
    standard_errors: float = 0.0,
) -> float:
    """Return the null-odds threshold to ship with a model: the one whose gain over answering nothing on held-out
    questions is largest after subtracting `standard_errors` standard errors of that gain (0: the F1 maximum).

    The official search made to transfer: equal odds are admitted together, the threshold sits halfway to the next
    odds, and when nothing beats abstaining it lies below every odds seen, so odds that do not separate the questions
    abstain rather than guess. The standard error is the larger of the one between questions and, with two or more
    `articles` (question id → article), the one between articles: two articles can agree by chance, and one article's
    questions vary less than articles do. `non_null_predictions`: the best spans (`QAPredictions.non_null_answers`).
    """
    require_ids(references, non_null_predictions, "non_null_predictions")
    require_ids(references, null_odds, "null_odds")
    if articles is not None:
        require_ids(references, articles, "articles")
    if not references:
        raise ValueError("calibration needs at least one question")
    if not standard_errors >= 0:
        raise ValueError(f"standard_errors must be a number >= 0, got {standard_errors!r}")
    _, f1 = raw_scores(references, non_null_predictions)
    ids = list(references)
    # Answering question q changes the score by its F1 if it has an answer, by -1 if it has none.
    gain = np.array([f1[q] if references[q] else -1.0 for q in ids], dtype=np.float64)
    odds = np.array([null_odds[q] for q in ids], dtype=np.float64)
    levels, mean, error = _gain_curve(odds, gain, ids)
    if articles is not None and len({articles[q] for q in ids}) > 1:
        error = np.maximum(error, _gain_curve(odds, gain, [articles[q] for q in ids])[2])
    bound = mean - standard_errors * error
    best = int(np.argmax(bound))  # first of equal maxima: the most abstaining
    if bound[best] <= 0:
        return float(levels[0] - 1.0)
    if best + 1 < len(levels):
        return float((levels[best] + levels[best + 1]) / 2)
    return float(levels[best])


def answer_similarity_scale(null_odds: dict[str, float], similarity: dict[str, float]) -> tuple[float, float]:
    """Return (weight, centre) that put a question–passage similarity on the null odds' scale: odds minus
    weight × (similarity − centre) ranks the held-out questions by both with equal say.

    Standardised scores added need no fitting (a regression fitted on two articles follows those articles); the odds'
    standard deviation over the similarity's, and the similarity's mean, keep the reader's scale and typical value.
    A similarity that does not vary gets weight 0.
    """
    require_ids(null_odds, similarity, "similarity")
    if not null_odds:
        raise ValueError("weighing the similarity needs at least one question")
    odds = np.array(list(null_odds.values()), dtype=np.float64)
    scores = np.array([similarity[q] for q in null_odds], dtype=np.float64)
    spread = scores.std()
    if not spread > 0:
        return 0.0, 0.0
    return float(odds.std() / spread), float(scores.mean())


def _gain_curve(odds: np.ndarray, gain: np.ndarray, groups: list[str]) -> tuple[np.ndarray, ...]:
    """Return (ascending distinct odds; for each, the gain per question of answering every question up to it; the
    cluster-robust standard error of that gain, the clusters being `groups`)."""
    count = len(gain)
    _, cluster, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    sizes = sizes.astype(np.float64)
    clusters = len(sizes)
    levels, ties = np.unique(odds, return_counts=True)
    admitted_at_level = np.split(np.argsort(odds, kind="stable"), np.cumsum(ties)[:-1])
    # Running sums over the admitted questions: the gain, and per cluster G_a, kept as sum(G_a^2) and sum(n_a G_a).
    cluster_gain = np.zeros(clusters)
    total = squares = weighted = 0.0
    mean, error = np.empty(len(levels)), np.empty(len(levels))
    for level, admitted in enumerate(admitted_at_level):
        for question in admitted:
            a, g = cluster[question], gain[question]
            squares += 2 * cluster_gain[a] * g + g * g
            weighted += sizes[a] * g
            cluster_gain[a] += g
            total += g
        mean[level] = total / count
        spread = squares - 2 * mean[level] * weighted + mean[level] ** 2 * np.dot(sizes, sizes)  # sum (G_a - n_a m)^2
        error[level] = np.sqrt(max(spread, 0.0) * clusters / max(clusters - 1, 1)) / count
    return levels, mean, error
