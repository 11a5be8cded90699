"""The names Hugging Face's question-answering examples import from `utils_qa`, and the `score` command.

    python utils_qa.py score DATA PREDICTIONS [--null-odds NULL_ODDS]

The code lives in the `squad` package, one module per concern, in the order data flows:

- `squad/data.py`: data comes in. SQuAD files and Hub datasets are read, checked and aligned (`load_qa_datasets`).
- `squad/features.py`: rows become tokenised windows with labels or offsets (`prepare_train_features`).
- `squad/postprocess.py`: answers go out. Logits become answers and prediction files (`select_answers`), through
  the span search and decision rule of `squad/spans.py`.
- `squad/metric.py`: the official SQuAD metric (`compute_squad_metrics`).

`squad/pipeline.py`, the question-answering pipeline, ships with every saved checkpoint together with the two
modules it imports relatively, `features.py` and `spans.py`; those three need no more than numpy, torch and
transformers (`qa_pipeline.py` is its face here).

Import rule: code outside the package (run_qa.py, trainer_qa.py, bench/, tests/) imports from this module, and
qa_pipeline.py from `squad.pipeline`; modules inside `squad/` import from each other, never from here. A new public
name joins `__all__` below.
"""

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from cli_errors import run_command
from squad._shared import _few
from squad.calibration import (
    article_keys,
    calibrated_null_threshold,
    similarity_weight,
    split_calibration_articles,
)
from squad.data import (
    SQUAD_FEATURES,
    AlignmentReport,
    DataFormatError,
    _json_error,
    _read_text,
    align_answers,
    aligned_answer_start,
    has_unanswerable,
    load_qa_datasets,
    load_squad_file,
    references_from_dataset,
)
from squad.features import (
    NO_SPAN_LABEL,
    answer_token_span,
    context_token_range,
    prepare_eval_features,
    prepare_train_features,
    question_token_budget,
    truncate_questions,
)
from squad.metric import (
    apply_no_answer_threshold,
    best_null_score_diff_threshold,
    compute_exact,
    compute_f1,
    compute_squad_metrics,
    find_best_thresh,
    forced_answer_scores,
    normalize_answer,
    null_odds_auc,
    raw_scores,
)
from squad.postprocess import (
    NULL_ODDS_WITHOUT_SPAN,
    ContextOffsets,
    NBestLists,
    QAPredictions,
    context_offsets,
    feature_example_indices,
    postprocess_qa_predictions,
    select_answers,
    stack_logits,
    write_predictions,
)

__all__ = [
    # squad.data
    "SQUAD_FEATURES", "AlignmentReport", "DataFormatError", "align_answers", "aligned_answer_start",
    "has_unanswerable", "load_qa_datasets", "load_squad_file", "references_from_dataset",
    # squad.features
    "NO_SPAN_LABEL", "answer_token_span", "context_token_range", "prepare_eval_features", "prepare_train_features",
    "question_token_budget", "truncate_questions",
    # squad.postprocess
    "NULL_ODDS_WITHOUT_SPAN", "ContextOffsets", "NBestLists", "QAPredictions", "context_offsets",
    "feature_example_indices", "postprocess_qa_predictions", "select_answers", "stack_logits", "write_predictions",
    # squad.calibration
    "article_keys", "calibrated_null_threshold", "similarity_weight", "split_calibration_articles",
    # squad.metric
    "apply_no_answer_threshold", "best_null_score_diff_threshold", "compute_exact", "compute_f1",
    "compute_squad_metrics", "find_best_thresh", "forced_answer_scores", "normalize_answer", "null_odds_auc",
    "raw_scores",
    # the score command
    "score_files", "main",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# Scoring command
# ----------------------------------------------------------------------------------------------------------------


def score_files(
    data_file: str | Path,
    prediction_file: str | Path,
    null_odds_file: str | Path | None = None,
    null_odds_threshold: float = math.inf,
    squad_version: str = "auto",
) -> dict[str, float]:
    """Return the metrics of a predictions file against a SQuAD data file, like the official evaluation script.

    `squad_version` "auto" scores as SQuAD 2.0 when the data has unanswerable questions or null odds are given.
    The default `null_odds_threshold` blanks nothing, so the answers are scored as written: they already carry the
    threshold they were made with (a calibrated one can be above the official script's 1.0, meant for probabilities).
    """
    dataset = load_squad_file(data_file)
    references = references_from_dataset(dataset)
    predictions = _read_id_map(Path(prediction_file), str, "an answer string")
    _check_prediction_ids(references, predictions, Path(prediction_file), Path(data_file))
    null_odds = None
    if null_odds_file is not None:
        null_odds = _read_id_map(Path(null_odds_file), (int, float), "a number")
        _check_prediction_ids(references, null_odds, Path(null_odds_file), Path(data_file))
    detected = null_odds is not None or has_unanswerable(dataset)
    version_2 = squad_version == "2" or (squad_version == "auto" and detected)
    return compute_squad_metrics(references, predictions, null_odds, version_2, null_odds_threshold)


def _read_id_map(path: Path, value_type, description: str) -> dict:
    """Return a JSON object mapping question ids to values of `value_type`, or raise naming the bad entry."""
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; check the path")
    try:
        content = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise _json_error(path, error) from None
    if not isinstance(content, dict):
        raise DataFormatError(f"{path}: expected a JSON object {{id: value}}, got a {type(content).__name__}")
    for question_id, value in content.items():
        if not isinstance(value, value_type) or isinstance(value, bool):
            raise DataFormatError(f"{path}: id '{question_id}': value must be {description}, got {value!r:.40}")
    return content


def _check_prediction_ids(references: dict, given: dict, path: Path, data_file: Path) -> None:
    """Raise when `given` misses questions of the data file; warn about ids the data file does not have."""
    missing = [question_id for question_id in references if question_id not in given]
    if missing:
        raise DataFormatError(
            f"{path}: no entry for {len(missing)} of {len(references)} questions of {data_file} "
            f'(e.g. {_few(missing)}); give one for every question ("" means no answer)'
        )
    extra = [question_id for question_id in given if question_id not in references]
    if extra:
        logger.warning(
            "%s: %d ids are not questions of %s and are ignored (e.g. %s)", path, len(extra), data_file, _few(extra)
        )


def _argument_parser() -> argparse.ArgumentParser:
    """Return the command-line parser (one subcommand, `score`)."""
    parser = argparse.ArgumentParser(prog="utils_qa.py", description="SQuAD utilities.")
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score", help="score a predictions file against a SQuAD data file; prints the metrics as JSON",
        description="Score predictions like the official SQuAD evaluation script (v1.1 or v2.0 by content).",
    )
    score.add_argument("data_file", help="SQuAD data: official nested JSON, or flat .json/.jsonl/.csv/.parquet rows")
    score.add_argument("prediction_file", help='JSON object {id: answer text}, "" for no answer (predictions.json)')
    score.add_argument("--null-odds", dest="null_odds_file", help="JSON object {id: null odds} (null_odds.json)")
    score.add_argument(
        "--null-odds-threshold", type=float, default=math.inf,
        help="also score an id as no answer when its null odds exceed this (the official --na-prob-thresh); "
             "default: the answers as written, which already carry the threshold they were made with",
    )
    score.add_argument(
        "--squad-version", choices=("auto", "1", "2"), default="auto",
        help="metric keys to report; auto: 2 when the data has unanswerable questions or null odds are given",
    )
    score.add_argument("--debug", action="store_true", help="show the traceback of input errors too")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (2 with a one-line error for bad input)."""
    args = _argument_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    def score() -> None:
        metrics = score_files(
            args.data_file, args.prediction_file, args.null_odds_file, args.null_odds_threshold, args.squad_version
        )
        print(json.dumps(metrics, indent=2))

    return run_command(score, user_errors=(DataFormatError,), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
