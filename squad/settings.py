"""How a model cuts questions into windows and turns logits into answers, and the checks of those settings.

`run_qa.py` evaluates with `QASettings` and saves them as `config.qa_settings`; the pipeline reads them back under
transformers 4.x's argument names, so every consumer of a model answers as its evaluation did. The module ships with
every checkpoint (the pipeline imports it relatively), so it needs only the standard library and numpy.
"""

from dataclasses import dataclass
from numbers import Real

import numpy as np


@dataclass(frozen=True)
class QASettings:
    """A model's window, answer and decision settings; the defaults are the recipe's.

    The answer is "" when null score minus best span score exceeds `null_score_diff_threshold` (its source: a
    calibration split, a flag, the default). A model with a sentence matcher lowers the null score by
    `answer_similarity_weight * (similarity - answer_similarity_center)`, chosen with the threshold on the
    calibration split; a weight of 0 leaves the null odds as the reader gives them.
    """

    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64
    max_answer_length: int = 30
    n_best_size: int = 20
    version_2_with_negative: bool = True
    null_score_diff_threshold: float = 0.0
    null_score_diff_threshold_source: str = "default"
    answer_similarity_weight: float = 0.0
    answer_similarity_center: float = 0.0


WINDOW_SETTINGS = ("max_seq_length", "doc_stride", "max_query_length")
SIMILARITY_SETTINGS = ("answer_similarity_weight", "answer_similarity_center")
# The settings a flag, else the model's `qa_settings`, else these defaults give.
FLAG_DEFAULTS = {name: getattr(QASettings, name) for name in (*WINDOW_SETTINGS, "max_answer_length", "n_best_size")}


def check_window_settings(max_seq_length: int | None, doc_stride: int | None, max_query_length: int | None,
                          names: tuple[str, str, str] = ("--max_seq_length", "--doc_stride", "--max_query_length"),
                          ) -> None:
    """Raise a ValueError naming the settings (by `names`, the caller's words for the three) when windows of them
    cannot hold a context; a setting that is None is not checked. A stride of 0 (windows share no token) is allowed.
    """
    seq_name, stride_name, query_name = names
    if doc_stride is not None and doc_stride < 0:
        raise ValueError(f"{stride_name} ({doc_stride}) must be at least 0")
    if max_seq_length is not None and doc_stride is not None and doc_stride >= max_seq_length:
        raise ValueError(f"{stride_name} ({doc_stride}) must be below {seq_name} ({max_seq_length})")
    if max_seq_length is not None and max_query_length is not None and max_query_length + 3 >= max_seq_length:
        raise ValueError(f"{query_name} ({max_query_length}) must leave room for the context: lower it or raise "
                         f"{seq_name} ({max_seq_length})")


def resolve_settings(given: dict, saved: dict | None, version_2: bool, training: bool) -> QASettings:
    """Return a run's settings, with where the threshold comes from.

    Each window or answer setting is `given` (a flag, or None), else the model's `saved` value, else the default.
    The threshold is the given one, else the model's; training starts it and the answer similarity's weight from 0
    until a calibration split replaces them. Raises ValueError when the windows cannot hold a context.
    """
    saved = saved or {}
    values = {name: given[name] if given.get(name) is not None else saved.get(name, default)
              for name, default in FLAG_DEFAULTS.items()}
    check_window_settings(values["max_seq_length"], values["doc_stride"], values["max_query_length"])
    threshold, source = 0.0, "default"
    if given.get("null_score_diff_threshold") is not None:
        threshold, source = given["null_score_diff_threshold"], "--null_score_diff_threshold"
    elif not training and "null_score_diff_threshold" in saved:
        threshold = saved["null_score_diff_threshold"]
        source = f"saved with the model ({saved.get('null_score_diff_threshold_source', 'unknown origin')})"
    similarity = {} if training else {name: saved[name] for name in SIMILARITY_SETTINGS if name in saved}
    return QASettings(**values, version_2_with_negative=version_2, null_score_diff_threshold=threshold,
                      null_score_diff_threshold_source=source, **similarity)


# The pipeline's arguments, under transformers 4.x's names, and its defaults: a model without `qa_settings` answers
# with them.
PIPELINE_DEFAULTS = {"max_seq_len": 384, "doc_stride": 128, "max_question_len": 64, "max_answer_len": 15,
                     "n_best_size": 20, "null_score_diff_threshold": 0.0, "handle_impossible_answer": False,
                     "top_k": 1, "align_to_words": True, "batch_size": 4}
# Where a model's `qa_settings` keeps each pipeline argument its evaluation used.
PIPELINE_NAMES = {"max_seq_len": "max_seq_length", "doc_stride": "doc_stride", "max_question_len": "max_query_length",
                  "max_answer_len": "max_answer_length", "n_best_size": "n_best_size",
                  "null_score_diff_threshold": "null_score_diff_threshold",
                  "handle_impossible_answer": "version_2_with_negative", "align_to_words": "align_to_words"}
# Each integer argument and the smallest value it takes.
INTEGER_MINIMUM = {"top_k": 1, "max_answer_len": 1, "max_seq_len": 1, "doc_stride": 0, "max_question_len": 1,
                   "n_best_size": 1, "batch_size": 1}
BOOLEAN_ARGUMENTS = ("handle_impossible_answer", "align_to_words")
PIPELINE_ARGUMENTS = (*INTEGER_MINIMUM, *BOOLEAN_ARGUMENTS, "null_score_diff_threshold")
# Names people bring from elsewhere, and what to write instead.
INSTEAD = {"topk": "top_k", "max_seq_length": "max_seq_len", "max_length": "max_seq_len",
           "max_query_length": "max_question_len", "max_question_length": "max_question_len",
           "max_answer_length": "max_answer_len", "version_2_with_negative": "handle_impossible_answer",
           "X": "question=..., context=...", "data": "question=..., context=..."}


def checked_arguments(arguments: dict, source: str = "") -> dict:
    """Return `arguments`, or raise ValueError naming the first one that is unknown or out of range (transformers
    4.x ignored an unknown one, so a misspelt setting answered with the default in silence)."""
    for name, value in arguments.items():
        if name not in PIPELINE_ARGUMENTS:
            hint = f"; use {INSTEAD[name]}" if name in INSTEAD else ""
            raise ValueError(f"unknown argument {name!r}{hint} (the pipeline takes question, context, "
                             f"{', '.join(PIPELINE_ARGUMENTS)})")
        if name in INTEGER_MINIMUM and (type(value) is not int or value < INTEGER_MINIMUM[name]):
            raise ValueError(f"{name} must be an integer >= {INTEGER_MINIMUM[name]}, got {value!r}{source}")
        if name in BOOLEAN_ARGUMENTS and not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}{source}")
        if name == "null_score_diff_threshold" and (not isinstance(value, Real) or isinstance(value, bool)
                                                    or np.isnan(value)):
            raise ValueError(f"null_score_diff_threshold must be a number, got {value!r}{source}")
    return arguments


def call_settings(qa_settings: dict | None, model_max_length: int, given: dict) -> dict:
    """Return every setting of a pipeline call: what it was given, else the model's `qa_settings`, else transformers
    4.x's defaults, so a model answers as its evaluation did without any argument.

    Evaluation cuts answers at token offsets, so a model with `qa_settings` does not widen answers to whole words
    unless they say `align_to_words`. Without them `max_seq_len` is at most the tokenizer's `model_max_length`. A
    call that changes only `max_seq_len` gets a `doc_stride` of `min(stride, max_seq_len // 2)`, where the stride is
    the model's or 128.
    """
    model = {name: qa_settings[key] for name, key in PIPELINE_NAMES.items()
             if qa_settings and qa_settings.get(key) is not None}
    if qa_settings:
        model.setdefault("align_to_words", False)
    checked_arguments(model, source=" (from the model's qa_settings in config.json)")
    settings = {**PIPELINE_DEFAULTS, **model, **given}
    if "max_seq_len" not in model and "max_seq_len" not in given:
        settings["max_seq_len"] = min(model_max_length, PIPELINE_DEFAULTS["max_seq_len"])
    if "doc_stride" not in given and ("max_seq_len" in given or "doc_stride" not in model):
        settings["doc_stride"] = min(model.get("doc_stride", PIPELINE_DEFAULTS["doc_stride"]),
                                     settings["max_seq_len"] // 2)
    check_window_settings(settings["max_seq_len"], settings["doc_stride"], None,
                          names=("max_seq_len", "doc_stride", "max_question_len"))
    return settings
