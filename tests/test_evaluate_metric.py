"""`evaluate.load("metrics/squad_v2")`: offline, the Hub squad_v2 metric's inputs and outputs, utils_qa's numbers."""

import random
from pathlib import Path

import evaluate
import pytest

from utils_qa import compute_squad_metrics, load_squad_file, references_from_dataset

ROOT = Path(__file__).resolve().parents[1]
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
    return evaluate.load(str(ROOT / "metrics" / "squad_v2"))


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


def test_real_sample_gives_exactly_the_numbers_of_compute_squad_metrics(squad_v2):
    dataset = load_squad_file(REAL_SAMPLE)
    references = references_from_dataset(dataset)
    answers, best_spans, null_odds = sample_predictions(references)
    hub_references = [{"id": row["id"], "answers": row["answers"]} for row in dataset]

    def hub_predictions(texts):
        return [{"id": qid, "prediction_text": texts[qid], "no_answer_probability": null_odds[qid]}
                for qid in references]

    as_answered = squad_v2.compute(predictions=hub_predictions(answers), references=hub_references,
                                   no_answer_threshold=BLANKED_AT)
    assert as_answered == compute_squad_metrics(references, answers, null_odds, null_odds_threshold=BLANKED_AT)

    every_threshold = squad_v2.compute(predictions=hub_predictions(answers), references=hub_references,
                                       no_answer_threshold=BLANKED_AT, non_null_predictions=best_spans)
    expected = compute_squad_metrics(references, answers, null_odds, null_odds_threshold=BLANKED_AT,
                                     non_null_predictions=best_spans)
    assert every_threshold == expected
    assert expected["best_f1_thresh"] > BLANKED_AT  # the search went past the threshold the answers were blanked at
    assert expected["best_f1"] > as_answered["best_f1"]
    assert expected["HasAns_total"] + expected["NoAns_total"] == len(references) == 208
