"""The question-answering pipeline: transformers 4.x's behaviour (its tests and docstrings) on hand-built logits and
on a tiny model, the evaluation's decision rule, the model's settings as defaults, and the code a checkpoint ships."""

import json
import math
import re
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from transformers import pipeline

import qa_pipeline
from squad.pipeline import (
    answers_from_logits,
    call_settings,
    checked_arguments,
    context_char_spans,
    question_inputs,
    window_offsets,
)
from utils_qa import select_answers

QUESTION = "Who founded the observatory?"
CONTEXT = "Renée Valdés founded the Kaltenbrück Observatory in 1890. It stands on Monte Tizón above the town."
ANSWER_KEYS = {"score", "start", "end", "answer"}


# ----------------------------------------------------------------------------------------------------------------
# Hand-built windows and logits: one token per word, laid out as [CLS] q q [SEP] words [SEP]
# ----------------------------------------------------------------------------------------------------------------

QUESTION_TOKENS = 2
FIRST_CONTEXT_TOKEN = QUESTION_TOKENS + 2


def word_spans(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in re.finditer(r"\S+", text)]


def hand_windows(contexts: list[str], windows: list[tuple[int, int, int]]):
    """Return (window_example, offsets, width) for windows given as (question row, first word, last word)."""
    lengths, ranges, pairs = [], [], []
    for row, first, last in windows:
        words = word_spans(contexts[row])[first : last + 1]
        lengths.append(FIRST_CONTEXT_TOKEN + len(words) + 1)
        ranges.append((FIRST_CONTEXT_TOKEN, FIRST_CONTEXT_TOKEN + len(words) - 1))
        pairs.append(np.array(words))
    offsets = window_offsets(lengths, ranges, pairs)
    return np.array([row for row, _, _ in windows]), offsets, max(lengths)


def token(word_in_window: int) -> int:
    return FIRST_CONTEXT_TOKEN + word_in_window


def softmax_over(logits_row: np.ndarray, allowed: list[int]) -> dict[int, float]:
    weights = {position: math.exp(logits_row[position]) for position in allowed}
    total = sum(weights.values())
    return {position: weight / total for position, weight in weights.items()}


SIMPLE = "Anna lives in Paris with Boris ."  # words 0..6


def one_window(start_at: dict, end_at: dict, context: str = SIMPLE):
    """Return the inputs of `answers_from_logits` for one window over all of `context`, with zero logits except
    `start_at`/`end_at` ({token: logit})."""
    example, offsets, width = hand_windows([context], [(0, 0, len(word_spans(context)) - 1)])
    start, end = np.zeros((1, width), np.float32), np.zeros((1, width), np.float32)
    for position, value in start_at.items():
        start[0, position] = value
    for position, value in end_at.items():
        end[0, position] = value
    return [context], example, offsets, start, end


def test_best_span_with_transformers_4x_score_start_times_end_probability_in_its_window():
    inputs = one_window({token(3): 4.0, token(1): 1.0}, {token(3): 3.0, token(5): 2.0})
    (answer,), = answers_from_logits(*inputs)
    assert (answer["start"], answer["end"], answer["answer"]) == (14, 19, "Paris")
    allowed = [0] + [token(word) for word in range(7)]  # [CLS] and the context; the question and [SEP] are out
    start_p, end_p = softmax_over(inputs[3][0], allowed), softmax_over(inputs[4][0], allowed)
    assert answer["score"] == pytest.approx(start_p[token(3)] * end_p[token(3)])
    assert SIMPLE[answer["start"] : answer["end"]] == answer["answer"]


def test_no_answer_is_decided_by_the_null_odds_against_the_threshold_and_scored_by_cls_probabilities():
    inputs = one_window({0: 6.0, token(3): 4.0}, {0: 6.0, token(3): 4.0})  # null odds 12 - 8 = 4
    (span,), = answers_from_logits(*inputs, handle_impossible_answer=False)
    assert span["answer"] == "Paris", "without handle_impossible_answer the best span answers"
    (empty,), = answers_from_logits(*inputs, handle_impossible_answer=True)
    allowed = [0] + [token(word) for word in range(7)]
    null_p = softmax_over(inputs[3][0], allowed)[0] * softmax_over(inputs[4][0], allowed)[0]
    assert empty == {"score": pytest.approx(null_p), "start": 0, "end": 0, "answer": ""}
    (above,), = answers_from_logits(*inputs, handle_impossible_answer=True, null_score_diff_threshold=4.5)
    assert above["answer"] == "Paris", "null odds 4 do not exceed the threshold 4.5"
    (at,), = answers_from_logits(*inputs, handle_impossible_answer=True, null_score_diff_threshold=3.5)
    assert at["answer"] == ""


def test_several_windows_best_span_over_all_and_no_answer_score_is_the_lowest_cls_probability():
    context = "a b c d e f g h i j"
    example, offsets, width = hand_windows([context], [(0, 0, 5), (0, 4, 9)])  # words 4, 5 in both windows
    start, end = np.zeros((2, width), np.float32), np.zeros((2, width), np.float32)
    start[0, 0] = end[0, 0] = 1.0
    start[1, 0] = end[1, 0] = 3.0
    start[1, token(4)] = end[1, token(4)] = 5.0  # word 8 ("i"), only in the second window
    (answer, nothing), = answers_from_logits([context], example, offsets, start, end, top_k=2,
                                             handle_impossible_answer=True)
    assert answer["answer"] == "i"
    first_window_null = (softmax_over(start[0], [0, *range(token(0), token(6))])[0]
                         * softmax_over(end[0], [0, *range(token(0), token(6))])[0])
    second_window_null = (softmax_over(start[1], [0, *range(token(0), token(6))])[0]
                          * softmax_over(end[1], [0, *range(token(0), token(6))])[0])
    assert nothing == {"score": pytest.approx(min(first_window_null, second_window_null)), "start": 0, "end": 0,
                       "answer": ""}


def test_top_k_gives_distinct_spans_by_score_with_no_answer_ranked_by_its_own_probability():
    context = "a b c d e f"
    example, offsets, width = hand_windows([context], [(0, 0, 3), (0, 2, 5)])  # words c, d in both windows
    start, end = np.zeros((2, width), np.float32), np.zeros((2, width), np.float32)
    for window in range(2):  # "c" is the best span of both windows: one answer, not two
        start[window, token(2 - 2 * window)] = end[window, token(2 - 2 * window)] = 4.0
    start[0, token(0)] = end[0, token(1)] = 3.0  # "a b"
    start[:, 0] = end[:, 0] = 2.5
    answers, = answers_from_logits([context], example, offsets, start, end, top_k=4, handle_impossible_answer=True,
                                   null_score_diff_threshold=10.0)
    texts = [answer["answer"] for answer in answers]
    assert texts[0] == "c" and len(texts) == len(set(texts)) == 4 and "" in texts
    scores = [answer["score"] for answer in answers]
    assert scores[1:] == sorted(scores[1:], reverse=True)
    assert all(context[a["start"] : a["end"]] == a["answer"] for a in answers)

    decided, = answers_from_logits([context], example, offsets, start, end, top_k=3, handle_impossible_answer=True,
                                   null_score_diff_threshold=-10.0)
    assert decided[0]["answer"] == "", "the decision comes first, whatever the probabilities"
    assert decided[1]["answer"] == "c" and decided[1]["score"] > decided[0]["score"]
    without, = answers_from_logits([context], example, offsets, start, end, top_k=20)
    assert "" not in [answer["answer"] for answer in without], "no '' unless handle_impossible_answer allows it"


def test_max_answer_len_bounds_answers_in_tokens():
    inputs = one_window({token(0): 5.0}, {token(6): 5.0, token(1): 4.0})
    (whole,), = answers_from_logits(*inputs, max_answer_len=7)
    assert whole["answer"] == SIMPLE
    (short,), = answers_from_logits(*inputs, max_answer_len=2)
    assert short["answer"] == "Anna lives"


class FakeEncoding(SimpleNamespace):
    """What `context_char_spans` reads of a tokenizers Encoding: offsets and word ids per token."""


def test_align_to_words_widens_a_span_to_whole_words_and_keeps_word_pieces_otherwise():
    context = "Valdés founded it"
    # [CLS] who [SEP] val ##des founded it [SEP]: "val" and "##des" are one word
    encoding = FakeEncoding(offsets=[(0, 0), (0, 3), (0, 0), (0, 3), (3, 6), (7, 14), (15, 17), (0, 0)],
                            word_ids=[None, 0, None, 0, 0, 1, 2, None])
    aligned = context_char_spans(encoding, 3, 6, align_to_words=True)
    assert aligned.tolist() == [[0, 6], [0, 6], [7, 14], [15, 17]]
    assert context_char_spans(encoding, 3, 6, align_to_words=False).tolist() == [[0, 3], [3, 6], [7, 14], [15, 17]]
    start, end = np.zeros((1, 8), np.float32), np.zeros((1, 8), np.float32)
    start[0, 4], end[0, 4] = 5.0, 5.0  # the span "des", inside "Valdés"
    start[0, 3], end[0, 3] = 4.0, 4.0
    for align, expected in ((True, ["Valdés", "Valdés founded"]), (False, ["dés", "Valdés"])):
        offsets = window_offsets([8], [(3, 6)], [context_char_spans(encoding, 3, 6, align)])
        answers, = answers_from_logits([context], np.array([0]), offsets, start, end, top_k=2)
        assert [answer["answer"] for answer in answers] == expected
    assert context_char_spans(FakeEncoding(offsets=encoding.offsets, word_ids=[None] * 8), 3, 6, True).tolist() == [
        [0, 3], [3, 6], [7, 14], [15, 17]], "tokenizers without words keep token spans"


@pytest.mark.parametrize("handle_impossible_answer", [False, True])
@pytest.mark.parametrize("threshold", [-2.0, 0.0, 1.5])
def test_first_answers_are_the_evaluation_answers_on_random_multi_window_logits(handle_impossible_answer, threshold):
    rng = np.random.default_rng(0)
    contexts = [" ".join(f"w{row}x{word}" for word in range(int(rng.integers(3, 30)))) for row in range(60)]
    windows = []
    for row, context in enumerate(contexts):
        words = len(word_spans(context))
        for first in range(0, words, 8):
            windows.append((row, first, min(first + 11, words - 1)))
    example, offsets, width = hand_windows(contexts, windows)
    start, end = (rng.normal(size=(len(windows), width)).astype(np.float32) for _ in range(2))
    start[:, 0] += 2.0  # [CLS]: the null answer wins about as often as it loses
    end[:, 0] += 2.0
    answers = answers_from_logits(contexts, example, offsets, start, end, max_answer_len=5,
                                  handle_impossible_answer=handle_impossible_answer,
                                  null_score_diff_threshold=threshold)

    feature_offsets = []
    for row, first, last in windows:
        spans = [list(span) for span in word_spans(contexts[row])[first : last + 1]]
        feature_offsets.append([None] * FIRST_CONTEXT_TOKEN + spans + [None])
    examples = datasets.Dataset.from_dict({"id": [str(row) for row in range(len(contexts))], "context": contexts})
    features = datasets.Dataset.from_dict({"example_id": [str(row) for row, _, _ in windows],
                                           "offset_mapping": feature_offsets})
    evaluation = select_answers(examples, features, (start, end), version_2_with_negative=handle_impossible_answer,
                                max_answer_length=5, null_score_diff_threshold=threshold)
    assert [found[0]["answer"] for found in answers] == [evaluation.answers[str(row)] for row in range(len(contexts))]
    if handle_impossible_answer and threshold == 0.0:
        assert 10 < sum(found[0]["answer"] == "" for found in answers) < 50, "both decisions occur"


# ----------------------------------------------------------------------------------------------------------------
# Settings and inputs
# ----------------------------------------------------------------------------------------------------------------

TRANSFORMERS_4_DEFAULTS = {"max_seq_len": 384, "doc_stride": 128, "max_question_len": 64, "max_answer_len": 15,
                           "n_best_size": 20, "null_score_diff_threshold": 0.0, "handle_impossible_answer": False,
                           "top_k": 1, "align_to_words": True}
QA_SETTINGS = {"max_seq_length": 256, "doc_stride": 100, "max_query_length": 32, "max_answer_length": 30,
               "n_best_size": 10, "version_2_with_negative": True, "null_score_diff_threshold": -1.25,
               "null_score_diff_threshold_source": "calibration split"}


def test_a_model_without_qa_settings_gets_transformers_4x_defaults():
    settings = call_settings(None, 512, {})
    assert {name: settings[name] for name in TRANSFORMERS_4_DEFAULTS} == TRANSFORMERS_4_DEFAULTS
    short = call_settings(None, 128, {})
    assert (short["max_seq_len"], short["doc_stride"]) == (128, 64)


def test_qa_settings_are_the_defaults_and_call_arguments_win():
    settings = call_settings(QA_SETTINGS, 512, {})
    assert (settings["max_seq_len"], settings["doc_stride"], settings["max_question_len"], settings["max_answer_len"],
            settings["n_best_size"], settings["null_score_diff_threshold"], settings["handle_impossible_answer"]) == (
        256, 100, 32, 30, 10, -1.25, True)
    assert settings["align_to_words"] is False, "evaluation cuts answers at token offsets"
    assert call_settings({**QA_SETTINGS, "align_to_words": True}, 512, {})["align_to_words"] is True
    given = call_settings(QA_SETTINGS, 512, {"handle_impossible_answer": False, "max_answer_len": 3,
                                             "null_score_diff_threshold": 0.5})
    assert (given["handle_impossible_answer"], given["max_answer_len"], given["null_score_diff_threshold"]) == (
        False, 3, 0.5)
    assert call_settings({**QA_SETTINGS, "doc_stride": None}, 512, {})["doc_stride"] == 128


def test_max_seq_len_alone_takes_a_stride_that_fits():
    assert call_settings(None, 512, {"max_seq_len": 128})["doc_stride"] == 64
    assert call_settings(QA_SETTINGS, 512, {"max_seq_len": 128})["doc_stride"] == 64
    assert call_settings(QA_SETTINGS, 512, {"max_seq_len": 512})["doc_stride"] == 100
    assert call_settings(None, 512, {"max_seq_len": 128, "doc_stride": 32})["doc_stride"] == 32


@pytest.mark.parametrize(("arguments", "message"), [
    ({"top_k": 0}, "top_k must be an integer >= 1"),
    ({"top_k": True}, "top_k must be an integer >= 1"),
    ({"max_answer_len": 0}, "max_answer_len must be an integer >= 1"),
    ({"max_seq_len": 64, "doc_stride": 64}, r"doc_stride \(64\) must be below max_seq_len \(64\)"),
    ({"handle_impossible_answer": "yes"}, "handle_impossible_answer must be True or False"),
    ({"null_score_diff_threshold": float("nan")}, "null_score_diff_threshold must be a number"),
    ({"max_seq_length": 512}, "unknown argument 'max_seq_length'; use max_seq_len"),
    ({"topk": 2}, "unknown argument 'topk'; use top_k"),
    ({"num_workers": 2}, "unknown argument 'num_workers'"),
])
def test_bad_arguments_are_refused_with_a_message_naming_them(arguments, message):
    with pytest.raises(ValueError, match=message):
        call_settings(None, 512, checked_arguments(arguments))


def test_bad_qa_settings_are_refused_naming_the_config():
    with pytest.raises(ValueError, match=r"max_answer_len must be .* got 0 \(from the model's qa_settings"):
        call_settings({**QA_SETTINGS, "max_answer_length": 0}, 512, {})


def as_pairs(questions) -> list[tuple[str, str]]:
    return [(question["question"], question["context"]) for question in questions]


@pytest.mark.parametrize(("args", "kwargs", "expected", "single"), [
    ((), {"question": "q", "context": "c"}, [("q", "c")], True),
    (("q", "c"), {}, [("q", "c")], True),
    (({"question": "q", "context": "c"},), {}, [("q", "c")], True),
    (([{"question": "q", "context": "c"}, {"question": "r", "context": "d"}],), {}, [("q", "c"), ("r", "d")], False),
    ((), {"question": ["q", "r"], "context": "c"}, [("q", "c"), ("r", "c")], False),
    ((), {"question": ["q", "r"], "context": ["c", "d"]}, [("q", "c"), ("r", "d")], False),
    ((), {"question": ["q"], "context": ["c"]}, [("q", "c")], True),
])
def test_every_input_form_of_transformers_4x(args, kwargs, expected, single):
    questions, is_single = question_inputs(args, dict(kwargs))
    assert as_pairs(questions) == expected and is_single == single


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((), {"question": "", "context": "c"}, "question is empty"),
    ((), {"question": None, "context": "c"}, "question is None"),
    ((), {"question": "q", "context": "  "}, "context is empty"),
    ((), {"question": "q", "context": None}, "context is None"),
    ((), {"question": {"This": "Is weird"}, "context": "c"}, "question must be a string"),
    ((), {"question": ["q", "q"], "context": ["c", "c", "c"]}, "2 questions and 3 contexts"),
    ((), {"question": "q", "context": ["c", "d"]}, "one question for a list of contexts"),
    (({"context": "c"},), {}, "the dict has no 'question'"),
    (([{"question": "q", "context": "c"}, {"question": "", "context": "c"}],), {}, "input 1: question is empty"),
    ((None,), {}, "cannot read questions from None"),
    ((1,), {}, "cannot read questions from 1"),
    ((), {"question": "q"}, "give both question"),
    ((), {}, "no question given"),
])
def test_bad_inputs_are_refused_with_a_value_error(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        question_inputs(args, dict(kwargs))


# ----------------------------------------------------------------------------------------------------------------
# A tiny model with the real tokenizer
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qa(tiny_model_dir):
    return qa_pipeline.load_pipeline(str(tiny_model_dir))


def is_answer(found, context: str) -> bool:
    return (set(found) == ANSWER_KEYS and type(found["score"]) is float and type(found["start"]) is int
            and type(found["end"]) is int and context[found["start"] : found["end"]] == found["answer"])


def spans(found) -> list:
    return [(answer["answer"], answer["start"], answer["end"]) for answer in found]


def flat(answers) -> list[dict]:
    return [a for item in answers for a in flat(item)] if isinstance(answers, list) else [answers]


def same_answers(found, expected) -> bool:
    """True for the same spans with scores equal up to float rounding (windows batched differently round apart)."""
    found, expected = flat(found), flat(expected)
    return spans(found) == spans(expected) and np.allclose([a["score"] for a in found],
                                                           [a["score"] for a in expected], rtol=1e-5)


def test_every_input_form_answers_alike_with_the_output_types_of_transformers_4x(qa):
    other = "Where does it stand?"
    single = qa(question=QUESTION, context=CONTEXT)
    assert is_answer(single, CONTEXT)
    assert qa(QUESTION, CONTEXT) == single == qa({"question": QUESTION, "context": CONTEXT})
    pair = qa(question=[QUESTION, other], context=CONTEXT)
    assert len(pair) == 2 and same_answers(pair[0], single) and all(is_answer(found, CONTEXT) for found in pair)
    assert qa([{"question": QUESTION, "context": CONTEXT}, {"question": other, "context": CONTEXT}]) == pair
    streamed = qa({"question": question, "context": CONTEXT} for question in [QUESTION, other] * 40)
    assert not isinstance(streamed, list) and same_answers(list(streamed), pair * 40)
    table = datasets.Dataset.from_dict({"question": [QUESTION, other], "context": [CONTEXT, CONTEXT]})
    assert same_answers(list(qa(table)), pair)
    top = qa(question=[QUESTION, other], context=CONTEXT, top_k=20)
    assert [len(found) for found in top] == [20, 20] and all(is_answer(a, CONTEXT) for found in top for a in found)
    assert [found[0] for found in top] == pair
    assert all(len(set(spans(found))) == 20 for found in top)
    assert qa(question=[], context=[]) == []


def test_batched_answers_equal_unbatched_over_several_windows(qa):
    questions = [QUESTION, "Where does it stand?", "When was it founded?", "What is above the town?"]
    contexts = [CONTEXT * 6, CONTEXT, CONTEXT * 3, "Short."]
    settings = dict(max_seq_len=48, top_k=3, handle_impossible_answer=True)
    alone = [qa(question=question, context=context, batch_size=1, **settings)
             for question, context in zip(questions, contexts)]
    for batch_size in (1, 2, 5, 64):
        together = qa(question=questions, context=contexts, batch_size=batch_size, **settings)
        assert same_answers(together, alone)


def test_max_seq_len_alone_answers_a_long_context(qa, tokenizer):
    long_context = CONTEXT * 20
    assert len(tokenizer(long_context, truncation=False)["input_ids"]) > 3 * 128
    answer = qa(question=QUESTION, context=long_context, max_seq_len=128)
    assert is_answer(answer, long_context) and answer["answer"]


def test_the_model_s_qa_settings_are_the_defaults_and_arguments_win(tiny_model_dir):
    qa = qa_pipeline.load_pipeline(str(tiny_model_dir))
    qa.model.config.qa_settings = {**QA_SETTINGS, "max_answer_length": 1, "null_score_diff_threshold": -1e6}
    assert qa(question=QUESTION, context=CONTEXT)["answer"] == "", "SQuAD 2.0 with the model's threshold"
    one_token = qa(question=QUESTION, context=CONTEXT, handle_impossible_answer=False, top_k=20)
    assert all(" " not in answer["answer"] for answer in one_token), "the model's max_answer_length of one token"
    longer = qa(question=QUESTION, context=CONTEXT, handle_impossible_answer=False, top_k=20, max_answer_len=30)
    assert any(" " in answer["answer"] for answer in longer)


def test_mistakes_are_value_errors_at_call_and_at_construction(qa, tiny_model_dir):
    for arguments in ({"question": "", "context": CONTEXT}, {"question": QUESTION, "context": None},
                      {"question": QUESTION, "context": CONTEXT, "top_k": 0},
                      {"question": QUESTION, "context": CONTEXT, "max_answer_len": 0},
                      {"question": QUESTION, "context": CONTEXT, "max_seq_length": 512},
                      {"question": [QUESTION, QUESTION], "context": [CONTEXT]}):
        with pytest.raises(ValueError):
            qa(**arguments)
    with pytest.raises(ValueError, match="unknown argument 'max_seq_length'"):
        qa_pipeline.load_pipeline(str(tiny_model_dir), max_seq_length=512)
    fixed = qa_pipeline.load_pipeline(str(tiny_model_dir), handle_impossible_answer=True, top_k=2)
    assert len(fixed(question=QUESTION, context=CONTEXT)) == 2


# ----------------------------------------------------------------------------------------------------------------
# What a saved checkpoint carries
# ----------------------------------------------------------------------------------------------------------------

SHIPPED = {"modeling_pointer_distilbert.py", "pipeline.py", "features.py", "spans.py"}


def test_a_saved_model_carries_its_pipeline_found_with_and_without_the_task_name(tiny_model_dir, qa, tmp_path):
    assert SHIPPED <= {path.name for path in tiny_model_dir.iterdir()}
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["custom_pipelines"] == {"question-answering": {
        "impl": "pipeline.PointerQuestionAnsweringPipeline", "pt": ["AutoModelForQuestionAnswering"], "type": "text"}}
    expected = qa(question=[QUESTION, "Where does it stand?"], context=CONTEXT, top_k=2)
    for remote in (pipeline("question-answering", model=str(tiny_model_dir), trust_remote_code=True),
                   pipeline(model=str(tiny_model_dir), trust_remote_code=True)):
        assert type(remote).__name__ == "PointerQuestionAnsweringPipeline"
        assert type(remote).__module__.startswith("transformers_modules."), "the checkpoint's copy, not the recipe's"
        assert same_answers(remote(question=[QUESTION, "Where does it stand?"], context=CONTEXT, top_k=2), expected)

    remote.save_pretrained(tmp_path / "again")  # a model loaded as remote code, saved again, still carries it
    assert SHIPPED <= {path.name for path in (tmp_path / "again").iterdir()}
    again = pipeline(model=str(tmp_path / "again"), trust_remote_code=True)
    assert same_answers(again(question=QUESTION, context=CONTEXT), expected[0][0])


def test_without_the_pipeline_code_a_saved_config_names_no_pipeline(tiny_model_dir, tmp_path, monkeypatch):
    import modeling_pointer_distilbert
    from modeling_pointer_distilbert import PointerDistilBertForQuestionAnswering

    model = PointerDistilBertForQuestionAnswering.from_pretrained(tiny_model_dir)
    assert model.config.custom_pipelines
    monkeypatch.setattr(modeling_pointer_distilbert, "pipeline_class", lambda: None)
    model.save_pretrained(tmp_path)
    assert "custom_pipelines" not in json.loads((tmp_path / "config.json").read_text())
    assert not (tmp_path / "pipeline.py").exists()
    torch.testing.assert_close(PointerDistilBertForQuestionAnswering.from_pretrained(tmp_path).qa_outputs.start_query,
                               model.qa_outputs.start_query)
