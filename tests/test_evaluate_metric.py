"""`evaluate.load(".../metrics/squad_v2")`: from any folder, offline, the Hub squad_v2 metric's inputs and outputs,
the recipe's numbers, and which threshold the scores mean."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import evaluate
import pytest

from utils_qa import compute_squad_metrics, load_squad_file, references_from_dataset

ROOT = Path(__file__).resolve().parents[1]
METRIC = str(ROOT / "metrics" / "squad_v2")
REAL_SAMPLE = ROOT / "data" / "squad_v2_real_sample.json"

# The Hub squad_v2 metric card's examples and the outputs it publishes for them.
QID_1976, QID_BEYONCE, QID_CLIMATE = "56e10a3be3433e1400422b22", "56d2051ce7d4791d0090260b", "5733b5344776f419006610e1"
HUB_EXAMPLES = {
    "perfect match": (
        [{"prediction_text": "1976", "id": QID_1976, "no_answer_probability": 0.0}],
        [{"answers": {"answer_start": [97], "text": ["1976"]}, "id": QID_1976}],
        {"exact": 100.0, "f1": 100.0, "total": 1, "HasAns_exact": 100.0, "HasAns_f1": 100.0, "HasAns_total": 1,
         "best_exact": 100.0, "best_exact_thresh": 0.0, "best_f1": 100.0, "best_f1_thresh": 0.0},
    ),
    "no match": (
        [{"prediction_text": "1999", "id": QID_1976, "no_answer_probability": 0.0}],
        [{"answers": {"answer_start": [97], "text": ["1976"]}, "id": QID_1976}],
        {"exact": 0.0, "f1": 0.0, "total": 1, "HasAns_exact": 0.0, "HasAns_f1": 0.0, "HasAns_total": 1,
         "best_exact": 0.0, "best_exact_thresh": 0.0, "best_f1": 0.0, "best_f1_thresh": 0.0},
    ),
    "partial match": (
        [{"prediction_text": "1976", "id": QID_1976, "no_answer_probability": 0.0},
         {"prediction_text": "Beyonce", "id": QID_BEYONCE, "no_answer_probability": 0.0},
         {"prediction_text": "climate change", "id": QID_CLIMATE, "no_answer_probability": 0.0}],
        [{"answers": {"answer_start": [97], "text": ["1976"]}, "id": QID_1976},
         {"answers": {"answer_start": [233], "text": ["Beyoncé and Bruno Mars"]}, "id": QID_BEYONCE},
         {"answers": {"answer_start": [891], "text": ["climate change"]}, "id": QID_CLIMATE}],
        {"exact": 66.66666666666667, "f1": 66.66666666666667, "total": 3, "HasAns_exact": 66.66666666666667,
         "HasAns_f1": 66.66666666666667, "HasAns_total": 3, "best_exact": 66.66666666666667, "best_exact_thresh": 0.0,
         "best_f1": 66.66666666666667, "best_f1_thresh": 0.0},
    ),
}


@pytest.fixture(scope="module")
def squad_v2():
    return evaluate.load(METRIC)


@pytest.fixture(scope="module")
def squad_v2_odds():
    return evaluate.load(METRIC, "null_odds")


@pytest.mark.parametrize("example", list(HUB_EXAMPLES))
def test_hub_metric_examples_give_their_published_outputs(squad_v2, example):
    predictions, references, published = HUB_EXAMPLES[example]
    result = squad_v2.compute(predictions=predictions, references=references)
    assert result.keys() - published.keys() == {"null_odds_auc"}  # what this recipe adds
    shared = {key: result[key] for key in published}
    assert shared == pytest.approx(published, rel=1e-14)  # 100 * (2 / 3) and 100 * 2 / 3 differ in the last bit


# The threshold the sample's answers were blanked at: below the best one, so the search has thresholds to find above it.
BLANKED_AT = -2.5


def sample_predictions(references: dict[str, list[str]], seed: int = 0) -> tuple[dict, dict, dict]:
    """Return answers as a model would give them (right, partly right, wrong, blank), best spans and null odds."""
    generator = random.Random(seed)
    best_spans, null_odds = {}, {}
    for question_id, golds in references.items():
        gold = golds[0] if golds else "Normandy"
        best_spans[question_id] = generator.choice([gold, gold.split()[0], "the " + gold, "Paris"])
        null_odds[question_id] = generator.uniform(-4.0, 3.0) if golds else generator.uniform(-1.0, 6.0)
    answers = {question_id: "" if null_odds[question_id] > BLANKED_AT else span
               for question_id, span in best_spans.items()}
    return answers, best_spans, null_odds


@pytest.fixture(scope="module")
def real_sample():
    """The real SQuAD 2.0 article: references, answers blanked at BLANKED_AT, best spans and null odds."""
    dataset = load_squad_file(REAL_SAMPLE)
    references = references_from_dataset(dataset)
    hub_references = [{"id": row["id"], "answers": row["answers"]} for row in dataset]
    return (references, hub_references, *sample_predictions(references))


def with_null_odds(texts: dict, null_odds: dict) -> list[dict]:
    return [{"id": qid, "prediction_text": text, "null_odds": null_odds[qid]} for qid, text in texts.items()]


def test_real_sample_gives_exactly_the_numbers_of_compute_squad_metrics(squad_v2_odds, real_sample):
    references, hub_references, answers, best_spans, null_odds = real_sample
    as_answered = squad_v2_odds.compute(predictions=with_null_odds(answers, null_odds), references=hub_references,
                                        no_answer_threshold=BLANKED_AT)
    assert as_answered == compute_squad_metrics(references, answers, null_odds, null_odds_threshold=BLANKED_AT)

    every_threshold = squad_v2_odds.compute(predictions=with_null_odds(answers, null_odds),
                                            references=hub_references, no_answer_threshold=BLANKED_AT,
                                            non_null_predictions=best_spans)
    expected = compute_squad_metrics(references, answers, null_odds, null_odds_threshold=BLANKED_AT,
                                     non_null_predictions=best_spans)
    assert every_threshold == expected
    assert expected["best_f1_thresh"] > BLANKED_AT  # the search went past the threshold the answers were blanked at
    assert expected["best_f1"] > as_answered["best_f1"]
    assert expected["HasAns_total"] + expected["NoAns_total"] == len(references) == 208


def test_null_odds_are_scored_at_run_qa_threshold_and_probabilities_at_the_official_one(squad_v2, squad_v2_odds):
    """One answerable question answered right with 0.5 for "no answer": above run_qa.py's default
    --null_score_diff_threshold (0), below the official --na-prob-thresh (1)."""
    references = [{"id": "q", "answers": {"text": ["Rollo"], "answer_start": [0]}}]
    as_odds = squad_v2_odds.compute(predictions=[{"id": "q", "prediction_text": "Rollo", "null_odds": 0.5}],
                                    references=references)
    as_probability = squad_v2.compute(
        predictions=[{"id": "q", "prediction_text": "Rollo", "no_answer_probability": 0.5}], references=references
    )
    assert as_odds["exact"] == 0.0 and as_probability["exact"] == 100.0
    assert squad_v2_odds.compute(predictions=[{"id": "q", "prediction_text": "Rollo", "null_odds": 0.5}],
                                 references=references, no_answer_threshold=0.6)["exact"] == 100.0


def test_best_spans_with_their_null_odds_score_as_run_qa_reports_its_answers(squad_v2_odds, real_sample):
    """run_qa.py answers "" where the null odds exceed its threshold (0 by default) and reports the scores of those
    answers: the best spans with their null odds, threshold left out, give exactly those scores."""
    references, hub_references, _, best_spans, null_odds = real_sample
    run_qa_answers = {qid: "" if null_odds[qid] > 0.0 else span for qid, span in best_spans.items()}
    reported = compute_squad_metrics(references, run_qa_answers, null_odds, null_odds_threshold=0.0)
    scored = squad_v2_odds.compute(predictions=with_null_odds(best_spans, null_odds), references=hub_references)
    official = ["exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"]
    assert {key: scored[key] for key in official} == {key: reported[key] for key in official}
    at_one = squad_v2_odds.compute(predictions=with_null_odds(best_spans, null_odds), references=hub_references,
                                   no_answer_threshold=1.0)
    assert at_one["f1"] != scored["f1"]


def test_null_odds_given_as_probabilities_are_refused_unless_a_threshold_is_given(squad_v2):
    predictions = [{"id": "q", "prediction_text": "", "no_answer_probability": 2.3}]
    references = [{"id": "q", "answers": {"text": [], "answer_start": []}}]
    with pytest.raises(ValueError, match="not a probability: .* 'null_odds' configuration"):
        squad_v2.compute(predictions=predictions, references=references)
    assert squad_v2.compute(predictions=predictions, references=references, no_answer_threshold=0.0)["exact"] == 100


LOAD_ELSEWHERE = """
import importlib.util, json, sys
import evaluate
assert importlib.util.find_spec("squad") is None and importlib.util.find_spec("utils_qa") is None
inputs = json.load(open("inputs.json"))
metric = evaluate.load(sys.argv[1], "null_odds")
print(json.dumps(metric.compute(**inputs)))
"""


def test_loads_by_path_from_another_working_directory(tmp_path, real_sample):
    """A fresh interpreter in an empty folder, where neither the recipe nor its squad package is importable, with
    an empty module cache: evaluate copies the module and its metric file there and scores as the recipe does."""
    references, hub_references, answers, best_spans, null_odds = real_sample
    inputs = {"predictions": with_null_odds(answers, null_odds), "references": hub_references,
              "no_answer_threshold": BLANKED_AT, "non_null_predictions": best_spans}
    (tmp_path / "inputs.json").write_text(json.dumps(inputs), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    completed = subprocess.run([sys.executable, "-c", LOAD_ELSEWHERE, METRIC], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    expected = compute_squad_metrics(references, answers, null_odds, null_odds_threshold=BLANKED_AT,
                                     non_null_predictions=best_spans)
    assert json.loads(completed.stdout.splitlines()[-1]) == pytest.approx(expected, rel=1e-15)
