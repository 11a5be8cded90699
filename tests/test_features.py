"""Training and evaluation windows with the real bert-base-uncased tokenizer: labels cut out the gold answer."""

import functools
import logging

import datasets
import pytest
from transformers import AutoTokenizer

from utils_qa import (
    SQUAD_FEATURES,
    normalize_answer,
    prepare_eval_features,
    prepare_train_features,
    question_token_budget,
)

LONG_CONTEXT = " ".join(
    f"In year {1000 + i} the council of town number {i} met at the hall of guild {i % 7} to discuss trade."
    for i in range(40)
)


def located(context, answers):
    """Return `answers` (text, position hint) as SQuAD answers, each at its first occurrence after the hint."""
    return {"text": [text for text, _ in answers],
            "answer_start": [context.index(text, position) for text, position in answers]}


def example(question_id, context, question, answers=()):
    """Return one example row with its answers located in the context."""
    return {"id": question_id, "title": "", "context": context, "question": question,
            "answers": located(context, answers)}


EXAMPLES = [
    example("accents", "Café Müller opened in Zürich in 1925, serving crème brûlée to naïve guests.",
            "Where did it open?", [("Zürich", 0), ("crème brûlée", 0)]),
    example("combining", "The singer Beyonce\u0301 Knowles-Carter was born in Houston, Texas.",
            "Who was born in Houston?", [("Beyonce\u0301 Knowles-Carter", 0)]),
    example("cjk-emoji", "The capital 東京 hosts the 🙂 festival every spring since 1603.",
            "What hosts the festival?", [("東京", 0), ("🙂 festival", 0)]),
    example("at-start", "Norway is a Nordic country in Northern Europe.", "Which country?", [("Norway", 0)]),
    example("at-end", "The Battle of Hastings was fought in the year 1066", "When was the battle?", [("1066", 0)]),
    example("spaced", "The answer text  carries   irregular   spacing here.", "What carries spacing?",
            [("answer text  carries", 0)]),
    example("long-middle", LONG_CONTEXT, "Where did town 20 meet?",
            [("the hall of guild 6", LONG_CONTEXT.index("number 20"))]),
    example("long-end", LONG_CONTEXT, "Which guild was last?",
            [("guild 4 to discuss trade.", LONG_CONTEXT.index("number 39"))]),
    example("unanswerable", LONG_CONTEXT, "Who founded the guilds?"),
    example("long-question", LONG_CONTEXT, "   " + "why did the council meet so often " * 12 + "?",
            [("council of town number 3", 0)]),
]


def as_batch(rows):
    return {name: [row[name] for row in rows] for name in rows[0]}


def windows(rows, tokenizer, **settings):
    """Return (train features, eval features) built from the same batch, checking they are the same windows."""
    train = prepare_train_features(as_batch(rows), tokenizer, **settings)
    evaluation = prepare_eval_features(as_batch(rows), tokenizer, **settings)
    assert train["input_ids"] == evaluation["input_ids"]
    return train, evaluation


def context_char_range(offsets):
    """Return the characters covered by a window's context tokens (offsets are None elsewhere)."""
    spans = [pair for pair in offsets if pair is not None]
    return spans[0][0], spans[-1][1]


def check_labels(rows, train, evaluation, tokenizer):
    """Assert every window is labelled with the gold answer's tokens when it holds it, else with [CLS]; return how
    many windows held the answer."""
    by_id = {row["id"]: row for row in rows}
    holding = 0
    for window, example_id in enumerate(evaluation["example_id"]):
        row = by_id[example_id]
        offsets = evaluation["offset_mapping"][window]
        cls_index = train["input_ids"][window].index(tokenizer.cls_token_id)
        answer = text_in_window(row["answers"], offsets)
        start, end = train["start_positions"][window], train["end_positions"][window]
        if answer is None:
            assert (start, end) == (cls_index, cls_index), (example_id, window)
            continue
        assert offsets[start] is not None and offsets[end] is not None, (example_id, window)
        cut = row["context"][offsets[start][0] : offsets[end][1]]
        assert normalize_answer(cut) == normalize_answer(answer), (example_id, window, cut)
        holding += 1
    return holding


def text_in_window(answers, offsets):
    """Return the first answer's text when the window's context holds all of it, else None."""
    if not answers or not answers["text"]:
        return None
    text, answer_start = answers["text"][0], answers["answer_start"][0]
    window_start, window_end = context_char_range(offsets)
    return text if window_start <= answer_start and answer_start + len(text) <= window_end else None


def test_labels_cut_out_the_gold_answer_and_other_windows_point_at_cls(tokenizer):
    train, evaluation = windows(EXAMPLES, tokenizer, max_seq_length=64, doc_stride=16)
    holding = check_labels(EXAMPLES, train, evaluation, tokenizer)
    answerable_ids = {row["id"] for row in EXAMPLES if row["answers"]["text"]}
    assert holding >= len(answerable_ids)
    labels = {"start_positions", "end_positions"}
    assert set(train) == set(tokenizer.model_input_names) | labels


def test_long_contexts_are_split_into_overlapping_windows(tokenizer):
    train, evaluation = windows(EXAMPLES[6:8], tokenizer, max_seq_length=64, doc_stride=16)
    per_example = [evaluation["example_id"].count(row["id"]) for row in EXAMPLES[6:8]]
    assert min(per_example) >= 3
    assert all(len(ids) <= 64 for ids in train["input_ids"])
    first, second = (evaluation["offset_mapping"][i] for i in range(2))
    assert context_char_range(second)[0] < context_char_range(first)[1]  # windows overlap by the stride
    assert check_labels(EXAMPLES[6:8], train, evaluation, tokenizer) >= 2


def test_unanswerable_questions_are_labelled_cls_in_every_window(tokenizer):
    train, evaluation = windows([EXAMPLES[8]], tokenizer, max_seq_length=64, doc_stride=16)
    assert len(train["input_ids"]) >= 3
    assert set(train["start_positions"]) == {0} and set(train["end_positions"]) == {0}
    check_labels([EXAMPLES[8]], train, evaluation, tokenizer)


def test_over_long_questions_are_truncated_and_reported(tokenizer, caplog):
    row = EXAMPLES[9]
    with caplog.at_level(logging.WARNING, logger="squad"):
        train, evaluation = windows([row], tokenizer, max_seq_length=128, doc_stride=32, max_query_length=20)
    question_tokens = [window_ids.index(tokenizer.sep_token_id) - 1 for window_ids in train["input_ids"]]
    assert set(question_tokens) == {20}
    assert "truncated 1 question(s) to 20 tokens" in caplog.text
    assert check_labels([row], train, evaluation, tokenizer) >= 1


def test_question_budget_shrinks_to_leave_the_context_more_than_the_stride(tokenizer):
    assert question_token_budget(tokenizer, 384, 128, 64) == 64
    assert question_token_budget(tokenizer, 64, 16, 64) == 64 - 3 - 16 - 1
    with pytest.raises(ValueError, match="lower doc_stride"):
        question_token_budget(tokenizer, 64, 60, 64)


def test_leading_whitespace_of_questions_is_stripped(tokenizer):
    row = EXAMPLES[3]
    plain, _ = windows([row], tokenizer)
    spaced, _ = windows([dict(row, question="  \t " + row["question"])], tokenizer)
    assert spaced["input_ids"] == plain["input_ids"]


def test_eval_offsets_are_none_outside_the_context(tokenizer):
    _, evaluation = windows(EXAMPLES[:2], tokenizer, max_seq_length=64, doc_stride=16)
    assert evaluation["example_id"] == ["accents", "combining"]
    for offsets, input_ids in zip(evaluation["offset_mapping"], evaluation["input_ids"]):
        first_sep = input_ids.index(tokenizer.sep_token_id)
        assert all(pair is None for pair in offsets[: first_sep + 1])  # [CLS], question, [SEP]
        assert offsets[-1] is None  # closing [SEP]
        assert all(pair is not None for pair in offsets[first_sep + 1 : -1])


def test_left_padding_tokenizers_take_the_context_first(minilm_dir):
    left = AutoTokenizer.from_pretrained(minilm_dir, padding_side="left")
    rows = EXAMPLES[:8]
    train, evaluation = windows(rows, left, max_seq_length=64, doc_stride=16)
    for offsets in evaluation["offset_mapping"]:
        assert offsets[0] is None and offsets[1] is not None  # [CLS] then context
    assert check_labels(rows, train, evaluation, left) >= 7

    padded, padded_eval = windows(rows, left, max_seq_length=64, doc_stride=16, pad_to_max_length=True)
    assert all(len(ids) == 64 for ids in padded["input_ids"])
    assert any(ids[0] == left.pad_token_id for ids in padded["input_ids"])  # padding really is on the left
    assert check_labels(rows, padded, padded_eval, left) >= 7


def test_models_without_token_type_ids_do_not_get_them(minilm_dir):
    distilbert_style = AutoTokenizer.from_pretrained(minilm_dir, model_input_names=["input_ids", "attention_mask"])
    train, evaluation = windows(EXAMPLES[:2], distilbert_style)
    assert "token_type_ids" not in train and "token_type_ids" not in evaluation
    assert set(evaluation) == {"input_ids", "attention_mask", "example_id", "offset_mapping"}


def test_features_build_through_dataset_map(tokenizer):
    dataset = datasets.Dataset.from_list(EXAMPLES, features=SQUAD_FEATURES)
    settings = {"tokenizer": tokenizer, "max_seq_length": 64, "doc_stride": 16}
    train = dataset.map(functools.partial(prepare_train_features, **settings), batched=True, batch_size=3,
                        remove_columns=dataset.column_names)
    evaluation = dataset.map(functools.partial(prepare_eval_features, **settings), batched=True, batch_size=3,
                             remove_columns=dataset.column_names)
    assert len(train) == len(evaluation) > len(dataset)
    assert evaluation[0]["offset_mapping"][0] is None
    check_labels(EXAMPLES, train.to_dict(), evaluation.to_dict(), tokenizer)
