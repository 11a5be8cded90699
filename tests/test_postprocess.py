"""Vectorised post-processing against plain loop references on thousands of random windows, and the output files."""

import heapq
import json

import datasets
import numpy as np
import pytest

from utils_qa import NULL_ODDS_WITHOUT_SPAN, postprocess_qa_predictions, select_answers, write_predictions

FLOAT32_MIN = float(np.finfo(np.float32).min)
MAX_ANSWER_LENGTH = 30


def random_windows(seed, num_examples, max_context_tokens=40, batch_size=8):
    """Return (examples, features, (start_logits, end_logits)) shaped like real evaluation output.

    Contexts are made of unique words (one token each); long contexts get several overlapping windows laid out as
    [CLS] question [SEP] context [SEP]. Features are shuffled so an example's windows are not adjacent. Logits are
    padded the way evaluation pads them: the model's float32 minimum up to the batch's longest window, then -100
    up to the widest batch. In a third of the rows (drawn apart for start and end logits) every logit is lowered
    by 300, so the -100 padding outranks every real token there.
    """
    rng = np.random.default_rng(seed)
    examples, feature_ids, feature_offsets = [], [], []
    for index in range(num_examples):
        words = [f"w{index}x{position}" for position in range(rng.integers(3, 120))]
        starts = np.cumsum([0] + [len(word) + 1 for word in words[:-1]])
        spans = [[int(start), int(start) + len(word)] for start, word in zip(starts, words)]
        question_tokens = int(rng.integers(1, 10))
        window = int(rng.integers(8, max_context_tokens + 1))
        step = int(rng.integers(window // 2, window + 1))
        first = 0
        while True:
            feature_ids.append(f"e{index}")
            feature_offsets.append([None] * (question_tokens + 2) + spans[first : first + window] + [None])
            if first + window >= len(spans):
                break
            first += step
        examples.append({"id": f"e{index}", "context": " ".join(words)})
    order = rng.permutation(len(feature_ids))
    feature_ids = [feature_ids[i] for i in order]
    feature_offsets = [feature_offsets[i] for i in order]

    lengths = np.array([len(offsets) for offsets in feature_offsets])
    width = int(lengths.max()) + 5
    logits = []
    for _ in range(2):
        values = rng.normal(size=(len(lengths), width)).astype(np.float32)
        values[:, 0] += 1.5  # [CLS]: make the null answer win about as often as it loses
        values[rng.random(len(lengths)) < 1 / 3] -= 300
        for batch in range(0, len(lengths), batch_size):
            batch_width = lengths[batch : batch + batch_size].max()
            for row in range(batch, min(batch + batch_size, len(lengths))):
                values[row, lengths[row] : batch_width] = FLOAT32_MIN
                values[row, batch_width:] = -100.0
        logits.append(values)
    features = datasets.Dataset.from_dict({"example_id": feature_ids, "offset_mapping": feature_offsets})
    return datasets.Dataset.from_list(examples), features, tuple(logits)


def exhaustive_reference(examples, features, logits, keep=20):
    """Return per example id: (null score, the `keep` best valid spans as (score, text)), by trying every pair of
    context tokens of every window."""
    start_logits, end_logits = logits
    contexts = dict(zip(examples["id"][:], examples["context"][:]))
    spans = {question_id: [] for question_id in contexts}
    null = {}
    for row, (question_id, offsets) in enumerate(zip(features["example_id"][:], features["offset_mapping"][:])):
        starts, ends = start_logits[row].tolist(), end_logits[row].tolist()
        null[question_id] = min(null.get(question_id, np.inf), starts[0] + ends[0])
        context_tokens = [token for token, pair in enumerate(offsets) if pair is not None]
        for start in context_tokens:
            for end in context_tokens:
                if start <= end < start + MAX_ANSWER_LENGTH:
                    text = contexts[question_id][offsets[start][0] : offsets[end][1]]
                    spans[question_id].append((starts[start] + ends[end], text))
    return {question_id: (null[question_id], heapq.nlargest(keep, found)) for question_id, found in spans.items()}


def raw_top_k_reference(examples, features, logits, n_best_size=20):
    """Return per example id: (null score, best span score, its text) the classic way: the n best start and end
    indices over the whole row (padding included), then a loop over their pairs with per-candidate checks."""
    start_logits, end_logits = logits
    contexts = dict(zip(examples["id"][:], examples["context"][:]))
    result = {question_id: (np.inf, -np.inf, "") for question_id in contexts}
    for row, (question_id, offsets) in enumerate(zip(features["example_id"][:], features["offset_mapping"][:])):
        null, best, text = result[question_id]
        null = min(null, float(start_logits[row, 0]) + float(end_logits[row, 0]))
        for start in np.argsort(start_logits[row])[::-1][:n_best_size].tolist():
            for end in np.argsort(end_logits[row])[::-1][:n_best_size].tolist():
                if start >= len(offsets) or end >= len(offsets) or offsets[start] is None or offsets[end] is None:
                    continue
                if end < start or end - start + 1 > MAX_ANSWER_LENGTH:
                    continue
                score = float(start_logits[row, start]) + float(end_logits[row, end])
                if score > best:
                    best, text = score, contexts[question_id][offsets[start][0] : offsets[end][1]]
        result[question_id] = (null, best, text)
    return result


def is_null_entry(entry):
    return entry["text"] == "" and entry["start"] == entry["end"] == 0


def best_span_score(entries):
    spans = [entry for entry in entries if not is_null_entry(entry)]
    return spans[0]["start_logit"] + spans[0]["end_logit"] if spans else -np.inf


@pytest.fixture(scope="module")
def windows():
    return random_windows(seed=0, num_examples=700)


@pytest.fixture(scope="module")
def exhaustive(windows):
    return exhaustive_reference(*windows, keep=48)


def test_random_windows_cover_the_hard_cases(windows):
    examples, features, (start_logits, _) = windows
    assert len(features) >= 2000
    per_example = np.unique(features["example_id"][:], return_counts=True)[1]
    assert per_example.max() >= 4 and (per_example == 1).sum() > 0
    assert (start_logits == -100.0).any() and (start_logits == FLOAT32_MIN).any()


@pytest.mark.parametrize("version_2_with_negative", [False, True])
def test_with_every_context_token_as_candidate_answers_equal_the_exhaustive_search(
    windows, exhaustive, version_2_with_negative
):
    examples, features, logits = windows
    result = select_answers(examples, features, logits, version_2_with_negative, n_best_size=48,
                            max_answer_length=MAX_ANSWER_LENGTH)
    for question_id, (null, best_spans) in exhaustive.items():
        entries = result.nbest[question_id]
        span_entries = [entry for entry in entries if not is_null_entry(entry)]
        assert [e["start_logit"] + e["end_logit"] for e in span_entries] == [score for score, _ in best_spans]
        best_score, best_text = best_spans[0]
        tied = len(best_spans) > 1 and best_spans[1][0] == best_score
        if not tied:
            assert result.non_null_answers[question_id] == best_text
        if version_2_with_negative:
            assert result.null_odds[question_id] == null - best_score
            expected = "" if null - best_score > 0.0 else result.non_null_answers[question_id]
            assert result.answers[question_id] == expected
        else:
            assert result.answers[question_id] == result.non_null_answers[question_id]


@pytest.mark.parametrize("version_2_with_negative", [False, True])
def test_top_k_answers_match_the_classic_loop_or_beat_it_by_masking_first(windows, version_2_with_negative):
    examples, features, logits = windows
    result = select_answers(examples, features, logits, version_2_with_negative, max_answer_length=MAX_ANSWER_LENGTH)
    reference = raw_top_k_reference(examples, features, logits)
    same = 0
    for question_id, (null, reference_score, reference_text) in reference.items():
        score = best_span_score(result.nbest[question_id])
        assert score >= reference_score, question_id
        if score > reference_score:
            continue  # masking the question and padding first let a better context token into the top k
        same += 1
        assert result.non_null_answers[question_id] == reference_text
        if version_2_with_negative:
            assert result.null_odds[question_id] == null - reference_score
            assert result.answers[question_id] == ("" if null - reference_score > 0.0 else reference_text)
    assert same >= len(reference) // 2


@pytest.mark.parametrize("threshold", [-2.0, 0.0, 1.5])
def test_null_answer_is_chosen_exactly_when_null_odds_exceed_the_threshold(windows, threshold):
    result = select_answers(*windows, version_2_with_negative=True, null_score_diff_threshold=threshold)
    for question_id, odds in result.null_odds.items():
        expected = "" if odds > threshold else result.non_null_answers[question_id]
        assert result.answers[question_id] == expected
    assert 0 < sum(answer == "" for answer in result.answers.values()) < len(result.answers)


@pytest.mark.parametrize("version_2_with_negative", [False, True])
def test_nbest_lists_are_sorted_probabilities_with_offsets_into_the_context(windows, version_2_with_negative):
    examples, features, logits = windows
    contexts = dict(zip(examples["id"][:], examples["context"][:]))
    result = select_answers(examples, features, logits, version_2_with_negative, n_best_size=5)
    assert len(result.nbest) == len(examples)
    for question_id, entries in result.nbest.items():
        scores = [entry["start_logit"] + entry["end_logit"] for entry in entries]
        assert scores == sorted(scores, reverse=True)
        assert sum(entry["probability"] for entry in entries) == pytest.approx(1.0)
        assert all(entry["text"] == contexts[question_id][entry["start"] : entry["end"]] for entry in entries)
        nulls = [entry for entry in entries if is_null_entry(entry)]
        assert len(nulls) == int(version_2_with_negative)
        assert len(entries) - len(nulls) <= 5
        if version_2_with_negative:
            null_score = scores[entries.index(nulls[0])]
            assert best_span_score(entries) == pytest.approx(null_score - result.null_odds[question_id])


@pytest.mark.parametrize("version_2_with_negative", [False, True])
def test_nbest_entries_carry_hugging_faces_keys_with_score_the_sum_of_the_logits(windows, version_2_with_negative):
    result = select_answers(*windows, version_2_with_negative, n_best_size=5)
    for entries in result.nbest.values():
        for entry in entries:
            assert {"text", "probability", "score", "start_logit", "end_logit"} <= entry.keys()
            assert entry["score"] == entry["start_logit"] + entry["end_logit"]


def small_case(start_rows, end_rows, offsets_rows, example_ids=None, context="alpha beta gamma delta"):
    """Return (examples, features, logits) for hand-written windows over one context."""
    example_ids = example_ids or ["q"] * len(offsets_rows)
    rows = [{"id": question_id, "context": context} for question_id in dict.fromkeys(example_ids)]
    examples = datasets.Dataset.from_list(rows)
    features = datasets.Dataset.from_dict({"example_id": example_ids, "offset_mapping": offsets_rows})
    return examples, features, (np.array(start_rows, dtype=np.float32), np.array(end_rows, dtype=np.float32))


WORDS = [[0, 5], [6, 10], [11, 16], [17, 22]]  # alpha beta gamma delta


def test_hand_built_window_picks_the_best_ordered_span_within_the_length_limit():
    offsets = [None, None] + WORDS + [None]
    start = [0, 9, 0, 5, 1, 0, 9]  # the question token and the closing [SEP] score high but are not context
    end = [0, 9, 0, 2, 4, 6, 9]
    case = small_case([start], [end], [offsets])
    assert select_answers(*case).answers == {"q": "beta gamma delta"}
    assert select_answers(*case, max_answer_length=2).answers == {"q": "beta gamma"}
    assert select_answers(*case, max_answer_length=1).answers == {"q": "beta"}


def test_null_score_is_the_lowest_over_windows_and_the_best_span_the_highest():
    first = [None, None] + WORDS[:3] + [None]
    second = [None, None] + WORDS[1:] + [None]
    start = [[3, 0, 0, 2, 0, 0], [1, 0, 0, 0, 4, 0]]
    end = [[3, 0, 0, 2, 0, 0], [1, 0, 0, 0, 4, 0]]
    result = select_answers(*small_case(start, end, [first, second]), version_2_with_negative=True)
    assert result.null_odds == {"q": 2.0 - 8.0}  # min(6, 2) - max(4, 8)
    assert result.answers == {"q": "delta"}
    null_entry = [entry for entry in result.nbest["q"] if is_null_entry(entry)][0]
    assert (null_entry["start_logit"], null_entry["end_logit"]) == (1.0, 1.0)


def test_example_without_any_valid_span_answers_nothing():
    case = small_case([[5.0, 1.0, 1.0]], [[5.0, 1.0, 1.0]], [[None, None, None]])
    result = select_answers(*case, version_2_with_negative=True, null_score_diff_threshold=2e9)
    assert result.answers == {"q": ""}
    assert result.null_odds == {"q": NULL_ODDS_WITHOUT_SPAN}
    assert [entry["text"] for entry in result.nbest["q"]] == [""]
    v1 = select_answers(*case)
    assert v1.answers == {"q": ""} and v1.nbest["q"] == []


def test_reordered_features_give_the_same_predictions(windows):
    examples, features, (start_logits, end_logits) = windows
    order = np.argsort([-len(offsets) for offsets in features["offset_mapping"][:]], kind="stable")  # longest first
    reordered = select_answers(examples, features.select(order), (start_logits[order], end_logits[order]), True)
    original = select_answers(examples, features, (start_logits, end_logits), True)
    assert reordered.answers == original.answers and reordered.null_odds == original.null_odds
    assert dict(reordered.nbest) == dict(original.nbest)


def test_half_precision_logits_give_the_same_answers(windows):
    examples, features, (start_logits, end_logits) = windows
    half = tuple(np.clip(values, -60000, 60000).astype(np.float16) for values in (start_logits, end_logits))
    widened = tuple(values.astype(np.float32) for values in half)
    assert select_answers(examples, features, half).answers == select_answers(examples, features, widened).answers


def test_inconsistent_inputs_are_refused_with_a_reason():
    offsets = [None, None] + WORDS + [None]
    logits = [[0.0] * 7]
    with pytest.raises(ValueError, match="NaN"):
        select_answers(*small_case([[np.nan] * 7], logits, [offsets]))
    with pytest.raises(ValueError, match="logits only 5 columns"):
        select_answers(*small_case([[0.0] * 5], [[0.0] * 5], [offsets]))
    examples, features, predictions = small_case(logits, logits, [offsets])
    with pytest.raises(ValueError, match="examples that are not given"):
        select_answers(examples.map(lambda row: {"id": "other"}), features, predictions)
    two = datasets.Dataset.from_list([
        {"id": "q", "context": "alpha beta gamma delta"},
        {"id": "lonely", "context": "x"},
    ])
    with pytest.raises(ValueError, match="1 example\\(s\\) have no features \\(e.g. 'lonely'\\)"):
        select_answers(two, features, predictions)


def test_write_predictions_writes_the_files_the_official_script_reads(tmp_path, windows):
    result = select_answers(*windows, version_2_with_negative=True, n_best_size=3)
    paths = write_predictions(result, tmp_path, prefix="eval")
    assert sorted(paths) == ["nbest_predictions", "nonnull_predictions", "null_odds", "predictions"]
    assert paths["predictions"] == str(tmp_path / "eval_predictions.json")

    def strict(path):
        return json.loads(open(path, encoding="utf-8").read(), parse_constant=lambda name: pytest.fail(name))

    assert strict(paths["predictions"]) == result.answers
    assert strict(paths["null_odds"]) == result.null_odds
    assert strict(paths["nonnull_predictions"]) == result.non_null_answers
    assert strict(paths["nbest_predictions"]) == dict(result.nbest)

    v1 = select_answers(*windows)
    assert sorted(write_predictions(v1, tmp_path / "v1")) == ["nbest_predictions", "predictions"]
    assert (tmp_path / "v1" / "predictions.json").exists()


def test_postprocess_qa_predictions_returns_answers_and_writes_files(tmp_path, windows):
    answers = postprocess_qa_predictions(*windows, version_2_with_negative=True, output_dir=tmp_path, prefix="test")
    assert answers == select_answers(*windows, version_2_with_negative=True).answers
    assert {path.name for path in tmp_path.iterdir()} == {
        "test_predictions.json", "test_nbest_predictions.json", "test_null_odds.json", "test_nonnull_predictions.json"
    }
