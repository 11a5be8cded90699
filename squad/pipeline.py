"""The `question-answering` pipeline of the recipe's models: transformers 4.x's extractive QA pipeline, answering as
evaluation does, with its windows, its span search and, as defaults, the model's evaluation settings.

Every checkpoint carries this file and those it imports relatively, named in config.json's `custom_pipelines`, so
a plain `pip install torch transformers` answers:

    qa = pipeline("question-answering", model="you/pointer-distilbert-squad2", trust_remote_code=True)
    qa(question="Who built the lighthouse?", context="...")  # {"score", "start", "end", "answer"}
"""

import inspect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import count, islice

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from transformers.pipelines.base import Pipeline

from .features import context_sequence_index, context_token_range, tokenize_windows
from .settings import PIPELINE_ARGUMENTS, call_settings, checked_arguments
from .spans import ContextOffsets, find_spans

TASK = "question-answering"

# Stages of a call and the arguments each takes.
STAGES = {"preprocess": ("max_seq_len", "doc_stride", "max_question_len", "align_to_words"), "forward": ("batch_size",),
          "postprocess": ("top_k", "handle_impossible_answer", "max_answer_len", "n_best_size",
                          "null_score_diff_threshold")}
# Questions of a generator or dataset answered together, so that their windows share batches as a list's do.
STREAM_CHUNK = 64
# Span candidates per window for each answer of a `top_k` list: several token spans can make one answer.
CANDIDATES_PER_ANSWER = 4

__all__ = ["PointerQuestionAnsweringPipeline", "answers_from_logits", "call_settings", "question_inputs"]


def question_inputs(args: tuple, kwargs: dict) -> tuple[list[dict] | Iterator, bool]:
    """Return a call's questions, in transformers 4.x's forms, as `{"question", "context"}` dicts (an iterator,
    checked as it is read, for a generator or dataset), and whether it asked exactly one; `question` and `context`
    are taken out of `kwargs`."""
    named = [key for key in ("question", "context") if key in kwargs]
    if args and named:
        raise ValueError("give the questions either as arguments or as question=..., context=..., not both")
    if len(args) == 2 and all(isinstance(arg, str) for arg in args):
        items = [{"question": args[0], "context": args[1]}]
    elif args:
        items = args[0] if len(args) == 1 else args
    elif len(named) == 2:
        items = paired(kwargs.pop("question"), kwargs.pop("context"))
    elif named:
        raise ValueError("give both question=... and context=...")
    else:
        raise ValueError("no question given: call the pipeline with question=..., context=...")
    if isinstance(items, dict):
        items = [items]
    elif isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise ValueError(f"cannot read questions from {items!r:.60}: give question=..., context=... or "
                         "{'question': ..., 'context': ...} dicts")
    elif not isinstance(items, (list, tuple)):
        return iter(items), False
    questions = [checked_input(item, index) for index, item in enumerate(items)]
    return questions, len(questions) == 1


def paired(questions, contexts) -> list[dict]:
    """Return the `{"question", "context"}` dicts of `question=..., context=...` arguments."""
    if isinstance(questions, list) and isinstance(contexts, str):
        contexts = [contexts] * len(questions)
    if isinstance(questions, list) and isinstance(contexts, list):
        if len(questions) != len(contexts):
            raise ValueError(f"got {len(questions)} questions and {len(contexts)} contexts: give one context per "
                             "question, or a single context string for all of them")
        return [{"question": question, "context": context} for question, context in zip(questions, contexts)]
    if isinstance(contexts, list):
        raise ValueError("one question for a list of contexts: give a list of questions of the same length")
    return [{"question": questions, "context": contexts}]


def checked_input(item, index: int) -> dict:
    """Return `item` as `{"question", "context"}` strings, or raise ValueError saying what is wrong with it."""
    where = f"input {index}: "
    if not isinstance(item, dict):
        raise ValueError(f"{where}expected a dict with 'question' and 'context', got {type(item).__name__}")
    for key in ("question", "context"):
        if key not in item:
            raise ValueError(f"{where}the dict has no {key!r}; give {{'question': ..., 'context': ...}}")
        value = item[key]
        if value is None:
            raise ValueError(f"{where}{key} is None")
        if not isinstance(value, str):
            raise ValueError(f"{where}{key} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise ValueError(f"{where}{key} is empty")
    return {"question": item["question"], "context": item["context"]}


@dataclass(frozen=True)
class Windows:
    """One call's questions as model windows, with the question of each and where its context tokens sit."""

    inputs: dict[str, list[list[int]]]  # model input name -> token ids of each window (F windows)
    example: np.ndarray  # (F,) question row of each window
    offsets: ContextOffsets
    contexts: list[str]  # (E,)


def make_windows(questions: list[dict], tokenizer, max_seq_len: int, doc_stride: int, max_question_len: int,
                 align_to_words: bool, input_names: tuple[str, ...] = ("input_ids",)) -> Windows:
    """Return the windows of `questions`, as `prepare_eval_features` cuts them for evaluation, with the model inputs
    `input_names` (the attention mask is made when windows are batched)."""
    contexts = [question["context"] for question in questions]
    encoded = tokenize_windows({"question": [question["question"] for question in questions], "context": contexts},
                               tokenizer, max_seq_len, doc_stride, max_question_len, pad_to_max_length=False)
    context_index = context_sequence_index(tokenizer)
    ranges = [context_token_range(encoding.sequence_ids, context_index) for encoding in encoded.encodings]
    pairs = [context_char_spans(encoding, *tokens, align_to_words)
             for encoding, tokens in zip(encoded.encodings, ranges) if tokens is not None]
    offsets = window_offsets([len(encoding.ids) for encoding in encoded.encodings], ranges, pairs)
    return Windows({name: encoded[name] for name in input_names}, np.asarray(encoded["overflow_to_sample_mapping"]),
                   offsets, contexts)


def context_char_spans(encoding, first: int, last: int, align_to_words: bool) -> np.ndarray:
    """Return the character span of each context token `first..last` of a window, shape (tokens, 2); with
    `align_to_words` that of its whole word, so an answer never ends inside a word (tokenizers that keep no words
    give token spans)."""
    spans = np.asarray(encoding.offsets[first : last + 1], dtype=np.int64).reshape(-1, 2)
    words = encoding.word_ids[first : last + 1]
    if not align_to_words or None in words:
        return spans
    words = np.asarray(words)
    begins_word = np.r_[True, words[1:] != words[:-1]]  # (tokens,) a word's tokens are adjacent
    ends_word = np.r_[words[1:] != words[:-1], True]
    word = np.cumsum(begins_word) - 1  # (tokens,) word of each token
    return np.stack([spans[begins_word, 0][word], spans[ends_word, 1][word]], axis=1)


def window_offsets(lengths: list[int], ranges: list, pairs: list[np.ndarray]) -> ContextOffsets:
    """Return the `ContextOffsets` of windows of `lengths` tokens whose context tokens are `ranges` (first, last),
    or None for a window without context, with `pairs` the character spans of those tokens, window by window."""
    lengths = np.asarray(lengths, dtype=np.int64)  # (F,)
    width = int(lengths.max(initial=0))
    in_context = np.zeros((len(lengths), width), dtype=bool)
    for window, context in enumerate(ranges):
        if context is not None:
            in_context[window, context[0] : context[1] + 1] = True
    token_in_context = in_context[np.arange(width) < lengths[:, None]]  # (T,) in the windows' token order
    return ContextOffsets(in_context=in_context, first_token=np.cumsum(lengths) - lengths,
                          pair_of_token=np.cumsum(token_in_context, dtype=np.int64) - 1,
                          pairs=np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64))


def answers_from_logits(contexts: list[str], window_example: np.ndarray, offsets: ContextOffsets,
                        start_logits: np.ndarray, end_logits: np.ndarray, top_k: int = 1,
                        handle_impossible_answer: bool = False, max_answer_len: int = 15, n_best_size: int = 20,
                        null_score_diff_threshold: float = 0.0) -> list[list[dict]]:
    """Return the `top_k` answers of every question, each `{"score", "start", "end", "answer"}`.

    The first answer is evaluation's: the best span of the question's windows, or "" where `handle_impossible_answer`
    allows it and the null odds exceed `null_score_diff_threshold`. The others follow by score, distinct character
    spans only, "" among them when allowed, from the `max(n_best_size, 4 * top_k)` best spans of each window.

    Scores are transformers 4.x's: a span's is its start times its end probability, each a softmax over its window's
    context tokens and [CLS]; the score of "" is the lowest [CLS] start times end probability over the question's
    windows. `window_example` (F,) is the question row of each window and the logits are (F, W).
    """
    num_questions = len(contexts)
    spans = find_spans(window_example, num_questions, offsets.in_context, start_logits, end_logits, n_best_size,
                       max_answer_len)
    no_answer = spans.no_answer(handle_impossible_answer, null_score_diff_threshold).tolist()
    start_log_p, end_log_p = (window_log_probabilities(logits, offsets.in_context)
                              for logits in (start_logits, end_logits))  # (F, W) each
    null_probability = np.full(num_questions, np.inf)
    np.minimum.at(null_probability, window_example, np.exp(start_log_p[:, 0] + end_log_p[:, 0]))
    null_probability = null_probability.tolist()

    def entries(found, indices: np.ndarray) -> list[dict]:
        feature, start, end = found.feature[indices], found.start[indices], found.end[indices]
        first_char, last_char = (chars.tolist() for chars in offsets.char_span(feature, start, end))
        probability = np.exp(start_log_p[feature, start] + end_log_p[feature, end]).tolist()
        return [{"score": p, "start": begin, "end": stop, "answer": contexts[row][begin:stop]}
                for row, begin, stop, p in zip(window_example[feature].tolist(), first_char, last_char, probability)]

    best = dict(zip(np.flatnonzero(spans.has_span).tolist(), entries(spans, spans.best[spans.has_span])))
    nulls = [{"score": null_probability[row], "start": 0, "end": 0, "answer": ""} for row in range(num_questions)]
    firsts = [nulls[row] if no_answer[row] else best[row] for row in range(num_questions)]
    if top_k == 1:
        return [[first] for first in firsts]
    pool = max(n_best_size, CANDIDATES_PER_ANSWER * top_k)
    listed = spans if pool == n_best_size else find_spans(
        window_example, num_questions, offsets.in_context, start_logits, end_logits, pool, max_answer_len)
    candidates, bounds = entries(listed, np.arange(len(listed.score))), listed.bounds.tolist()
    answers = []
    for row, first in enumerate(firsts):
        others = candidates[bounds[row] : bounds[row + 1]]  # "" as a repeat of the first answer is skipped
        answers.append(ranked(first, [*others, nulls[row]] if handle_impossible_answer else others, top_k))
    return answers


def window_log_probabilities(logits: np.ndarray, in_context: np.ndarray) -> np.ndarray:
    """Return the log-softmax of each window's logits over its context tokens and [CLS], -inf elsewhere."""
    masked = np.where(in_context, logits.astype(np.float64), -np.inf)  # (F, W)
    masked[:, 0] = logits[:, 0]  # [CLS]
    top = masked.max(axis=1, keepdims=True)  # (F, 1)
    return masked - top - np.log(np.exp(masked - top).sum(axis=1, keepdims=True))


def ranked(first: dict, others: list[dict], top_k: int) -> list[dict]:
    """Return `first`, then the highest-scoring `others` whose character span differs from every answer before
    them, `top_k` answers at most (ties keep the order of `others`)."""
    by_span = {(first["start"], first["end"]): first}
    for answer in sorted(others, key=lambda answer: answer["score"], reverse=True):
        by_span.setdefault((answer["start"], answer["end"]), answer)
    return list(by_span.values())[:top_k]


class PointerQuestionAnsweringPipeline(Pipeline):
    """Extractive question answering: the answer span of the context, or "" for no answer, with its score.

    Called like transformers 4.x's `QuestionAnsweringPipeline` (see `__call__`), but "" is decided by the null odds
    against the model's threshold, as in evaluation, and `batch_size` windows of all the call's questions, sorted by
    length, share each forward pass, so answers are the same at any batch size and come faster batched. Works with
    any extractive QA model and fast tokenizer.
    """

    def __init__(self, *args, **kwargs):
        # Arguments given here apply to every call, merged with the call's own in one place (`_stage_settings`).
        given = {name: kwargs.pop(name) for name in PIPELINE_ARGUMENTS if name in kwargs}
        self.call_defaults = checked_arguments(given)
        super().__init__(*args, **kwargs)
        if self.tokenizer is None or not self.tokenizer.is_fast:
            raise ValueError("the question-answering pipeline needs a fast tokenizer (tokenizer.json) for the "
                             "character offsets of answers")
        # The tokenizer's inputs that the model takes, as the Trainer keeps them (DistilBERT takes no token types).
        accepted = inspect.signature(self.model.forward).parameters
        self.input_names = tuple(name for name in self.tokenizer.model_input_names
                                 if name in accepted and name != "attention_mask")

    def __call__(self, *args, **kwargs):
        """Answer the questions about their contexts.

        Args:
            question (`str` or `list[str]`), context (`str` or `list[str]`): the questions and the context of each,
                or one context for all of them.
            args: instead of `question`/`context`: `(question, context)` strings, a `{"question", "context"}`
                dict, a list of them, or a generator or dataset of them (answers then come back as an iterator).
            The settings are the model's evaluation settings where it has them, else the default in parentheses:
            top_k (1): answers per question, distinct character spans (fewer when the context holds fewer); the
                first is the answer, the others follow by score.
            handle_impossible_answer (False): allow "" (no answer); a model's is its `version_2_with_negative`.
            max_answer_len (15): longest answer in tokens.
            max_seq_len (384, at most the tokenizer's `model_max_length`): tokens per window, special tokens included.
            doc_stride (`min(128, max_seq_len // 2)`): tokens shared by consecutive windows of a long context; when
                only `max_seq_len` is given, at most half of it.
            max_question_len (64): questions are cut to this many tokens.
            align_to_words (True): widen answers to whole words ("60" inside "60°" becomes "60°"); turn it off for
                languages written without spaces. A model with `qa_settings`, whose evaluation cut answers at token
                offsets, takes its `align_to_words`, else False.
            batch_size (4): windows per forward pass, across questions; raise it on a GPU.
            null_score_diff_threshold (0.0): answer "" when null score - best span score exceeds it.
            n_best_size (20): start and end candidates per window.

        Returns:
            `{"score": float, "start": int, "end": int, "answer": str}`, `answer == context[start:end]` ("" at 0, 0
            for no answer); a list of them for `top_k > 1`; a list of those for several questions (a list of one
            question answers like one question, as in transformers 4.x).

        Raises:
            ValueError: for a question or context that is missing, None, not a string or empty; lists of different
                lengths; an unknown argument (transformers 4.x ignored it); or a setting out of range.
        """
        questions, single = question_inputs(args, kwargs)
        stages = self._stage_settings(kwargs)
        if not isinstance(questions, list):
            return self._stream(questions, stages)
        answers = self.run_single(questions, *stages) if questions else []
        return answers[0] if single else answers

    def _sanitize_parameters(self, **kwargs):
        """Reject the unknown arguments of `Pipeline.__init__`; the known ones were taken (`call_defaults`) before."""
        checked_arguments(kwargs)
        return {}, {}, {}

    def _stage_settings(self, kwargs: dict) -> tuple[dict, dict, dict]:
        """Return the settings of a call (its arguments over the pipeline's, over the model's) for each stage."""
        settings = call_settings(getattr(self.model.config, "qa_settings", None), self.tokenizer.model_max_length,
                                 {**self.call_defaults, **checked_arguments(kwargs)})
        return tuple({name: settings[name] for name in names} for names in STAGES.values())

    def _stream(self, items: Iterator, stages: tuple[dict, dict, dict]) -> Iterator:
        """Yield the answers of a stream of questions, answering `STREAM_CHUNK` of them at a time."""
        index = count()
        while chunk := list(islice(items, STREAM_CHUNK)):
            yield from self.run_single([checked_input(item, next(index)) for item in chunk], *stages)

    def get_inference_context(self):
        return torch.inference_mode

    def preprocess(self, questions: list[dict], max_seq_len: int, doc_stride: int, max_question_len: int,
                   align_to_words: bool) -> Windows:
        return make_windows(questions, self.tokenizer, max_seq_len, doc_stride, max_question_len, align_to_words,
                            self.input_names)

    def _forward(self, windows: Windows, batch_size: int) -> dict:
        """Return the windows with their span logits, (F, W) float32 arrays, from length-sorted batches."""
        lengths = np.array([len(ids) for ids in windows.inputs["input_ids"]])  # (F,)
        start_logits = np.full((len(lengths), lengths.max()), np.finfo(np.float32).min, dtype=np.float32)
        end_logits = start_logits.copy()
        order = np.argsort(-lengths, kind="stable")
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            width = int(lengths[rows].max())
            output = self.model(**self._padded(windows.inputs, rows, lengths[rows]))
            start_logits[rows, :width] = output.start_logits.float().cpu().numpy()
            end_logits[rows, :width] = output.end_logits.float().cpu().numpy()
        return {"windows": windows, "start_logits": start_logits, "end_logits": end_logits}

    def _padded(self, inputs: dict, rows: np.ndarray, lengths: np.ndarray) -> dict:
        """Return the model inputs of windows `rows`, of `lengths` tokens, padded on the right, on the device."""
        pad_values = {"input_ids": self.tokenizer.pad_token_id or 0, "token_type_ids": self.tokenizer.pad_token_type_id}
        batch = {name: pad_sequence([torch.tensor(ids[row]) for row in rows.tolist()], batch_first=True,
                                    padding_value=pad_values.get(name, 0)) for name, ids in inputs.items()}
        batch["attention_mask"] = torch.from_numpy(np.arange(lengths.max()) < lengths[:, None]).long()
        return {name: values.to(self.device) for name, values in batch.items()}

    def postprocess(self, outputs: dict, top_k: int, handle_impossible_answer: bool, max_answer_len: int,
                    n_best_size: int, null_score_diff_threshold: float) -> list:
        windows = outputs["windows"]
        answers = answers_from_logits(windows.contexts, windows.example, windows.offsets, outputs["start_logits"],
                                      outputs["end_logits"], top_k, handle_impossible_answer, max_answer_len,
                                      n_best_size, null_score_diff_threshold)
        return [found[0] if top_k == 1 else found for found in answers]
