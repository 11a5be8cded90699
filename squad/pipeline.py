"""The `question-answering` pipeline of the recipe's models: transformers 4.x's extractive QA pipeline, answering as
the recipe's evaluation does.

Every checkpoint the recipe saves carries this file (with `features.py` and `spans.py`, which it imports
relatively) and names it in config.json's `custom_pipelines`, so a plain `pip install torch transformers` answers:

    from transformers import pipeline

    qa = pipeline("question-answering", model="you/pointer-distilbert-squad2", trust_remote_code=True)
    qa(question="Who built the lighthouse?", context="...")  # {"score", "start", "end", "answer"}

The windows are `features.py`'s and the answers `spans.py`'s, the code evaluation runs, and the defaults are the
model's own evaluation settings (`qa_settings` in config.json), so a question gets the evaluation's answer.
"""

import inspect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import count, islice

import numpy as np
import torch
from transformers.pipelines.base import Pipeline

from .features import context_sequence_index, context_token_range, tokenize_windows
from .settings import PIPELINE_ARGUMENTS, call_settings, checked_arguments
from .spans import ContextOffsets, find_spans

TASK = "question-answering"

# Stages of a call and the arguments each takes.
STAGES = {
    "preprocess": ("max_seq_len", "doc_stride", "max_question_len", "align_to_words"),
    "forward": ("batch_size",),
    "postprocess": ("top_k", "handle_impossible_answer", "max_answer_len", "n_best_size", "null_score_diff_threshold"),
}
# Questions of a generator or dataset answered together, so that their windows share batches as a list's do.
STREAM_CHUNK = 64
# Span candidates per window for each answer a `top_k` list asks for: aligned to words, several token spans
# become one answer, and four per answer leave enough distinct ones.
CANDIDATES_PER_ANSWER = 4

__all__ = ["PointerQuestionAnsweringPipeline", "answers_from_logits", "call_settings", "question_inputs"]


# ----------------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------------


def question_inputs(args: tuple, kwargs: dict) -> tuple[list[dict] | Iterator, bool]:
    """Return a call's questions as `{"question", "context"}` dicts, and whether it asked exactly one.

    The forms of transformers 4.x: `question=..., context=...` (strings; a list of questions for one context; or
    two lists of the same length), `(question, context)` as two positional strings, a dict, a list of dicts, or a
    generator or dataset of dicts, which comes back as an iterator and is checked as it is read. `question` and
    `context` are taken out of `kwargs`.
    """
    has_question, has_context = "question" in kwargs, "context" in kwargs
    if args and (has_question or has_context):
        raise ValueError("give the questions either as arguments or as question=..., context=..., not both")
    if args:
        if len(args) == 2 and all(isinstance(arg, str) for arg in args):
            items = [{"question": args[0], "context": args[1]}]
        elif len(args) == 1:
            items = args[0]
        else:
            items = list(args)
    elif has_question and has_context:
        items = paired(kwargs.pop("question"), kwargs.pop("context"))
    elif has_question or has_context:
        raise ValueError("give both question=... and context=...")
    else:
        raise ValueError("no question given: call the pipeline with question=..., context=...")
    if isinstance(items, dict):
        items = [items]
    elif isinstance(items, (list, tuple)):
        items = list(items)
    elif isinstance(items, Iterable) and not isinstance(items, (str, bytes)):
        return iter(items), False
    else:
        raise ValueError(f"cannot read questions from {items!r:.60}: give question=..., context=... or "
                         "{'question': ..., 'context': ...} dicts")
    questions = [checked_input(item, index) for index, item in enumerate(items)]
    return questions, len(questions) == 1


def paired(questions, contexts) -> list[dict]:
    """Return the `{"question", "context"}` dicts of `question=..., context=...` arguments."""
    if isinstance(questions, list) and isinstance(contexts, str):
        return [{"question": question, "context": contexts} for question in questions]
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


# ----------------------------------------------------------------------------------------------------------------
# Windows: questions and contexts cut as evaluation cuts them
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Windows:
    """One call's questions as model windows: the model inputs, the question of each window, and where each
    window's context tokens sit in their context."""

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
    lengths, ranges, pairs = [], [], []
    for encoding in encoded.encodings:
        lengths.append(len(encoding.ids))
        ranges.append(context_token_range(encoding.sequence_ids, context_index))
        if ranges[-1] is not None:
            pairs.append(context_char_spans(encoding, *ranges[-1], align_to_words))
    return Windows({name: encoded[name] for name in input_names}, np.asarray(encoded["overflow_to_sample_mapping"]),
                   window_offsets(lengths, ranges, pairs), contexts)


def context_char_spans(encoding, first: int, last: int, align_to_words: bool) -> np.ndarray:
    """Return the character span of each context token `first..last` of a window, shape (tokens, 2).

    With `align_to_words` a token's span is that of its whole word, so an answer never starts or ends inside a word
    (a span ending on "vald" of "valdés" becomes "valdés"). Tokenizers that keep no words give token spans.
    """
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
    return ContextOffsets(
        in_context=in_context,
        first_token=np.cumsum(lengths) - lengths,
        pair_of_token=np.cumsum(token_in_context, dtype=np.int64) - 1,
        pairs=np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64),
    )


# ----------------------------------------------------------------------------------------------------------------
# Answers: the evaluation's decision, transformers 4.x's scores
# ----------------------------------------------------------------------------------------------------------------


def answers_from_logits(
    contexts: list[str],
    window_example: np.ndarray,
    offsets: ContextOffsets,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    top_k: int = 1,
    handle_impossible_answer: bool = False,
    max_answer_len: int = 15,
    n_best_size: int = 20,
    null_score_diff_threshold: float = 0.0,
) -> list[list[dict]]:
    """Return the `top_k` answers of every question, each `{"score", "start", "end", "answer"}`.

    The first answer is evaluation's: the best span of the question's windows (`spans.find_spans`), or "" where
    `handle_impossible_answer` allows it and the null odds exceed `null_score_diff_threshold` (`Spans.no_answer`).
    The others follow by score, distinct character spans only, "" among them when it is allowed; they come from the
    `max(n_best_size, 4 * top_k)` best spans of each window, and are fewer than `top_k` where those hold fewer.

    Scores are transformers 4.x's: a span's is its start probability times its end probability in its window,
    each a softmax over the window's context tokens and [CLS]; the score of "" is the lowest [CLS] start times end
    probability over the question's windows. `window_example` (F,) is the question row of each window and the logits
    are (F, W); columns outside the context and [CLS] are never read.
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
        first_char, last_char = (chars.tolist() for chars in offsets.char_span(
            found.feature[indices], found.start[indices], found.end[indices]))
        probability = np.exp(start_log_p[found.feature[indices], found.start[indices]]
                             + end_log_p[found.feature[indices], found.end[indices]]).tolist()
        rows = window_example[found.feature[indices]].tolist()
        return [{"score": p, "start": begin, "end": stop, "answer": contexts[row][begin:stop]}
                for row, begin, stop, p in zip(rows, first_char, last_char, probability)]

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
        others = candidates[bounds[row] : bounds[row + 1]]
        if handle_impossible_answer and first is not nulls[row]:
            others = [*others, nulls[row]]
        answers.append(ranked(first, others, top_k))
    return answers


def window_log_probabilities(logits: np.ndarray, in_context: np.ndarray) -> np.ndarray:
    """Return the log-softmax of each window's logits over its context tokens and [CLS], -inf elsewhere."""
    allowed = in_context.copy()  # (F, W)
    allowed[:, 0] = True
    masked = np.where(allowed, logits.astype(np.float64), -np.inf)
    top = masked.max(axis=1, keepdims=True)  # (F, 1)
    return masked - top - np.log(np.exp(masked - top).sum(axis=1, keepdims=True))


def ranked(first: dict, others: list[dict], top_k: int) -> list[dict]:
    """Return `first`, then the highest-scoring `others` whose character span differs from every answer before
    them, `top_k` answers at most (ties keep the order of `others`)."""
    answers, seen = [first], {(first["start"], first["end"])}
    for answer in sorted(others, key=lambda answer: answer["score"], reverse=True):
        if len(answers) == top_k:
            break
        if (answer["start"], answer["end"]) not in seen:
            seen.add((answer["start"], answer["end"]))
            answers.append(answer)
    return answers


# ----------------------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------------------


class PointerQuestionAnsweringPipeline(Pipeline):
    """Extractive question answering: the answer span of the context, or "" for no answer, with its score.

    Called like transformers 4.x's `QuestionAnsweringPipeline` (see `__call__`), with two differences of substance:
    the answer or "" is decided by the recipe's null odds against the model's threshold, exactly as in evaluation,
    and `batch_size` windows of all the call's questions, sorted by length, share each forward pass, so answers are
    the same at any batch size and come faster batched. Works with any extractive QA model and fast tokenizer; the
    recipe's models also bring their evaluation settings (`qa_settings` in config.json) as defaults.
    """

    def __init__(self, *args, **kwargs):
        # The arguments given when the pipeline is made apply to every call; kept here, not in the base class's
        # per-stage attributes, so that a call's settings are merged in one place (`_stage_settings`).
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
            question (`str` or `list[str]`): the question(s); with `context`.
            context (`str` or `list[str]`): the context of each question, or one context for all of them.
            args: instead of `question`/`context`: `(question, context)` strings, a `{"question", "context"}`
                dict, a list of them, or a generator or dataset of them (answers then come back as an iterator).
            top_k (`int`, defaults to 1): answers per question, distinct character spans (fewer when the context
                holds fewer). The first is the answer; the others follow by score.
            handle_impossible_answer (`bool`): allow "" (no answer). Default: the model's `version_2_with_negative`,
                else False.
            max_answer_len (`int`): longest answer in tokens. Default: the model's, else 15.
            max_seq_len (`int`): tokens per window (question, context part and special tokens). Default: the
                model's, else 384 (at most the tokenizer's `model_max_length`).
            doc_stride (`int`): tokens shared by consecutive windows of a long context. Default: the model's, else
                `min(128, max_seq_len // 2)`; when only `max_seq_len` is given, at most half of it.
            max_question_len (`int`): questions are cut to this many tokens. Default: the model's, else 64.
            align_to_words (`bool`): widen answers to whole words ("60" inside "60°" becomes "60°"); turn it off
                for languages written without spaces. Default: True, as in transformers 4.x, except for a model
                with `qa_settings`, whose evaluation cut answers at token offsets (its `align_to_words`, else
                False).
            batch_size (`int`, defaults to 4): windows per forward pass, across questions; raise it on a GPU.
            null_score_diff_threshold (`float`): answer "" when null score - best span score exceeds this. Default:
                the model's, else 0.
            n_best_size (`int`): start and end candidates per window. Default: the model's, else 20.

        Returns:
            `{"score": float, "start": int, "end": int, "answer": str}` with `answer == context[start:end]`
            ("" at 0, 0 for no answer) for one question; a list of them for `top_k > 1`; and a list of those per
            question when several were asked. As in transformers 4.x, a list of one question answers like one
            question.

        Raises:
            ValueError: for a question or context that is missing, None, not a string or empty; lists of different
                lengths; an unknown argument (transformers 4.x ignored it); or a setting out of range (`top_k`,
                `max_answer_len` < 1, `doc_stride` >= `max_seq_len`).
        """
        questions, single = question_inputs(args, kwargs)
        stages = self._stage_settings(kwargs)
        if not isinstance(questions, list):
            return self._stream(questions, stages)
        answers = self.run_single(questions, *stages) if questions else []
        return answers[0] if single else answers

    def _sanitize_parameters(self, **kwargs):
        """Split checked arguments into the preprocess, forward and postprocess stages that take them."""
        checked_arguments(kwargs)
        return tuple({name: kwargs[name] for name in names if name in kwargs} for names in STAGES.values())

    def _stage_settings(self, kwargs: dict) -> tuple[dict, dict, dict]:
        """Return the settings of a call (its arguments over the pipeline's, over the model's) for each stage."""
        given = {**self.call_defaults, **checked_arguments(kwargs)}
        settings = call_settings(getattr(self.model.config, "qa_settings", None), self.tokenizer.model_max_length,
                                 given)
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
            output = self.model(**self._padded(windows.inputs, rows, lengths[rows], width))
            start_logits[rows, :width] = output.start_logits.float().cpu().numpy()
            end_logits[rows, :width] = output.end_logits.float().cpu().numpy()
        return {"windows": windows, "start_logits": start_logits, "end_logits": end_logits}

    def _padded(self, inputs: dict, rows: np.ndarray, lengths: np.ndarray, width: int) -> dict:
        """Return the model inputs of windows `rows`, padded on the right to `width` tokens, on the device."""
        pad_values = {"input_ids": self.tokenizer.pad_token_id or 0, "token_type_ids": self.tokenizer.pad_token_type_id}
        batch = {}
        for name, ids in inputs.items():
            padded = np.full((len(rows), width), pad_values.get(name, 0), dtype=np.int64)  # (B, width)
            for line, row in enumerate(rows.tolist()):
                padded[line, : lengths[line]] = ids[row]
            batch[name] = torch.from_numpy(padded).to(self.device)
        batch["attention_mask"] = torch.from_numpy(np.arange(width) < lengths[:, None]).long().to(self.device)
        return batch

    def postprocess(self, outputs: dict, top_k: int, handle_impossible_answer: bool, max_answer_len: int,
                    n_best_size: int, null_score_diff_threshold: float) -> list:
        windows = outputs["windows"]
        answers = answers_from_logits(
            windows.contexts, windows.example, windows.offsets, outputs["start_logits"], outputs["end_logits"],
            top_k=top_k, handle_impossible_answer=handle_impossible_answer, max_answer_len=max_answer_len,
            n_best_size=n_best_size, null_score_diff_threshold=null_score_diff_threshold,
        )
        return [found[0] if top_k == 1 else found for found in answers]
