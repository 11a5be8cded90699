"""SQuAD 2.0 scores as an `evaluate` module: the Hub `squad_v2` metric's inputs and keys, computed by `utils_qa`.

    import evaluate
    squad_v2 = evaluate.load("metrics/squad_v2")  # a path: loads offline, from the recipe's folder
    squad_v2.compute(predictions=[{"id", "prediction_text", "no_answer_probability"}, ...],
                     references=[{"id", "answers": {"text": [...], "answer_start": [...]}}, ...])

The numbers come from `utils_qa.compute_squad_metrics`, the metric run_qa.py reports, so the module needs the
recipe's folder on the Python path (run from it, or add it to PYTHONPATH). `no_answer_probability` may be any real
number, such as the recipe's null odds, and is kept in double precision.

The best-threshold search admits each `prediction_text` as given, so answers already blanked ("") stay blank and
only thresholds up to the one used are searched. To search every threshold, give the best span of each question as
`prediction_text` (a question then counts as unanswered when its null odds exceed `no_answer_threshold`), or pass
`non_null_predictions={id: best span}` next to the blanked answers.
"""

import datasets
import evaluate

try:
    from utils_qa import compute_squad_metrics
except ImportError as error:
    raise ImportError(
        "the squad_v2 metric of this recipe scores with its utils_qa.py: run from the recipe's folder or add it to "
        "PYTHONPATH"
    ) from error

_INPUTS = """
Args:
    predictions: one dict per question: `id`, `prediction_text` ("" for no answer) and `no_answer_probability`
        (a probability, or null odds).
    references: one dict per question: `id` and `answers` ({"text": [...], "answer_start": [...]}, empty lists
        for an unanswerable question).
    no_answer_threshold: score a question as unanswered when its no_answer_probability exceeds this (default 1.0).
    non_null_predictions: optional {id: best span}, so that the best-threshold search covers every threshold.
Returns:
    exact, f1, total; HasAns_exact, HasAns_f1, HasAns_total and NoAns_* (each side when present); best_exact,
    best_exact_thresh, best_f1, best_f1_thresh: the Hub metric's keys. Beyond them: null_odds_auc (ROC AUC of
    no_answer_probability for telling unanswerable questions apart) and, with non_null_predictions,
    forced_HasAns_exact and forced_HasAns_f1 (the best spans' scores on answerable questions). Scores are
    percentages.
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _INPUTS)
class SquadV2(evaluate.Metric):
    """The official SQuAD 2.0 metric, as computed by the recipe."""

    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="Rajpurkar, Jia and Liang, Know What You Don't Know: Unanswerable Questions for SQuAD, ACL 2018",
            inputs_description=_INPUTS,
            features=datasets.Features({
                "predictions": {
                    "id": datasets.Value("string"),
                    "prediction_text": datasets.Value("string"),
                    "no_answer_probability": datasets.Value("float64"),
                },
                "references": {
                    "id": datasets.Value("string"),
                    "answers": datasets.Sequence(
                        {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
                    ),
                },
            }),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references, no_answer_threshold: float = 1.0, non_null_predictions=None):
        return compute_squad_metrics(
            references={reference["id"]: reference["answers"]["text"] for reference in references},
            predictions={prediction["id"]: prediction["prediction_text"] for prediction in predictions},
            null_odds={prediction["id"]: prediction["no_answer_probability"] for prediction in predictions},
            version_2_with_negative=True,
            null_odds_threshold=no_answer_threshold,
            non_null_predictions=non_null_predictions,
        )
