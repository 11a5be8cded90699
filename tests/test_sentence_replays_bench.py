"""The sentence-matcher replays: the span prior picks by the right sentence and moves the null odds with the chosen
span, and the logistic threshold sits where answering breaks even."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import sentence_replays  # noqa: E402


def test_a_span_belongs_to_the_sentence_holding_its_first_character():
    starts = [0, 20, 45]
    assert sentence_replays.sentence_of_spans(starts, [0, 19, 20, 44, 60]).tolist() == [0, 0, 1, 1, 2]


def test_the_sentence_prior_can_change_the_span_and_the_odds_follow_it():
    # Span "far" scores 5 in a sentence of similarity 0.2; span "near" scores 4 in the closest sentence (0.9).
    split = {"q": {"null": 6.0, "closest": 0.9, "alignment": 0.5,
                   "spans": [(5.0, "far", 0.2), (4.0, "near", 0.9)]}}
    texts, odds, feature = sentence_replays.decide(split, sentence_bonus=0.0, null_feature="closest sentence")
    assert texts == {"q": "far"} and odds == {"q": 1.0} and feature == {"q": 0.9}
    texts, odds, feature = sentence_replays.decide(split, sentence_bonus=2.0, null_feature="span sentence")
    assert texts == {"q": "near"} and odds == {"q": 2.0}  # 6 - 4: the closest sentence's span loses nothing
    assert feature == {"q": 0.9}


def test_the_logistic_threshold_is_where_answering_breaks_even():
    rng = np.random.default_rng(0)
    answerable = rng.normal(-1.0, 1.0, 2000)
    unanswerable = rng.normal(1.0, 1.0, 2000)
    ids = [f"a{i}" for i in range(2000)] + [f"u{i}" for i in range(2000)]
    references = {q: (["x"] if q[0] == "a" else []) for q in ids}
    odds = dict(zip(ids, np.concatenate([answerable, unanswerable]).tolist()))
    exact = dict.fromkeys(ids, "x")
    # Exact spans: answering pays while P(answerable) > 1/2, i.e. below the midpoint 0 of two equal classes.
    assert sentence_replays.logistic_threshold(references, exact, odds) == pytest.approx(0.0, abs=0.1)
    # Spans of F1 2/3 ("x y" against "x"): answering pays while P(answerable) × 2/3 > 1 - P, i.e. P > 0.6; for
    # unit-variance classes at ±1 the log-odds of answerable are -2 × odds, so below -log(1.5) / 2.
    two_thirds = {q: ("x y" if q[0] == "a" else "x") for q in ids}
    threshold = sentence_replays.logistic_threshold(references, two_thirds, odds)
    assert threshold == pytest.approx(-np.log(1.5) / 2, abs=0.1)


def test_odds_that_do_not_separate_the_questions_abstain():
    references = {"a": ["x"], "b": [], "c": ["x"], "d": []}
    odds = {"a": 2.0, "b": -1.0, "c": 3.0, "d": 0.0}  # unanswerable questions have the lower odds
    threshold = sentence_replays.logistic_threshold(references, dict.fromkeys(references, "x"), odds)
    assert threshold < min(odds.values())
