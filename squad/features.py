"""Tokenised features: SQuAD rows cut into overlapping model windows, with answer labels or context offsets.

The question-answering pipeline cuts its windows here too, so this module ships with every saved checkpoint and
imports nothing outside the standard library."""

import bisect
import logging

logger = logging.getLogger(__name__)


def prepare_train_features(examples: dict, tokenizer, max_seq_length: int = 384, doc_stride: int = 128,
                           max_query_length: int = 64, pad_to_max_length: bool = False) -> dict:
    """Return training windows (the tokenizer's model inputs) with `start_positions`/`end_positions`: the token span
    of the first answer when the window holds all of it, else the [CLS] token, as for unanswerable questions. A
    batched `Dataset.map` function; a context longer than a window is split into windows `doc_stride` tokens apart."""
    encoded = tokenize_windows(examples, tokenizer, max_seq_length, doc_stride, max_query_length, pad_to_max_length)
    context_index = context_sequence_index(tokenizer)
    first_answers = [_first_answer_char_span(answers) for answers in examples["answers"]]
    labels = {"start_positions": [], "end_positions": []}
    for window, example_index in enumerate(encoded["overflow_to_sample_mapping"]):
        char_span = first_answers[example_index]
        token_span = None if char_span is None else answer_token_span(
            encoded["offset_mapping"][window], encoded.sequence_ids(window), context_index, char_span)
        cls_index = _cls_index(encoded["input_ids"][window], tokenizer)
        start, end = token_span or (cls_index, cls_index)
        labels["start_positions"].append(start)
        labels["end_positions"].append(end)
    return {**_model_inputs(encoded, tokenizer), **labels}


def prepare_eval_features(examples: dict, tokenizer, max_seq_length: int = 384, doc_stride: int = 128,
                          max_query_length: int = 64, pad_to_max_length: bool = False) -> dict:
    """Return the windows of `prepare_train_features` with `example_id` and an `offset_mapping` that is None
    outside the context: `select_answers` cuts answers out of the context by the offsets, and never out of the
    question or special tokens."""
    encoded = tokenize_windows(examples, tokenizer, max_seq_length, doc_stride, max_query_length, pad_to_max_length)
    context_index = context_sequence_index(tokenizer)
    example_ids, offset_mappings = [], []
    for window, example_index in enumerate(encoded["overflow_to_sample_mapping"]):
        example_ids.append(examples["id"][example_index])
        offsets = encoded["offset_mapping"][window]
        first, last = context_token_range(encoded.sequence_ids(window), context_index) or (len(offsets), len(offsets))
        offset_mappings.append([None] * first + offsets[first : last + 1] + [None] * (len(offsets) - last - 1))
    return {**_model_inputs(encoded, tokenizer), "example_id": example_ids, "offset_mapping": offset_mappings}


def context_token_range(sequence_ids: list, context_index: int) -> tuple[int, int] | None:
    """Return the first and last token of a window's context (one run of tokens with sequence id `context_index`),
    or None when the window has no context token (a blank context)."""
    if context_index not in sequence_ids:
        return None
    first = sequence_ids.index(context_index)
    return first, len(sequence_ids) - 1 - sequence_ids[::-1].index(context_index)


def answer_token_span(offsets: list, sequence_ids: list, context_index: int,
                      char_span: tuple[int, int]) -> tuple[int, int] | None:
    """Return the first and last token of the answer `char_span` (end exclusive), or None when the window's context
    does not hold all of it."""
    context_range = context_token_range(sequence_ids, context_index)
    if context_range is None:
        return None
    first, last = context_range
    answer_start, answer_end = char_span
    if offsets[first][0] > answer_start or offsets[last][1] < answer_end:
        return None
    # Context offsets rise monotonically, so both ends are binary searches: the first token that ends after the
    # answer starts, and the last token that starts before the answer ends.
    start_token = bisect.bisect_right(offsets, answer_start, lo=first, hi=last + 1, key=lambda pair: pair[1])
    end_token = bisect.bisect_left(offsets, answer_end, lo=first, hi=last + 1, key=lambda pair: pair[0]) - 1
    return start_token, end_token


def _first_answer_char_span(answers: dict) -> tuple[int, int] | None:
    """Return the first answer's character span without surrounding whitespace, or None for no (or a blank) answer."""
    if not answers["text"] or not answers["text"][0].strip():
        return None
    text, start = answers["text"][0], answers["answer_start"][0]
    start += len(text) - len(text.lstrip())
    return start, start + len(text.strip())


def tokenize_windows(examples, tokenizer, max_seq_length, doc_stride, max_query_length, pad_to_max_length):
    """Return the tokenizer's windows over question + context, with offsets and the window → example mapping.
    Tokenizers that pad on the left take the context first, so the truncated side is always the context."""
    budget = question_token_budget(tokenizer, max_seq_length, doc_stride, max_query_length)
    questions, truncated = truncate_questions([q.lstrip() for q in examples["question"]], tokenizer, budget)
    if truncated:
        logger.warning(
            "truncated %d question(s) to %d tokens (max_query_length=%d, max_seq_length=%d, doc_stride=%d)",
            truncated, budget, max_query_length, max_seq_length, doc_stride,
        )
    pad_on_right = tokenizer.padding_side == "right"
    first, second = (questions, examples["context"]) if pad_on_right else (examples["context"], questions)
    return tokenizer(first, second, truncation="only_second" if pad_on_right else "only_first",
                     max_length=max_seq_length, stride=doc_stride, return_overflowing_tokens=True,
                     return_offsets_mapping=True, padding="max_length" if pad_to_max_length else False)


def question_token_budget(tokenizer, max_seq_length: int, doc_stride: int, max_query_length: int) -> int:
    """Return how many question tokens a window can hold: `max_query_length`, or less when the context part of a
    window would otherwise not exceed `doc_stride` (the tokenizer refuses a stride as long as the context part)."""
    room = max_seq_length - tokenizer.num_special_tokens_to_add(pair=True) - doc_stride - 1
    if room < 1:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for a question with doc_stride={doc_stride}; "
                         "lower doc_stride or raise max_seq_length")
    return min(max_query_length, room)


def truncate_questions(questions: list[str], tokenizer, max_tokens: int) -> tuple[list[str], int]:
    """Return the questions cut to at most `max_tokens` tokens each, and how many were cut. They are cut as text at
    a token boundary, so the windows keep the tokenizer's own offsets; the re-check covers tokenizers whose merges
    shift at the cut."""
    result, truncated = list(questions), set()
    pending = list(range(len(questions)))
    while pending:
        encoded = tokenizer([result[i] for i in pending], add_special_tokens=False, return_offsets_mapping=True)
        too_long = [(i, offsets) for i, offsets in zip(pending, encoded["offset_mapping"]) if len(offsets) > max_tokens]
        for i, offsets in too_long:
            # Each pass shortens the text, so the loop ends even where several tokens share one character.
            result[i] = result[i][: min(offsets[max_tokens - 1][1], len(result[i]) - 1)]
        truncated.update(i for i, _ in too_long)
        pending = [i for i, _ in too_long]
    return result, len(truncated)


def context_sequence_index(tokenizer) -> int:
    """Return which of the two tokenized sequences is the context (0 when the tokenizer pads on the left)."""
    return 1 if tokenizer.padding_side == "right" else 0


def _cls_index(input_ids: list[int], tokenizer) -> int:
    """Return the position of [CLS], the label of windows without the answer (not 0 after left padding)."""
    return input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0


def _model_inputs(encoded, tokenizer) -> dict:
    """Return only the inputs the tokenizer's model takes (DistilBERT-style models take no token_type_ids)."""
    return {name: encoded[name] for name in tokenizer.model_input_names if name in encoded}
