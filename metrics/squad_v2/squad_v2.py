"""SQuAD 2.0 scores as an `evaluate` module: the Hub `squad_v2` metric's inputs and keys, the recipe's numbers.

Load it by path, from any working directory, offline:

    import evaluate
    squad_v2 = evaluate.load("/path/to/recipe/metrics/squad_v2")              # no_answer_probability, as on the Hub
    squad_v2 = evaluate.load("/path/to/recipe/metrics/squad_v2", "null_odds")  # the null odds run_qa.py writes

By default each prediction is `{"id", "prediction_text", "no_answer_probability"}`, and a question counts as
unanswered when the probability exceeds `no_answer_threshold` (default 1.0, the official script's); values outside
[0, 1] without a `no_answer_threshold` are refused, since they cannot be probabilities and that threshold would
silently score them as something else. The "null_odds" configuration takes `{"id", "prediction_text", "null_odds"}`,
the null odds of `*_null_odds.json`, with `no_answer_threshold` defaulting to run_qa.py's
`--null_score_diff_threshold` 0.0; for a model that saved its threshold, pass
`no_answer_threshold=model.config.qa_settings["null_score_diff_threshold"]`.

The numbers come from the recipe's own metric, squad_metric.py beside this file, which `evaluate` copies into its
cache with this file. Its best-threshold search admits each `prediction_text` as given, blanked answers ("") staying
blank; to search every threshold, give each question's best span as `prediction_text`, or pass
`non_null_predictions={id: best span}` (`*_nonnull_predictions.json`) next to the blanked answers.
"""

import datasets
import evaluate

from .squad_metric import compute_squad_metrics

NULL_ODDS = "null_odds"
PROBABILITY = "no_answer_probability"
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
    no-answer scores for telling unanswerable questions apart) and, with non_null_predictions,
    forced_HasAns_exact and forced_HasAns_f1 (the best spans' scores on answerable questions). Scores are
    percentages.
"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _INPUTS)
class SquadV2(evaluate.Metric):
    """The official SQuAD 2.0 metric, as computed by the recipe."""

    def _info(self):
        if self.config_name not in ("default", NULL_ODDS):
            raise ValueError(f"unknown configuration {self.config_name!r}: leave it out, or pass {NULL_ODDS!r}")
        return evaluate.MetricInfo(
            description=__doc__,
            citation="Rajpurkar, Jia and Liang, Know What You Don't Know: Unanswerable Questions for SQuAD, ACL 2018",
            inputs_description=_INPUTS,
            features=datasets.Features({
                "predictions": {
                    "id": datasets.Value("string"),
                    "prediction_text": datasets.Value("string"),
                    self._no_answer_field: datasets.Value("float64"),
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

    @property
    def _no_answer_field(self) -> str:
        """The prediction field that says how likely "no answer" is: null odds or a probability."""
        return NULL_ODDS if self.config_name == NULL_ODDS else PROBABILITY

    def _compute(self, predictions, references, no_answer_threshold: float | None = None, non_null_predictions=None):
        field = self._no_answer_field
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
