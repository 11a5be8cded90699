"""Answers out: span logits of a dataset's windows turned into answer texts, n-best lists, null odds and the
prediction files. The span search, shared with the question-answering pipeline, lives in `squad/spans.py`.
"""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import datasets
import numpy as np

from squad._shared import _MAX_IDS_SHOWN, _column, _few
from squad.spans import ContextOffsets, Spans, find_spans

logger = logging.getLogger(__name__)


@dataclass
class QAPredictions:
    """Answers chosen from span logits. An n-best entry has Hugging Face's keys `text`, `probability`, `score`
    (start_logit + end_logit), `start_logit`, `end_logit`, and the character offsets `start`/`end` into the context;
    SQuAD 2.0 adds the null answer to each list (text "", offsets 0/0, the [CLS] logits)."""

    answers: dict[str, str]  # final text per id, "" for no answer
    nbest: Mapping[str, list[dict]]  # the best spans per id, best first
    null_odds: dict[str, float] | None  # null score minus best span score (SQuAD 2.0 only)
    non_null_answers: dict[str, str] = field(default_factory=dict)  # the best span's text whatever the null odds say


class NBestLists(Mapping):
    """`{id: n-best list}` built on the first read, all at once: choosing answers needs only each example's best
    span, so the ~n_best_size dictionaries per question are made only for those who read them (nbest_predictions.json).

    `spans` are `find_spans`' candidates; `null` is `(feature, score)` per example for SQuAD 2.0, else None. The
    lists are shared between reads: treat them as read-only.
    """

    def __init__(self, example_ids, contexts, spans: Spans, null, offsets, start_logits, end_logits):
        self._row_of = {question_id: row for row, question_id in enumerate(example_ids)}
        self._inputs = (contexts, spans, null, offsets, start_logits, end_logits)

    def __getitem__(self, question_id: str) -> list[dict]:
        return self._lists[self._row_of[question_id]]

    def __iter__(self):
        return iter(self._row_of)

    def __len__(self) -> int:
        return len(self._row_of)

    def __repr__(self) -> str:
        return f"NBestLists({len(self)} questions)"

    @cached_property
    def _lists(self) -> list[list[dict]]:
        """Every example's n-best list, in example order. The null answer (SQuAD 2.0) is the [CLS] of the lowest-scoring
        window, placed after spans of equal score; probabilities are a softmax over each list."""
        contexts, spans, null, offsets, start_logits, end_logits = self._inputs
        bounds, feature, start, end, score = spans.bounds, spans.feature, spans.start, spans.end, spans.score  # (C,)
        num_examples = len(bounds) - 1
        example = np.repeat(np.arange(num_examples), np.diff(bounds))  # (C,)
        if null is not None:
            null_feature, null_score = null  # (E,) each
            ahead = np.bincount(example, weights=score >= null_score[example], minlength=num_examples)  # (E,)
            position = bounds[:-1] + ahead.astype(np.int64)
            feature, score = np.insert(feature, position, null_feature), np.insert(score, position, null_score)
            start, end = np.insert(start, position, 0), np.insert(end, position, 0)
            example = np.insert(example, position, np.arange(num_examples))
            bounds = bounds + np.arange(num_examples + 1)
        nonempty = bounds[1:] > bounds[:-1]  # (E,)
        top_score = np.zeros(num_examples)
        top_score[nonempty] = score[bounds[:-1][nonempty]]  # lists are sorted, so the first score is the largest
        weight = np.exp(score - top_score[example])  # (C,)
        probability = weight / np.bincount(example, weights=weight, minlength=num_examples)[example]  # (C,)
        first_char, last_char = offsets.char_span(feature, start, end)
        entries = [
            {"text": contexts[row][begin:stop], "probability": p, "score": total, "start_logit": s, "end_logit": e,
             "start": begin, "end": stop}
            for row, begin, stop, p, total, s, e in zip(
                example.tolist(), first_char.tolist(), last_char.tolist(), probability.tolist(), score.tolist(),
                start_logits[feature, start].tolist(), end_logits[feature, end].tolist(),
            )
        ]
        bounds = bounds.tolist()
        return [entries[bounds[row] : bounds[row + 1]] for row in range(num_examples)]


def select_answers(examples: datasets.Dataset, features: datasets.Dataset, predictions: tuple[np.ndarray, np.ndarray],
                   version_2_with_negative: bool = False, n_best_size: int = 20, max_answer_length: int = 30,
                   null_score_diff_threshold: float = 0.0) -> QAPredictions:
    """Return the answer, the n-best spans and (SQuAD 2.0) the null odds of every example.

    `predictions` are `(start_logits, end_logits)`, (num_features, width); columns past a window's length are ignored.
    A span scores start_logit + end_logit; `squad/spans.py` searches the `n_best_size` best starts and ends among
    context tokens for valid spans (end >= start, at most `max_answer_length` tokens; equal scores keep window
    order). With `version_2_with_negative` an example answers "" when its null odds (lowest [CLS] score minus best
    span score) exceed `null_score_diff_threshold`; one without a valid span answers "" (`NULL_ODDS_WITHOUT_SPAN`).
    """
    start_logits, end_logits = _checked_logits(predictions, len(features))  # (F, W) each
    example_ids, contexts = _column(examples, "id"), _column(examples, "context")
    feature_example = feature_example_indices(example_ids, _column(features, "example_id"))  # (F,)
    offsets = context_offsets(features, start_logits.shape[1])
    spans = find_spans(feature_example, len(example_ids), offsets.in_context, start_logits, end_logits, n_best_size,
                       max_answer_length)
    has_span = spans.has_span  # (E,)
    best = spans.best[has_span]
    non_null = dict.fromkeys(example_ids, "")
    first_chars, last_chars = offsets.char_span(spans.feature[best], spans.start[best], spans.end[best])
    for row, first_char, last_char in zip(np.flatnonzero(has_span).tolist(), first_chars.tolist(), last_chars.tolist()):
        non_null[example_ids[row]] = contexts[row][first_char:last_char]
    null = (spans.null_feature, spans.null_score) if version_2_with_negative else None
    nbest = NBestLists(example_ids, contexts, spans, null, offsets, start_logits, end_logits)
    answers = dict(non_null)
    for row in np.flatnonzero(spans.no_answer(version_2_with_negative, null_score_diff_threshold)).tolist():
        answers[example_ids[row]] = ""
    null_odds = dict(zip(example_ids, spans.null_odds().tolist())) if version_2_with_negative else None
    return QAPredictions(answers, nbest, null_odds, non_null)


def _checked_logits(predictions, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Return `(start_logits, end_logits)` as float arrays (num_features, width), refusing shapes and NaN that would
    give wrong answers silently."""
    start_logits, end_logits = (np.asarray(logits) for logits in predictions)
    if start_logits.shape != end_logits.shape or start_logits.ndim != 2 or len(start_logits) != num_features:
        raise ValueError(f"expected start and end logits of shape ({num_features}, width), got {start_logits.shape} "
                         f"and {end_logits.shape}")
    if np.isnan(start_logits).any() or np.isnan(end_logits).any():
        raise ValueError("the logits contain NaN; the model diverged or ran in a precision too low for it")
    if start_logits.dtype == np.float64:
        return start_logits, end_logits
    return start_logits.astype(np.float32, copy=False), end_logits.astype(np.float32, copy=False)


def feature_example_indices(example_ids: list[str], feature_example_ids: list[str]) -> np.ndarray:
    """Return, for every feature, the row of its example; raise when examples and features do not match."""
    row_of = {question_id: row for row, question_id in enumerate(example_ids)}
    unknown = [question_id for question_id in feature_example_ids if question_id not in row_of]
    if unknown:
        raise ValueError(f"{len(unknown)} feature(s) belong to examples that are not given (e.g. {_few(unknown)}); "
                         "pass the examples the features were built from")
    rows = np.fromiter(map(row_of.__getitem__, feature_example_ids), dtype=np.int64, count=len(feature_example_ids))
    without_features = np.setdiff1d(np.arange(len(example_ids)), rows)
    if len(without_features):
        missing = [example_ids[row] for row in without_features[:_MAX_IDS_SHOWN]]
        raise ValueError(f"{len(without_features)} example(s) have no features (e.g. {_few(missing)}); "
                         "build the features from exactly these examples")
    return rows


def context_offsets(features: datasets.Dataset, width: int) -> ContextOffsets:
    """Return the context tokens and their character offsets from the features' `offset_mapping`, read straight from
    Arrow: Python lists of thousands of windows' offsets would cost more than the whole span search."""
    mapping = features.with_format("arrow")["offset_mapping"]
    mapping = mapping.chunk(0) if mapping.num_chunks == 1 else mapping.combine_chunks()
    if mapping.null_count:
        raise ValueError("some features have no offset_mapping; build them with prepare_eval_features")
    lengths = mapping.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)  # (F,)
    if len(lengths) and lengths.max() > width:
        raise ValueError(f"a feature has {lengths.max()} tokens but the logits only {width} columns")
    tokens = mapping.flatten()  # one entry per token: [start, end] in the context, null elsewhere
    token_in_context = tokens.is_valid().to_numpy(zero_copy_only=False)  # (T,)
    pairs = tokens.flatten().to_numpy(zero_copy_only=False) if token_in_context.any() else np.zeros(0)
    if len(pairs) != 2 * token_in_context.sum():
        raise ValueError("every offset_mapping entry must be a [start, end] pair or None")
    in_context = np.zeros((len(lengths), width), dtype=bool)
    in_context[np.arange(width) < lengths[:, None]] = token_in_context  # row-major order is the flat token order
    return ContextOffsets(
        in_context=in_context,
        first_token=np.cumsum(lengths) - lengths,
        pair_of_token=np.cumsum(token_in_context, dtype=np.int32) - 1,
        pairs=pairs.astype(np.int64).reshape(-1, 2),
    )


def stack_logits(batches, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Return `(start_logits, end_logits)` as two `(num_features, longest)` float32 arrays padded with -100.

    `batches` is what `Trainer.evaluation_loop` gathered: one `(start, end)` pair already concatenated or, with
    `eval_do_concat_batches=False`, per-batch pairs of their own widths, copied once into the padded arrays.
    """
    if isinstance(batches, tuple) and isinstance(batches[0], np.ndarray):
        batches = [batches]
    longest = max(start.shape[1] for start, _ in batches)
    start_logits = np.full((num_features, longest), -100.0, dtype=np.float32)
    end_logits = np.full((num_features, longest), -100.0, dtype=np.float32)
    row = 0
    for start, end in batches:
        rows, width = start.shape
        start_logits[row : row + rows, :width] = start
        end_logits[row : row + rows, :width] = end
        row += rows
    if row != num_features:
        raise RuntimeError(f"gathered logits for {row} features, expected {num_features}")
    return start_logits, end_logits


def write_predictions(result: QAPredictions, output_dir: str | Path, prefix: str | None = None) -> dict[str, str]:
    """Write predictions.json, nbest_predictions.json and, for SQuAD 2.0, null_odds.json and
    nonnull_predictions.json (the best span whatever the null odds say), the files the official evaluation script
    and `python utils_qa.py score` read; return their paths by kind. A `prefix` makes `{prefix}_predictions.json`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    contents = {"predictions": result.answers, "nbest_predictions": dict(result.nbest)}
    if result.null_odds is not None:
        contents["null_odds"] = result.null_odds
        contents["nonnull_predictions"] = result.non_null_answers
    paths = {}
    for kind, content in contents.items():
        path = output_dir / (f"{prefix}_{kind}.json" if prefix else f"{kind}.json")
        path.write_text(json.dumps(content, indent=4, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
        paths[kind] = str(path)
    logger.info("wrote %s", ", ".join(paths.values()))
    return paths


def postprocess_qa_predictions(examples: datasets.Dataset, features: datasets.Dataset,
                               predictions: tuple[np.ndarray, np.ndarray], version_2_with_negative: bool = False,
                               n_best_size: int = 20, max_answer_length: int = 30,
                               null_score_diff_threshold: float = 0.0, output_dir: str | Path | None = None,
                               prefix: str | None = None) -> dict[str, str]:
    """Return `{id: answer text}` (see `select_answers`), writing the prediction files when `output_dir` is given;
    the name and argument order of Hugging Face's question-answering examples."""
    result = select_answers(examples, features, predictions, version_2_with_negative, n_best_size, max_answer_length,
                            null_score_diff_threshold)
    if output_dir is not None:
        write_predictions(result, output_dir, prefix)
    return result.answers
