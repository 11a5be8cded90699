"""The official SQuAD 1.1 / 2.0 metric, with its rules and names so scores can be checked against the official
script: exact match, F1, the no-answer threshold and its best value, and two diagnostics of abstention (forced HasAns
scores, the null odds' ROC AUC). Standard library and numpy only: the `evaluate` module beside it (squad_v2.py) runs
this very file from evaluate's cache, where the recipe's packages are not importable.
"""

import collections
import logging
import re
import string

import numpy as np

# Named under "squad", the loggers whose level run_qa.py sets (--log_level).
logger = logging.getLogger("squad.metric")

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Return `text` lower-cased, without ASCII punctuation and the articles a/an/the, whitespace collapsed."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def compute_exact(gold: str, prediction: str) -> int:
    """Return 1 when the normalised texts are equal, else 0."""
    return int(normalize_answer(gold) == normalize_answer(prediction))


def compute_f1(gold: str, prediction: str) -> float:
    """Return the token-overlap F1 of the normalised texts; with an empty side, 1 when both are empty, else 0."""
    gold_tokens = normalize_answer(gold).split()
    predicted_tokens = normalize_answer(prediction).split()
    if not gold_tokens or not predicted_tokens:
        return float(gold_tokens == predicted_tokens)
    overlap = sum((collections.Counter(gold_tokens) & collections.Counter(predicted_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(predicted_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def raw_scores(references: dict[str, list[str]], predictions: dict[str, str]) -> tuple[dict, dict]:
    """Return `(exact, f1)` per id, each the best over the gold answers; no gold answer means gold is ""."""
    exact, f1 = {}, {}
    for question_id, golds in references.items():
        golds = [gold for gold in golds if normalize_answer(gold)] or [""]
        prediction = predictions[question_id]
        exact[question_id] = max(compute_exact(gold, prediction) for gold in golds)
        f1[question_id] = max(compute_f1(gold, prediction) for gold in golds)
    return exact, f1


def apply_no_answer_threshold(scores: dict, null_odds: dict, has_answer: dict, threshold: float) -> dict:
    """Return the scores with every id whose null odds exceed `threshold` scored as a no-answer prediction."""
    return {
        question_id: float(not has_answer[question_id]) if null_odds[question_id] > threshold else score
        for question_id, score in scores.items()
    }


def find_best_thresh(predictions: dict, scores: dict, null_odds: dict, has_answer: dict) -> tuple[float, float]:
    """Return `(best score in %, threshold)`: the official search for the null-odds threshold that maximises the total
    score, admitting answers from "no answer everywhere" in increasing order of null odds (an answer that is not empty
    costs a point on an unanswerable question)."""
    current = best = sum(1 for question_id in scores if not has_answer[question_id])
    best_threshold = 0.0
    for question_id in sorted(null_odds, key=null_odds.get):
        if question_id not in scores:
            continue
        if has_answer[question_id]:
            current += scores[question_id]
        elif predictions[question_id]:
            current -= 1
        if current > best:
            best, best_threshold = current, null_odds[question_id]
    return 100.0 * best / len(scores), best_threshold


def compute_squad_metrics(
    references: dict[str, list[str]],
    predictions: dict[str, str],
    null_odds: dict[str, float] | None = None,
    version_2_with_negative: bool = True,
    null_odds_threshold: float = 1.0,
    non_null_predictions: dict[str, str] | None = None,
) -> dict[str, float]:
    """Return the official SQuAD scores (0-100) of `predictions` against `references` (id → gold texts).

    SQuAD 2.0 keys: exact, f1, total, HasAns_*/NoAns_* (each side only when present) and, with `null_odds`,
    best_exact(_thresh), best_f1(_thresh) and null_odds_auc. SQuAD 1.1 keys: exact_match, f1. `null_odds` (null
    score minus best span score) play the official script's na_prob: an id whose odds exceed `null_odds_threshold`
    (its --na-prob-thresh) is scored as "no answer". `select_answers` blanks exactly the answers above its
    `null_score_diff_threshold`, so a `null_odds_threshold` at least that large scores the predictions as written,
    and `best_f1_thresh` is the `--null_score_diff_threshold` that reaches `best_f1`. The search admits the answers
    as predicted, blanked ones staying blank; `non_null_predictions` (the best span per id,
    `QAPredictions.non_null_answers`) make it search every threshold and add forced_HasAns_*. Ids outside
    `references` are ignored.
    """
    require_ids(references, predictions, "predictions")
    exact_raw, f1_raw = raw_scores(references, predictions)
    if not version_2_with_negative:
        summary = _summary(exact_raw, f1_raw, list(references))
        return {"exact_match": summary["exact"], "f1": summary["f1"]}
    has_answer = {question_id: bool(golds) for question_id, golds in references.items()}
    exact, f1 = exact_raw, f1_raw
    if null_odds is not None:
        require_ids(references, null_odds, "null_odds")
        exact = apply_no_answer_threshold(exact_raw, null_odds, has_answer, null_odds_threshold)
        f1 = apply_no_answer_threshold(f1_raw, null_odds, has_answer, null_odds_threshold)
    metrics = _summary(exact, f1, list(references))
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        subset = [question_id for question_id, answerable in has_answer.items() if answerable is wanted]
        if subset:
            metrics.update({f"{name}_{key}": value for key, value in _summary(exact, f1, subset).items()})
    if null_odds is not None:
        searched, search_exact, search_f1 = predictions, exact_raw, f1_raw
        if non_null_predictions is not None:
            require_ids(references, non_null_predictions, "non_null_predictions")
            searched = non_null_predictions
            search_exact, search_f1 = raw_scores(references, non_null_predictions)
            metrics.update(forced_answer_scores(search_exact, search_f1, has_answer))
        for name, scores in (("exact", search_exact), ("f1", search_f1)):
            best, threshold = find_best_thresh(searched, scores, null_odds, has_answer)
            metrics[f"best_{name}"], metrics[f"best_{name}_thresh"] = best, threshold
        metrics["null_odds_auc"] = null_odds_auc(null_odds, has_answer)
    return metrics


def forced_answer_scores(exact: dict, f1: dict, has_answer: dict) -> dict[str, float]:
    """Return forced_HasAns_exact/f1, the scores (`exact`, `f1`) of the best non-null answers on the answerable
    questions: how well spans are found whatever abstention does, since a model that always abstains may still have
    learned where answers are."""
    answerable = [question_id for question_id, answerable in has_answer.items() if answerable]
    if not answerable:
        return {}
    return {f"forced_HasAns_{key}": value for key, value in _summary(exact, f1, answerable).items() if key != "total"}


def null_odds_auc(null_odds: dict[str, float], has_answer: dict[str, bool]) -> float:
    """Return the ROC AUC of the null odds for telling unanswerable (positive) from answerable questions: the chance
    that an unanswerable question has the higher null odds, ties counted half (Mann-Whitney from average ranks).
    0.5 is chance, 1.0 perfect separation; NaN when either kind is missing."""
    odds = np.array([null_odds[question_id] for question_id in has_answer], dtype=np.float64)
    unanswerable = ~np.array(list(has_answer.values()), dtype=bool)
    positives, negatives = int(unanswerable.sum()), int((~unanswerable).sum())
    if not positives or not negatives:
        return float("nan")
    _, tie_group, tie_count = np.unique(odds, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(tie_count) - tie_count + 1  # 1-based rank of each distinct value's first occurrence
    average_rank = (first_rank + (tie_count - 1) / 2)[tie_group]  # (N,)
    return float((average_rank[unanswerable].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def best_null_score_diff_threshold(metrics: dict[str, float]) -> float:
    """Return the `--null_score_diff_threshold` that reached the best F1 (`best_f1_thresh`, also prefixed as in
    `eval_best_f1_thresh`). Tune it on held-out data, not on the data you report; 0.0 when nothing beat abstaining."""
    key = next((name for name in metrics if name.endswith("best_f1_thresh")), None)
    if key is None:
        raise ValueError("the metrics have no best_f1_thresh; score SQuAD 2.0 predictions together with their "
                         "null odds")
    threshold = float(metrics[key])
    logger.info("best F1 %.2f at null odds threshold %.4f: pass --null_score_diff_threshold %r to predict with it",
                metrics[key.replace("best_f1_thresh", "best_f1")], threshold, threshold)
    return threshold


def _summary(exact: dict, f1: dict, question_ids: list[str]) -> dict[str, float]:
    """Return exact, f1 (in %, 0 over no question) and total over `question_ids`."""
    count = max(len(question_ids), 1)
    return {
        "exact": 100.0 * (sum(exact[question_id] for question_id in question_ids) / count),
        "f1": 100.0 * (sum(f1[question_id] for question_id in question_ids) / count),
        "total": len(question_ids),
    }


def require_ids(references: dict, given: dict, name: str) -> None:
    """Raise a ValueError counting and naming the reference ids that `given` lacks."""
    missing = [question_id for question_id in references if question_id not in given]
    if missing:
        raise ValueError(
            f"{name} lack {len(missing)} of {len(references)} question ids "
            f"(e.g. {', '.join(repr(question_id) for question_id in missing[:3])}); "
            'give one for every question ("" means no answer)'
        )
