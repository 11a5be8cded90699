"""The names Hugging Face's question-answering examples import from `utils_qa`, and the `score` command.

    python utils_qa.py score DATA PREDICTIONS [--null-odds NULL_ODDS]

The code lives in the `squad` package, one module per concern (the README's Layout lists them). Code outside it
imports from here (qa_pipeline.py from `squad.pipeline`), `squad/` modules from each other; new names join `__all__`.
`squad/pipeline.py` ships with every checkpoint with the modules it imports relatively (`features.py`, `settings.py`,
`spans.py`), so they need no more than numpy, torch and transformers.
"""

import argparse
import json
import logging
import math
import sys

from cli_errors import run_command
from metrics.squad_v2.squad_metric import (
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
from squad.alignment import AlignmentReport, align_answers, aligned_answer_start
from squad.calibration import (
    answer_similarity_scale,
    article_keys,
    calibrated_null_threshold,
    split_calibration_articles,
)
from squad.data import (
    SQUAD_FEATURES,
    DataFormatError,
    has_unanswerable,
    load_qa_datasets,
    load_squad_file,
    references_from_dataset,
)
from squad.features import (
    answer_token_span,
    context_token_range,
    prepare_eval_features,
    prepare_train_features,
    question_token_budget,
    truncate_questions,
)
from squad.postprocess import (
    NBestLists,
    QAPredictions,
    context_offsets,
    feature_example_indices,
    postprocess_qa_predictions,
    select_answers,
    stack_logits,
    write_predictions,
)
from squad.scoring import score_files
from squad.settings import FLAG_DEFAULTS, QASettings, check_window_settings, resolve_settings
from squad.spans import NULL_ODDS_WITHOUT_SPAN, ContextOffsets
from squad.training import (
    DeviceCapabilities,
    Precision,
    adafactor_options,
    choose_precision,
    cpu_flags,
    parameter_groups,
    refuse_deepspeed_with_adafactor,
)

__all__ = [
    # squad.data
    "SQUAD_FEATURES", "AlignmentReport", "DataFormatError", "align_answers", "aligned_answer_start",
    "has_unanswerable", "load_qa_datasets", "load_squad_file", "references_from_dataset",
    # squad.features
    "answer_token_span", "context_token_range", "prepare_eval_features", "prepare_train_features",
    "question_token_budget", "truncate_questions",
    # squad.postprocess and squad.spans
    "NBestLists", "QAPredictions", "context_offsets", "feature_example_indices", "postprocess_qa_predictions",
    "select_answers", "stack_logits", "write_predictions", "NULL_ODDS_WITHOUT_SPAN", "ContextOffsets",
    # squad.calibration
    "article_keys", "calibrated_null_threshold", "answer_similarity_scale", "split_calibration_articles",
    # metrics.squad_v2.squad_metric
    "apply_no_answer_threshold", "best_null_score_diff_threshold", "compute_exact", "compute_f1",
    "compute_squad_metrics", "find_best_thresh", "forced_answer_scores", "normalize_answer", "null_odds_auc",
    "raw_scores",
    # squad.training
    "DeviceCapabilities", "Precision", "adafactor_options", "choose_precision", "cpu_flags", "parameter_groups",
    "refuse_deepspeed_with_adafactor",
    # squad.settings
    "FLAG_DEFAULTS", "QASettings", "check_window_settings", "resolve_settings",
    # squad.scoring and the score command
    "score_files", "main",
]


def argument_parser() -> argparse.ArgumentParser:
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
    args = argument_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    def score() -> None:
        metrics = score_files(
            args.data_file, args.prediction_file, args.null_odds_file, args.null_odds_threshold, args.squad_version
        )
        print(json.dumps(metrics, indent=2))

    return run_command(score, user_errors=(DataFormatError,), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
