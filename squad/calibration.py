"""Calibration: the slice of training articles held out to choose the null-odds threshold a model ships with.

A threshold chosen on the data a model is scored on flatters it, and threshold 0 is right only when the null odds
happen to be calibrated, which depends on how far training got. Holding out whole articles (never single questions:
questions of one article share their passages) gives an honest estimate of where the model should abstain.
"""

import random

import datasets
import numpy as np

from squad._shared import _column
from squad.metric import _require_ids, raw_scores


def article_keys(dataset: datasets.Dataset) -> list[str]:
    """Return each row's article: its title, or its context where the data gives no title (flat files)."""
    return [title or context for title, context in zip(_column(dataset, "title"), _column(dataset, "context"))]


def split_calibration_articles(
    dataset: datasets.Dataset, fraction: float, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset, list[str]]:
    """Return (training rows, calibration rows, calibration articles): `fraction` of the articles, at least one,
    drawn with `seed`, are held out whole.

    Raises ValueError when fewer than two articles leave nothing to hold out or nothing to train on.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the calibration fraction must be between 0 and 1 (exclusive), got {fraction}")
    keys = article_keys(dataset)
    articles = sorted(set(keys))
    if len(articles) < 2:
        raise ValueError(
            f"a calibration split holds out whole articles, and the training data has {len(articles)}: "
            "give more articles, or turn calibration off (--calibration_fraction 0)"
        )
    count = min(len(articles) - 1, max(1, round(fraction * len(articles))))
    held_out = set(random.Random(seed).sample(articles, count))
    calibration_rows = [index for index, key in enumerate(keys) if key in held_out]
    training_rows = [index for index, key in enumerate(keys) if key not in held_out]
    return dataset.select(training_rows), dataset.select(calibration_rows), sorted(held_out)


def calibrated_null_threshold(
    references: dict[str, list[str]], non_null_predictions: dict[str, str], null_odds: dict[str, float]
) -> float:
    """Return the null-odds threshold that maximises F1 on held-out questions, to ship with a model.

    The official best-threshold search, made to transfer: questions with equal odds are admitted together (a
    threshold cannot split them), the threshold sits halfway to the next odds instead of on a question's own value,
    and when no threshold beats answering nothing the result lies below every odds seen, so that a model whose null
    odds do not separate the questions abstains rather than guesses. `non_null_predictions` are the best spans
    (`QAPredictions.non_null_answers`); F1 scores them against `references`.
    """
    _require_ids(references, non_null_predictions, "non_null_predictions")
    _require_ids(references, null_odds, "null_odds")
    if not references:
        raise ValueError("calibration needs at least one question")
    _, f1 = raw_scores(references, non_null_predictions)
    odds = np.array([null_odds[question_id] for question_id in references], dtype=np.float64)
    # Answering question q changes the score by its F1 if it has an answer, by -1 if it has none.
    gain = np.array([f1[q] if golds else -1.0 for q, golds in references.items()], dtype=np.float64)
    levels, group = np.unique(odds, return_inverse=True)  # ascending distinct odds
    running = np.cumsum(np.bincount(group, weights=gain, minlength=len(levels)))  # score gained up to each level
    best = int(np.argmax(running))  # first of equal maxima: the most abstaining
    if running[best] <= 0:
        return float(levels[0] - 1.0)
    if best + 1 < len(levels):
        return float((levels[best] + levels[best + 1]) / 2)
    return float(levels[best])
