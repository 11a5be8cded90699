"""Answers out: span logits turned into answer texts, n-best lists and null odds, and the prediction files.

A change to how answers are chosen from logits, or to the files they are written to, touches only this file.
"""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np

from squad._shared import _MAX_IDS_SHOWN, _column, _few

logger = logging.getLogger(__name__)

# null_odds of an example whose windows hold no valid span at all: it can only answer "", whatever the threshold.
# A finite stand-in for +inf keeps null_odds.json strict JSON and sorts such examples last in the threshold search.
NULL_ODDS_WITHOUT_SPAN = 1e9


@dataclass
class QAPredictions:
    """Answers chosen from span logits.

    `answers` is the final text per id ("" for no answer); `nbest` the best spans per id, best first, each
    `{"text", "probability", "score", "start_logit", "end_logit", "start", "end"}`, Hugging Face's keys (`score` is
    start_logit + end_logit) and the character offsets `start`/`end` into the context (SQuAD 2.0 adds the null
    answer: text "", offsets 0/0, the [CLS] logits); `null_odds` is null score
    minus best span score (SQuAD 2.0 only); `non_null_answers` the best span's text whatever the null score says.
    """

    answers: dict[str, str]
    nbest: Mapping[str, list[dict]]
    null_odds: dict[str, float] | None
    non_null_answers: dict[str, str] = field(default_factory=dict)


class NBestLists(Mapping):
    """`{id: n-best list}` whose lists are built on the first read, all at once.

    Choosing answers needs only the best candidate of each example; the ~n_best_size dictionaries per question are
    what nbest_predictions.json and the pipeline read, so their texts, offsets and probabilities are made only when
    someone reads them. `candidates` are `(feature, start, end, score)` arrays grouped by example
    (`bounds[e]:bounds[e + 1]`) and best first; `null` is `(feature, score)` per example for SQuAD 2.0, else None.
    The lists are shared between reads: treat them as read-only.
    """

    def __init__(self, example_ids, contexts, candidates, bounds, null, offsets, start_logits, end_logits):
        self._row_of = {question_id: row for row, question_id in enumerate(example_ids)}
        self._contexts = contexts
        self._inputs = (candidates, bounds, null, offsets, start_logits, end_logits)
        self._lists = None

    def __getitem__(self, question_id: str) -> list[dict]:
        row = self._row_of[question_id]
        if self._lists is None:
            self._lists = self._build()
        return self._lists[row]

    def __iter__(self):
        return iter(self._row_of)

    def __len__(self) -> int:
        return len(self._row_of)

    def __repr__(self) -> str:
        return f"NBestLists({len(self)} questions)"

    def _build(self) -> list[list[dict]]:
        """Return every example's n-best list, in example order."""
        bounds, (first_char, last_char, probability, score, start_logit, end_logit) = _nbest_columns(*self._inputs)
        example = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds)).tolist()
        contexts = self._contexts
        entries = [
            {"text": contexts[row][begin:stop], "probability": p, "score": total, "start_logit": s, "end_logit": e,
             "start": begin, "end": stop}
            for row, begin, stop, p, total, s, e in zip(
                example, first_char.tolist(), last_char.tolist(), probability.tolist(), score.tolist(),
                start_logit.tolist(), end_logit.tolist(),
            )
        ]
        bounds = bounds.tolist()
        return [entries[bounds[row] : bounds[row + 1]] for row in range(len(bounds) - 1)]


def _nbest_columns(candidates, bounds, null, offsets, start_logits, end_logits):
    """Return `(bounds, (first_char, last_char, probability, score, start_logit, end_logit))` of every n-best entry.

    For SQuAD 2.0 the null answer joins each list as one more entry ([CLS] of its lowest-scoring window, placed
    after spans of equal score); probabilities are a softmax over each list.
    """
    feature, start, end, score = candidates  # (C,) each
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
    columns = (first_char, last_char, probability, score, start_logits[feature, start], end_logits[feature, end])
    return bounds, columns


@dataclass(frozen=True)
class ContextOffsets:
    """Which tokens of each window belong to the context, and where they sit in its text.

    `in_context` is dense (num_features, width); the character offsets stay flat, one pair per context token, and
    are looked up only for the tokens that end up in an n-best list.
    """

    in_context: np.ndarray  # (F, W) bool
    first_token: np.ndarray  # (F,) flat index of each window's first token
    pair_of_token: np.ndarray  # (T,) for a context token, the row of its pair in `pairs`
    pairs: np.ndarray  # (P, 2) character [start, end) of each context token

    def char_span(self, feature: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the character start of token `start` and end of token `end` of each window (0, 0 outside the
        context)."""
        inside = self.in_context[feature, start] & self.in_context[feature, end]  # (C,)
        if not len(self.pairs):
            return np.zeros(len(feature), dtype=np.int64), np.zeros(len(feature), dtype=np.int64)
        start_pair = self.pair_of_token[self.first_token[feature] + start]  # (C,)
        end_pair = self.pair_of_token[self.first_token[feature] + end]  # (C,)
        return np.where(inside, self.pairs[start_pair, 0], 0), np.where(inside, self.pairs[end_pair, 1], 0)


def select_answers(
    examples: datasets.Dataset,
    features: datasets.Dataset,
    predictions: tuple[np.ndarray, np.ndarray],
    version_2_with_negative: bool = False,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
) -> QAPredictions:
    """Return the answer, the n-best spans and (SQuAD 2.0) the null odds of every example.

    A span (start, end) of a window scores start_logit + end_logit. Candidates are the `n_best_size` best starts
    and ends among context tokens; a pair is valid when end >= start and end - start + 1 <= `max_answer_length`.
    The null score of an example is the lowest [CLS] score (start[0] + end[0]) over its windows, its best span the
    highest valid span over its windows, and its null odds `null - best`. With `version_2_with_negative` the example
    answers "" when the null odds exceed `null_score_diff_threshold`. An example without any valid span answers ""
    with null odds `NULL_ODDS_WITHOUT_SPAN`. Probabilities are a softmax over each n-best list (null included).

    `predictions` are `(start_logits, end_logits)` of shape (num_features, width); columns past a window's own
    length are ignored, whatever padding value they hold. Equal scores keep window order.
    """
    start_logits, end_logits = _checked_logits(predictions, len(features))  # (F, W) each
    example_ids, contexts = _column(examples, "id"), _column(examples, "context")
    num_examples = len(example_ids)
    feature_example = feature_example_indices(example_ids, _column(features, "example_id"))  # (F,)
    offsets = context_offsets(features, start_logits.shape[1])

    feature, start, end, score = _best_spans_per_feature(
        start_logits, end_logits, offsets.in_context, n_best_size, max_answer_length
    )  # (C,) each: window, start token, end token, score
    order = _best_per_example(feature_example, feature, score, n_best_size)
    feature, start, end, score = feature[order], start[order], end[order], score[order]
    # (E + 1,): the candidates of example e are bounds[e]:bounds[e + 1]
    bounds = np.searchsorted(feature_example[feature], np.arange(num_examples + 1))
    has_span = bounds[1:] > bounds[:-1]  # (E,)
    best = bounds[:-1][has_span]  # the first candidate of every example that has one
    best_score = np.full(num_examples, -np.inf)
    best_score[has_span] = score[best]
    non_null = dict.fromkeys(example_ids, "")
    best_chars = (chars.tolist() for chars in offsets.char_span(feature[best], start[best], end[best]))
    for row, first_char, last_char in zip(np.flatnonzero(has_span).tolist(), *best_chars):
        non_null[example_ids[row]] = contexts[row][first_char:last_char]

    null_by_feature = start_logits[:, 0].astype(np.float64) + end_logits[:, 0]  # (F,)
    null_feature = _argmin_per_group(feature_example, null_by_feature, num_examples)  # (E,)
    null_score = null_by_feature[null_feature]  # (E,)
    null = (null_feature, null_score) if version_2_with_negative else None
    nbest = NBestLists(
        example_ids, contexts, (feature, start, end, score), bounds, null, offsets, start_logits, end_logits
    )
    if not version_2_with_negative:
        return QAPredictions(dict(non_null), nbest, None, non_null)
    null_odds = np.where(has_span, null_score - best_score, NULL_ODDS_WITHOUT_SPAN)  # (E,)
    answers = dict(non_null)
    for row in np.flatnonzero((null_odds > null_score_diff_threshold) | ~has_span).tolist():
        answers[example_ids[row]] = ""
    return QAPredictions(answers, nbest, dict(zip(example_ids, null_odds.tolist())), non_null)


def _checked_logits(predictions, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Return `(start_logits, end_logits)` as float arrays (num_features, width), refusing shapes and NaN that
    would give wrong answers silently."""
    start_logits, end_logits = (np.asarray(logits) for logits in predictions)
    if start_logits.shape != end_logits.shape or start_logits.ndim != 2 or len(start_logits) != num_features:
        raise ValueError(
            f"expected start and end logits of shape ({num_features}, width), got {start_logits.shape} and "
            f"{end_logits.shape}"
        )
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
        raise ValueError(
            f"{len(unknown)} feature(s) belong to examples that are not given (e.g. {_few(unknown)}); "
            "pass the examples the features were built from"
        )
    rows = np.fromiter(map(row_of.__getitem__, feature_example_ids), dtype=np.int64, count=len(feature_example_ids))
    without_features = np.setdiff1d(np.arange(len(example_ids)), rows)
    if len(without_features):
        missing = [example_ids[row] for row in without_features[:_MAX_IDS_SHOWN]]
        raise ValueError(
            f"{len(without_features)} example(s) have no features (e.g. {_few(missing)}); "
            "build the features from exactly these examples"
        )
    return rows


def context_offsets(features: datasets.Dataset, width: int) -> ContextOffsets:
    """Return the context tokens and their character offsets from the features' `offset_mapping`.

    Read straight from Arrow: turning thousands of windows of offsets into Python lists costs more than the whole
    span search.
    """
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


def _best_spans_per_feature(start_logits, end_logits, in_context, n_best_size, max_answer_length, block_size=512):
    """Return `(feature, start, end, score)` arrays of each window's `n_best_size` best valid spans, grouped by
    window and best first within it.

    Per window: the k best start and end tokens among context tokens, their k×k score matrix, masked for order and
    length, then its n best cells. Windows go in blocks so memory stays at block × k × k.
    """
    num_features, width = start_logits.shape
    k = min(n_best_size, width)
    n = min(n_best_size, k * k)
    parts = []
    for block in range(0, num_features, block_size):
        rows = slice(block, block + block_size)
        # Negated logits, +inf outside the context: the k smallest are the k best context tokens.
        start_cost, end_cost = (
            np.negative(logits[rows], out=np.full_like(logits[rows], np.inf), where=in_context[rows])
            for logits in (start_logits, end_logits)
        )  # (B, W) each
        top_start, top_end = _k_smallest(start_cost, k), _k_smallest(end_cost, k)  # (B, k) each
        costs = (
            np.take_along_axis(start_cost, top_start, axis=1).astype(np.float64)[:, :, None]
            + np.take_along_axis(end_cost, top_end, axis=1).astype(np.float64)[:, None, :]
        )  # (B, k, k): minus the span score, +inf outside the context
        length = top_end.astype(np.int32)[:, None, :] - top_start.astype(np.int32)[:, :, None] + 1  # (B, k, k)
        np.copyto(costs, np.inf, where=(length < 1) | (length > max_answer_length))
        costs = costs.reshape(len(costs), k * k)  # (B, k * k)
        cells = _k_smallest(costs, n)  # (B, n) cells of the k×k matrix
        cells = np.take_along_axis(cells, np.argsort(np.take_along_axis(costs, cells, 1), axis=1, kind="stable"), 1)
        cell_scores = -np.take_along_axis(costs, cells, axis=1)  # (B, n) best first
        valid = np.isfinite(cell_scores)  # (B, n)
        feature = np.broadcast_to(np.arange(block, block + len(cells))[:, None], cells.shape)  # (B, n)
        parts.append(
            (
                feature[valid],
                np.take_along_axis(top_start, cells // k, axis=1)[valid],
                np.take_along_axis(top_end, cells % k, axis=1)[valid],
                cell_scores[valid],
            )
        )
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


def _k_smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Return the column indices of the k smallest values of each row, in no particular order."""
    return np.argpartition(values, k - 1, axis=1)[:, :k]


def _best_per_example(feature_example: np.ndarray, feature: np.ndarray, score: np.ndarray, size: int) -> np.ndarray:
    """Return candidate indices grouped by example, best first, at most `size` per example.

    Candidates arrive grouped by window and sorted within it, so only examples spread over several windows need
    their candidates merged by score; ties keep window order.
    """
    example = feature_example[feature]  # (C,)
    order = np.argsort(example, kind="stable")  # (C,)
    shared = np.flatnonzero(np.bincount(feature_example)[example[order]] > 1)  # positions of multi-window examples
    if len(shared):
        merged = order[shared]
        order[shared] = merged[np.lexsort((-score[merged], example[merged]))]
    sorted_example = example[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_example, sorted_example)  # (C,) place within its example
    return order[rank < size]


def _argmin_per_group(groups: np.ndarray, values: np.ndarray, num_groups: int) -> np.ndarray:
    """Return, for each group, the index of its smallest value (the first one on ties)."""
    order = np.lexsort((values, groups))
    return order[np.searchsorted(groups[order], np.arange(num_groups))]


def stack_logits(batches, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Return `(start_logits, end_logits)` as two `(num_features, longest)` float32 arrays padded with -100.

    `batches` is what `Trainer.evaluation_loop` gathered: either one `(start, end)` pair already concatenated or,
    with `eval_do_concat_batches=False`, a list of per-batch pairs of their own lengths. Filling one pre-allocated
    array keeps evaluation memory at one copy of the logits instead of re-concatenating at every step.
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
    nonnull_predictions.json (the best span whatever the null odds say); return their paths by kind.

    With a `prefix` the names become `{prefix}_predictions.json` and so on. The files are what the official
    evaluation script (and `python utils_qa.py score`) reads.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    contents = {"predictions": result.answers, "nbest_predictions": dict(result.nbest)}
    if result.null_odds is not None:
        contents["null_odds"] = result.null_odds
        contents["nonnull_predictions"] = result.non_null_answers
    paths = {}
    for kind, content in contents.items():
        path = output_dir / (f"{prefix}_{kind}.json" if prefix else f"{kind}.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=4, ensure_ascii=False, allow_nan=False)
            handle.write("\n")
        paths[kind] = str(path)
    logger.info("wrote %s", ", ".join(paths.values()))
    return paths


def postprocess_qa_predictions(
    examples: datasets.Dataset,
    features: datasets.Dataset,
    predictions: tuple[np.ndarray, np.ndarray],
    version_2_with_negative: bool = False,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
    output_dir: str | Path | None = None,
    prefix: str | None = None,
) -> dict[str, str]:
    """Return `{id: answer text}` (see `select_answers`), writing the prediction files when `output_dir` is given."""
    result = select_answers(
        examples, features, predictions, version_2_with_negative, n_best_size, max_answer_length,
        null_score_diff_threshold,
    )
    if output_dir is not None:
        write_predictions(result, output_dir, prefix)
    return result.answers
