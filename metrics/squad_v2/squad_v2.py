"""SQuAD 2.0 scores as an `evaluate` module: the Hub `squad_v2` metric's inputs and keys, the recipe's numbers
(squad_metric.py beside this file, which `evaluate` copies into its cache with it).

Load it by path, from any working directory, offline:

    import evaluate
    squad_v2 = evaluate.load("/path/to/recipe/metrics/squad_v2")              # no_answer_probability, as on the Hub
    squad_v2 = evaluate.load("/path/to/recipe/metrics/squad_v2", "null_odds")  # the null odds run_qa.py writes

Probabilities outside [0, 1] without a `no_answer_threshold` are refused: they cannot be probabilities, and the
default threshold would silently score them as something else. The "null_odds" configuration scores the null odds of
`*_null_odds.json` at run_qa.py's default `--null_score_diff_threshold`; for a model that saved its threshold, pass
`no_answer_threshold=model.config.qa_settings["null_score_diff_threshold"]`. The best-threshold search admits each
`prediction_text` as given, blanked answers ("") staying blank; to search every threshold, give the best spans as
`prediction_text`, or pass `non_null_predictions={id: best span}` (`*_nonnull_predictions.json`).
"""

import datasets
import evaluate

from .squad_metric import compute_squad_metrics

NULL_ODDS = "null_odds"
PROBABILITY = "no_answer_probability"
# Per configuration: the prediction field that says how likely "no answer" is, and the threshold it defaults to.
NO_ANSWER_FIELD = {"default": PROBABILITY, NULL_ODDS: NULL_ODDS}
DEFAULT_THRESHOLD = {PROBABILITY: 1.0, NULL_ODDS: 0.0}

_INPUTS = """
Args:
    predictions: one dict per question: `id`, `prediction_text` ("" for no answer) and either
        `no_answer_probability` (default configuration) or `null_odds` ("null_odds" configuration).
    references: one dict per question: `id` and `answers` ({"text": [...], "answer_start": [...]}, empty lists
        for an unanswerable question).
    no_answer_threshold: score a question as unanswered when its no_answer_probability or null_odds exceeds this
        (default 1.0 for probabilities, 0.0 for null odds).
    non_null_predictions: optional {id: best span}, so that the best-threshold search covers every threshold.
Returns:
    exact, f1, total; HasAns_exact, HasAns_f1, HasAns_total and NoAns_* (each side when present); best_exact,
    best_exact_thresh, best_f1, best_f1_thresh: the Hub metric's keys. Beyond them: null_odds_auc (ROC AUC of the
    no-answer scores for telling unanswerable questions apart) and, with non_null_predictions, forced_HasAns_exact
    and forced_HasAns_f1 (the best spans' scores on answerable questions). Scores are percentages.
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _INPUTS)
class SquadV2(evaluate.Metric):
    """The official SQuAD 2.0 metric, as computed by the recipe."""

    def _info(self):
        if self.config_name not in NO_ANSWER_FIELD:
            raise ValueError(f"unknown configuration {self.config_name!r}: leave it out, or pass {NULL_ODDS!r}")
        return evaluate.MetricInfo(
            description=__doc__,
            citation="Rajpurkar, Jia and Liang, Know What You Don't Know: Unanswerable Questions for SQuAD, ACL 2018",
            inputs_description=_INPUTS,
            features=datasets.Features({
                "predictions": {
                    "id": datasets.Value("string"),
                    "prediction_text": datasets.Value("string"),
                    NO_ANSWER_FIELD[self.config_name]: datasets.Value("float64"),
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

    def _compute(self, predictions, references, no_answer_threshold: float | None = None, non_null_predictions=None):
        field = NO_ANSWER_FIELD[self.config_name]
        no_answer = {prediction["id"]: prediction[field] for prediction in predictions}
        if no_answer_threshold is None:
            if field == PROBABILITY:
                _require_probabilities(no_answer)
            no_answer_threshold = DEFAULT_THRESHOLD[field]
        return compute_squad_metrics(
            references={reference["id"]: reference["answers"]["text"] for reference in references},
            predictions={prediction["id"]: prediction["prediction_text"] for prediction in predictions},
            null_odds=no_answer,
            version_2_with_negative=True,
            null_odds_threshold=no_answer_threshold,
            non_null_predictions=non_null_predictions,
        )


def _require_probabilities(no_answer: dict[str, float]) -> None:
    """Raise when a no_answer_probability lies outside [0, 1], naming the question: null odds given as probabilities
    would otherwise be scored at the probabilities' threshold without a word."""
    outside = next((question_id for question_id, value in no_answer.items() if not 0.0 <= value <= 1.0), None)
    if outside is not None:
        raise ValueError(
            f"no_answer_probability of {outside!r} is {no_answer[outside]}, not a probability: for run_qa.py's null "
            f"odds load the module with the {NULL_ODDS!r} configuration and pass them as {NULL_ODDS!r}, or give "
            "no_answer_threshold"
        )
