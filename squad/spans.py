"""Answer spans from span logits: the one search and decision rule that evaluation, prediction (`postprocess.py`)
and the pipeline share, so a question gets the same answer whichever way it is asked. It ships with every
checkpoint beside the pipeline, which imports it relatively, so it needs numpy only.
"""

from dataclasses import dataclass

import numpy as np

# null_odds of an example whose windows hold no valid span at all: it can only answer "", whatever the threshold.
# A finite stand-in for +inf keeps null_odds.json strict JSON and sorts such examples last in the threshold search.
NULL_ODDS_WITHOUT_SPAN = 1e9


@dataclass(frozen=True)
class ContextOffsets:
    """Which tokens of each window belong to the context, and where they sit in its text: the character offsets
    stay flat, one pair per context token, looked up only for the tokens that end up in an n-best list."""

    in_context: np.ndarray  # (F, W) bool
    first_token: np.ndarray  # (F,) flat index of each window's first token
    pair_of_token: np.ndarray  # (T,) for a context token, the row of its pair in `pairs`
    pairs: np.ndarray  # (P, 2) character [start, end) of each context token

    def char_span(self, feature: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the character start of token `start` and end of token `end` of each window (0, 0 outside context)."""
        inside = self.in_context[feature, start] & self.in_context[feature, end]  # (C,)
        if not len(self.pairs):
            return np.zeros(len(feature), dtype=np.int64), np.zeros(len(feature), dtype=np.int64)
        start_pair = self.pair_of_token[self.first_token[feature] + start]  # (C,)
        end_pair = self.pair_of_token[self.first_token[feature] + end]  # (C,)
        return np.where(inside, self.pairs[start_pair, 0], 0), np.where(inside, self.pairs[end_pair, 1], 0)


@dataclass(frozen=True)
class Spans:
    """The best spans of every example and its null score, as `find_spans` leaves them.

    A candidate is a window (`feature`), its first and last token there and its score, start + end logit; those of
    example e are `bounds[e]:bounds[e + 1]`, best first. The null score of an example is the lowest [CLS] score
    (start[0] + end[0]) over its windows, `null_feature` the window it comes from.
    """

    bounds: np.ndarray  # (E + 1,)
    feature: np.ndarray  # (C,)
    start: np.ndarray  # (C,)
    end: np.ndarray  # (C,)
    score: np.ndarray  # (C,)
    null_feature: np.ndarray  # (E,)
    null_score: np.ndarray  # (E,)

    @property
    def has_span(self) -> np.ndarray:
        """(E,) True for examples with at least one valid span."""
        return self.bounds[1:] > self.bounds[:-1]

    @property
    def best(self) -> np.ndarray:
        """(E,) index of each example's best candidate, the first of its group; read it only where `has_span`."""
        return self.bounds[:-1]

    def null_odds(self) -> np.ndarray:
        """(E,) null score minus best span score; `NULL_ODDS_WITHOUT_SPAN` for an example without a valid span."""
        has_span = self.has_span
        best_score = np.full(len(has_span), -np.inf)
        best_score[has_span] = self.score[self.best[has_span]]
        return np.where(has_span, self.null_score - best_score, NULL_ODDS_WITHOUT_SPAN)

    def no_answer(self, version_2_with_negative: bool, null_score_diff_threshold: float) -> np.ndarray:
        """(E,) True where the answer is "": no valid span, or (SQuAD 2.0) null odds above the threshold."""
        if not version_2_with_negative:
            return ~self.has_span
        return (self.null_odds() > null_score_diff_threshold) | ~self.has_span


def find_spans(feature_example: np.ndarray, num_examples: int, in_context: np.ndarray, start_logits: np.ndarray,
               end_logits: np.ndarray, n_best_size: int = 20, max_answer_length: int = 30) -> Spans:
    """Return the `n_best_size` best valid spans of every example over its windows, and its null score.

    `feature_example` (F,) is the example row of every window, `in_context` (F, W) marks the context tokens, and
    the logits are (F, W) float arrays; columns outside the context are never part of a span, whatever they hold.
    Candidates are the `n_best_size` best starts and ends among a window's context tokens; a pair is valid when
    end >= start and end - start + 1 <= `max_answer_length`. Equal scores keep window order.
    """
    feature, start, end, score = _best_spans_per_feature(start_logits, end_logits, in_context, n_best_size,
                                                         max_answer_length)  # (C,) each
    order = _best_per_example(feature_example, feature, score, n_best_size)
    feature, start, end, score = feature[order], start[order], end[order], score[order]
    bounds = np.searchsorted(feature_example[feature], np.arange(num_examples + 1))  # (E + 1,)
    null_by_feature = start_logits[:, 0].astype(np.float64) + end_logits[:, 0]  # (F,)
    by_null_score = np.lexsort((null_by_feature, feature_example))  # (F,) by example, lowest null score first
    null_feature = by_null_score[np.searchsorted(feature_example[by_null_score], np.arange(num_examples))]  # (E,)
    return Spans(bounds, feature, start, end, score, null_feature, null_by_feature[null_feature])


def _best_spans_per_feature(start_logits, end_logits, in_context, n_best_size, max_answer_length, block_size=512):
    """Return `(feature, start, end, score)` arrays of each window's `n_best_size` best valid spans, grouped by
    window and best first within it: the n best cells of the k×k score matrix of its k best starts and ends, masked
    for order and length. Windows go in blocks so memory stays at block × k × k.
    """
    num_features, width = start_logits.shape
    k = min(n_best_size, width)
    n = min(n_best_size, k * k)
    parts = []
    for block in range(0, num_features, block_size):
        rows = slice(block, block + block_size)
        # Negated logits, +inf outside the context: the k smallest are the k best context tokens.
        start_cost, end_cost = (np.negative(logits[rows], out=np.full_like(logits[rows], np.inf),
                                            where=in_context[rows]) for logits in (start_logits, end_logits))  # (B, W)
        top_start, top_end = _k_smallest(start_cost, k), _k_smallest(end_cost, k)  # (B, k) each
        # (B, k, k): minus the span score, +inf outside the context
        costs = (np.take_along_axis(start_cost, top_start, axis=1).astype(np.float64)[:, :, None]
                 + np.take_along_axis(end_cost, top_end, axis=1).astype(np.float64)[:, None, :])
        length = top_end.astype(np.int32)[:, None, :] - top_start.astype(np.int32)[:, :, None] + 1  # (B, k, k)
        np.copyto(costs, np.inf, where=(length < 1) | (length > max_answer_length))
        costs = costs.reshape(len(costs), k * k)  # (B, k * k)
        cells = _k_smallest(costs, n)  # (B, n) cells of the k×k matrix
        cells = np.take_along_axis(cells, np.argsort(np.take_along_axis(costs, cells, 1), axis=1, kind="stable"), 1)
        cell_scores = -np.take_along_axis(costs, cells, axis=1)  # (B, n) best first
        valid = np.isfinite(cell_scores)  # (B, n)
        feature = np.broadcast_to(np.arange(block, block + len(cells))[:, None], cells.shape)  # (B, n)
        parts.append((feature[valid], np.take_along_axis(top_start, cells // k, axis=1)[valid],
                      np.take_along_axis(top_end, cells % k, axis=1)[valid], cell_scores[valid]))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


def _k_smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Return the column indices of the k smallest values of each row, in no particular order."""
    return np.argpartition(values, k - 1, axis=1)[:, :k]


def _best_per_example(feature_example: np.ndarray, feature: np.ndarray, score: np.ndarray, size: int) -> np.ndarray:
    """Return candidate indices grouped by example, best first, at most `size` per example. Candidates arrive sorted
    within their window, so only examples of several windows need merging by score; ties keep window order."""
    example = feature_example[feature]  # (C,)
    order = np.argsort(example, kind="stable")  # (C,)
    shared = np.flatnonzero(np.bincount(feature_example)[example[order]] > 1)  # positions of multi-window examples
    if len(shared):
        merged = order[shared]
        order[shared] = merged[np.lexsort((-score[merged], example[merged]))]
    sorted_example = example[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_example, sorted_example)  # (C,) place within its example
    return order[rank < size]
