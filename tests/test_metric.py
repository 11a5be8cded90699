"""The official SQuAD 2.0 metric rules, the best-threshold search, and the threshold it hands back."""

import logging

import datasets
import numpy as np
import pytest

from utils_qa import (
    SQUAD_FEATURES,
    best_null_score_diff_threshold,
    compute_exact,
    compute_f1,
    compute_squad_metrics,
    find_best_thresh,
    normalize_answer,
    null_odds_auc,
    raw_scores,
    references_from_dataset,
    select_answers,
)

# Hand-scored case. q5's only gold answer normalises to nothing, so (as in the official script) its gold becomes ""
# while it still counts as answerable.
REFERENCES = {
    "q1": ["Denver Broncos", "The Denver Broncos"],
    "q2": ["Santa Clara, California"],
    "q3": [],
    "q4": [],
    "q5": ["a"],
}
PREDICTIONS = {"q1": "denver broncos!", "q2": "Santa Clara", "q3": "", "q4": "Levi's Stadium", "q5": ""}
NULL_ODDS = {"q1": -3.0, "q2": 0.5, "q3": 2.0, "q4": 1.5, "q5": -1.0}


def test_normalize_answer_lowercases_and_drops_punctuation_articles_and_extra_space():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("Theater's thesis") == "theaters thesis"  # articles only as whole words
    assert normalize_answer("A.") == ""


def test_exact_and_f1_by_hand():
    assert compute_exact("The Denver Broncos", "denver broncos.") == 1
    assert compute_exact("Denver", "Denver Broncos") == 0
    assert compute_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)  # p = 2/3, r = 1
    assert compute_f1("cat cat dog", "cat dog dog") == pytest.approx(2 / 3)  # overlap counts repeats once each
    assert compute_f1("cat", "dog") == 0.0


def test_empty_answers_score_one_only_against_empty():
    assert compute_f1("", "") == 1.0 and compute_exact("", "") == 1
    assert compute_f1("", "Denver") == 0.0 and compute_f1("Denver", "") == 0.0
    assert compute_f1("the", "") == 1.0  # normalises to empty on both sides


def test_raw_scores_take_the_best_reference_and_treat_no_answer_as_empty_gold():
    exact, f1 = raw_scores(REFERENCES, PREDICTIONS)
    assert exact == {"q1": 1, "q2": 0, "q3": 1, "q4": 0, "q5": 1}
    assert f1 == pytest.approx({"q1": 1.0, "q2": 0.8, "q3": 1.0, "q4": 0.0, "q5": 1.0})


def test_an_empty_normalising_gold_is_ignored_when_another_gold_exists():
    assert raw_scores({"q": ["The", "Broncos"]}, {"q": ""}) == ({"q": 0}, {"q": 0.0})
    assert raw_scores({"q": ["The", "Broncos"]}, {"q": "broncos"}) == ({"q": 1}, {"q": 1.0})


def test_squad_v2_metrics_by_hand_without_null_odds():
    metrics = compute_squad_metrics(REFERENCES, PREDICTIONS)
    assert metrics == pytest.approx(
        {
            "exact": 60.0, "f1": 76.0, "total": 5,
            "HasAns_exact": 200 / 3, "HasAns_f1": 280 / 3, "HasAns_total": 3,
            "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
        }
    )


def test_squad_v2_metrics_by_hand_with_null_odds_and_the_best_threshold():
    metrics = compute_squad_metrics(REFERENCES, PREDICTIONS, NULL_ODDS)
    # q3 and q4 have null odds above 1.0, so both count as "no answer": q4 becomes right.
    assert metrics["exact"] == pytest.approx(80.0) and metrics["f1"] == pytest.approx(96.0)
    assert metrics["NoAns_exact"] == 100.0
    at_q4 = compute_squad_metrics(REFERENCES, PREDICTIONS, NULL_ODDS, null_odds_threshold=1.5)
    assert at_q4["exact"] == pytest.approx(60.0)  # q4's null odds equal the threshold: not above, so answered
    # Admitting answers by increasing null odds: q1 (+1), q5 (+1), q2 (+0 exact, +0.8 F1), q4 (-1), q3 (0).
    assert (metrics["best_exact"], metrics["best_exact_thresh"]) == pytest.approx((80.0, -1.0))
    assert (metrics["best_f1"], metrics["best_f1_thresh"]) == pytest.approx((96.0, 0.5))


def test_sides_without_questions_are_left_out_and_squad_v1_has_its_own_keys():
    answerable = {key: value for key, value in REFERENCES.items() if value}
    predictions = {key: PREDICTIONS[key] for key in answerable}
    assert set(compute_squad_metrics(answerable, predictions)) == {
        "exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total"
    }
    v1 = compute_squad_metrics(answerable, predictions, version_2_with_negative=False)
    assert v1 == pytest.approx({"exact_match": 200 / 3, "f1": 280 / 3})


def test_missing_predictions_are_counted_and_named():
    with pytest.raises(ValueError, match=r"predictions lack 2 of 5 question ids \(e.g. 'q4', 'q5'\)"):
        compute_squad_metrics(REFERENCES, {"q1": "x", "q2": "y", "q3": "", "extra": "z"})


def official_best_threshold_by_brute_force(predictions, scores, null_odds, has_answer):
    """Return (best %, threshold) by scoring every threshold separately, as the official search defines it:
    ids with null odds above the threshold count as "no answer" (right only when unanswerable); the others
    are answered (an unanswerable id then scores only when its prediction is empty). With no threshold better
    than answering nothing, the official search reports 0.0."""
    def total(threshold):
        points = 0.0
        for question_id in scores:
            if null_odds[question_id] > threshold:
                points += not has_answer[question_id]
            elif has_answer[question_id]:
                points += scores[question_id]
            else:
                points += not predictions[question_id]
        return points

    best, best_threshold = total(-np.inf), 0.0
    for threshold in sorted(null_odds.values()):
        if total(threshold) > best:
            best, best_threshold = total(threshold), threshold
    return 100.0 * best / len(scores), best_threshold


def test_find_best_thresh_matches_a_brute_force_reading_of_the_official_rules():
    rng = np.random.default_rng(3)
    for _ in range(20):
        ids = [f"q{i}" for i in range(60)]
        has_answer = {question_id: bool(rng.random() < 0.5) for question_id in ids}
        predictions = {question_id: str(rng.choice(["", "x", "the"])) for question_id in ids}
        scores = {question_id: float(rng.choice([0.0, 0.5, 1.0])) for question_id in ids}
        null_odds = dict(zip(ids, rng.permutation(len(ids)) - 30.0 + rng.random()))
        assert find_best_thresh(predictions, scores, null_odds, has_answer) == pytest.approx(
            official_best_threshold_by_brute_force(predictions, scores, null_odds, has_answer)
        )


def synthetic_run(seed=0, num_examples=300):
    """Return (examples with gold answers, features, logits) whose best threshold lies inside the null odds range.

    Each example is one window over unique words. Questions with low null odds get the model's own best span as
    gold, the others are unanswerable or get some other span, so admitting answers helps up to a point.
    """
    rng = np.random.default_rng(seed)
    rows, offsets = [], []
    for index in range(num_examples):
        words = [f"w{index}x{position}" for position in range(12)]
        starts = np.cumsum([0] + [len(word) + 1 for word in words[:-1]]).tolist()
        no_answers = {"text": [], "answer_start": []}
        rows.append({"id": f"e{index}", "title": "", "context": " ".join(words), "question": "?",
                     "answers": no_answers})
        offsets.append([None, None] + [[start, start + len(word)] for start, word in zip(starts, words)] + [None])
    features = datasets.Dataset.from_dict({"example_id": [row["id"] for row in rows], "offset_mapping": offsets})
    logits = tuple(rng.normal(size=(num_examples, 15)).astype(np.float32) for _ in range(2))
    first = select_answers(datasets.Dataset.from_list(rows, features=SQUAD_FEATURES), features, logits, True)
    cut = np.quantile(list(first.null_odds.values()), 0.6)
    for row in rows:
        odds, answer = first.null_odds[row["id"]], first.non_null_answers[row["id"]]
        if odds < cut and rng.random() < 0.8:
            row["answers"] = {"text": [answer], "answer_start": [row["context"].index(answer)]}
        elif rng.random() < 0.3:
            row["answers"] = {"text": ["w0x0 never"], "answer_start": [0]}
    return datasets.Dataset.from_list(rows, features=SQUAD_FEATURES), features, logits


@pytest.mark.parametrize("used", [0.0, -5.0])
def test_best_f1_threshold_is_directly_usable_as_null_score_diff_threshold(used):
    examples, features, logits = synthetic_run()
    references = references_from_dataset(examples)
    result = select_answers(examples, features, logits, True, null_score_diff_threshold=used)
    searched = compute_squad_metrics(references, result.answers, result.null_odds,
                                     non_null_predictions=result.non_null_answers)
    assert searched["best_f1"] > searched["f1"]  # the search found something better than the threshold used

    for best, threshold in (("best_f1", "best_f1_thresh"), ("best_exact", "best_exact_thresh")):
        rerun = select_answers(examples, features, logits, True, null_score_diff_threshold=searched[threshold])
        scored = compute_squad_metrics(references, rerun.answers, rerun.null_odds, null_odds_threshold=np.inf)
        assert scored[best.removeprefix("best_")] == pytest.approx(searched[best])


def test_search_over_thresholded_predictions_only_sees_thresholds_up_to_the_one_used():
    examples, features, logits = synthetic_run(seed=1)
    references = references_from_dataset(examples)
    for used in (-5.0, -1.0, 0.0):
        result = select_answers(examples, features, logits, True, null_score_diff_threshold=used)
        metrics = compute_squad_metrics(references, result.answers, result.null_odds)
        assert metrics["best_f1_thresh"] <= used or metrics["best_f1_thresh"] == 0.0
        rerun = select_answers(examples, features, logits, True, null_score_diff_threshold=metrics["best_f1_thresh"])
        rescored = compute_squad_metrics(references, rerun.answers, rerun.null_odds, null_odds_threshold=np.inf)
        assert rescored["f1"] == pytest.approx(metrics["best_f1"])
        full = compute_squad_metrics(references, result.answers, result.null_odds,
                                     non_null_predictions=result.non_null_answers)
        assert full["best_f1"] >= metrics["best_f1"]
        if used == -5.0:
            assert full["best_f1"] > metrics["best_f1"]  # the best threshold lies above -5, seen by the full search


def test_null_odds_threshold_at_or_above_the_one_used_scores_predictions_as_written():
    examples, features, logits = synthetic_run(seed=2)
    references = references_from_dataset(examples)
    result = select_answers(examples, features, logits, True, null_score_diff_threshold=0.5)
    as_written = compute_squad_metrics(references, result.answers)
    for threshold in (0.5, 1.0, 7.0):
        scored = compute_squad_metrics(references, result.answers, result.null_odds, null_odds_threshold=threshold)
        assert (scored["exact"], scored["f1"]) == pytest.approx((as_written["exact"], as_written["f1"]))


def test_best_null_score_diff_threshold_reads_prefixed_metrics_and_says_what_to_pass(caplog):
    with caplog.at_level(logging.INFO, logger="squad"):
        assert best_null_score_diff_threshold({"eval_best_f1": 70.0, "eval_best_f1_thresh": -1.25}) == -1.25
    assert "--null_score_diff_threshold -1.25 " in caplog.text
    with pytest.raises(ValueError, match="no best_f1_thresh"):
        best_null_score_diff_threshold({"exact": 1.0})


def test_references_from_dataset_gives_empty_lists_for_unanswerable_questions():
    rows = [
        {"id": "a", "title": "", "context": "x y", "question": "?",
         "answers": {"text": ["y", "x y"], "answer_start": [2, 0]}},
        {"id": "b", "title": "", "context": "x y", "question": "?", "answers": {"text": [], "answer_start": []}},
    ]
    dataset = datasets.Dataset.from_list(rows, features=SQUAD_FEATURES)
    assert references_from_dataset(dataset) == {"a": ["y", "x y"], "b": []}


def test_null_odds_auc_by_hand_counts_ties_half():
    # Unanswerable (positive) u1, u2 against answerable a1, a2: u1 ties a1 (1/2), beats a2; u2 beats both.
    null_odds = {"u1": 1.0, "a1": 1.0, "u2": 2.0, "a2": 0.0}
    has_answer = {"u1": False, "a1": True, "u2": False, "a2": True}
    assert null_odds_auc(null_odds, has_answer) == pytest.approx(3.5 / 4)
    assert null_odds_auc({key: -value for key, value in null_odds.items()}, has_answer) == pytest.approx(0.5 / 4)
    assert null_odds_auc(dict.fromkeys(null_odds, 7.0), has_answer) == 0.5


def test_null_odds_auc_equals_the_pairwise_definition_on_random_ties():
    rng = np.random.default_rng(5)
    ids = [f"q{i}" for i in range(200)]
    null_odds = dict(zip(ids, rng.integers(-5, 5, size=len(ids)).astype(float)))  # many ties
    has_answer = {question_id: bool(rng.random() < 0.4) for question_id in ids}
    positives = [null_odds[q] for q in ids if not has_answer[q]]
    negatives = [null_odds[q] for q in ids if has_answer[q]]
    pairwise = np.mean([float(p > n) + 0.5 * float(p == n) for p in positives for n in negatives])
    assert null_odds_auc(null_odds, has_answer) == pytest.approx(pairwise)


def test_null_odds_auc_is_nan_without_both_kinds_of_question():
    assert np.isnan(null_odds_auc({"a": 1.0, "b": 2.0}, {"a": True, "b": True}))


def test_every_threshold_search_and_forced_scores_read_the_non_null_answers():
    # Everything was predicted "" (a threshold far below the null odds), yet the best non-null spans are right
    # on q1 and q2: the search over every threshold admits them, the official search over "" cannot.
    predictions = dict.fromkeys(REFERENCES, "")
    non_null = {"q1": "Denver Broncos", "q2": "Santa Clara, California", "q3": "Levi's", "q4": "x", "q5": "b"}
    metrics = compute_squad_metrics(REFERENCES, predictions, NULL_ODDS, null_odds_threshold=-10.0,
                                    non_null_predictions=non_null)
    assert metrics["f1"] == pytest.approx(40.0)  # q3, q4 right by abstaining
    # Answering q1 (-3.0) and q2 (0.5) but abstaining on q3 (2.0) and q4 (1.5): threshold 0.5, 4 of 5 right.
    assert (metrics["best_f1"], metrics["best_f1_thresh"]) == (pytest.approx(80.0), 0.5)
    assert (metrics["best_exact"], metrics["best_exact_thresh"]) == (pytest.approx(80.0), 0.5)
    # Forced: every answerable question (q1, q2, q5) scored on its best non-null span, abstention ignored.
    assert metrics["forced_HasAns_exact"] == pytest.approx(200.0 / 3)
    assert metrics["forced_HasAns_f1"] == pytest.approx(200.0 / 3)
    assert metrics["null_odds_auc"] == 1.0  # q3 (2.0) and q4 (1.5) above every answerable question
    without = compute_squad_metrics(REFERENCES, predictions, NULL_ODDS, null_odds_threshold=-10.0)
    # The official search over the "" predictions only gains q5, whose gold normalises to "".
    assert (without["best_f1"], "forced_HasAns_f1" in without) == (pytest.approx(60.0), False)
