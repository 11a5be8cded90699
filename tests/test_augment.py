"""Unanswerable copies of answerable training questions, made by cutting the answering sentence out."""

import pathlib

import datasets
import pytest

import run_qa
from cli_errors import UserError
from utils_qa import (
    SQUAD_FEATURES,
    add_answer_removed_questions,
    article_keys,
    sentence_spans,
    without_answer_sentences,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "sample_train.json"
DEV = ROOT / "data" / "sample_dev.json"

PASSAGE = ("The bridge opened in 1932 (e.g. to trams). It was designed by J. Bradfield! "
           "Who paid for it? \"The state,\" said the papers. Tolls ended in 1950 (Dr. Lang's plan).")


def answers(context: str, *texts: str) -> dict:
    return {"text": list(texts), "answer_start": [context.index(text) for text in texts]}


def test_sentences_cover_the_passage_and_abbreviations_stay_inside_their_sentence():
    sentences = [PASSAGE[start:end] for start, end in sentence_spans(PASSAGE)]
    assert "".join(sentences) == PASSAGE
    assert [sentence.strip() for sentence in sentences] == [
        "The bridge opened in 1932 (e.g. to trams).", "It was designed by J. Bradfield!", "Who paid for it?",
        "\"The state,\" said the papers.", "Tolls ended in 1950 (Dr. Lang's plan)."]


def test_the_answering_sentences_are_cut_and_the_rest_kept_in_order():
    assert without_answer_sentences(PASSAGE, answers(PASSAGE, "Bradfield")) == (
        "The bridge opened in 1932 (e.g. to trams). Who paid for it? \"The state,\" said the papers. "
        "Tolls ended in 1950 (Dr. Lang's plan).")
    # Two reference answers in two sentences: both go.
    assert without_answer_sentences(PASSAGE, answers(PASSAGE, "1932", "The state")) == (
        "It was designed by J. Bradfield! Who paid for it? Tolls ended in 1950 (Dr. Lang's plan).")
    # An answer across a sentence break takes both sentences.
    assert without_answer_sentences(PASSAGE, answers(PASSAGE, "Bradfield! Who")).startswith("The bridge opened")


def test_no_copy_when_the_answer_is_still_written_elsewhere_or_nothing_is_left():
    repeated = "Rome was founded in 753 BC. Legend dates Rome to 753 BC as well."
    assert without_answer_sentences(repeated, {"text": ["753 BC"], "answer_start": [20]}) is None
    single = "Only one sentence holds 42."
    assert without_answer_sentences(single, answers(single, "42")) is None


def rows(count: int) -> datasets.Dataset:
    """`count` answerable questions over PASSAGE, then one unanswerable one."""
    records = [{"id": f"q{index}", "title": "Bridge", "context": PASSAGE, "question": f"Who designed it {index}?",
                "answers": answers(PASSAGE, "Bradfield"), "plausible_answers": {"text": [], "answer_start": []}}
               for index in range(count)]
    records.append({"id": "impossible", "title": "Bridge", "context": PASSAGE, "question": "Who painted it?",
                    "answers": {"text": [], "answer_start": []},
                    "plausible_answers": answers(PASSAGE, "Bradfield")})
    return datasets.Dataset.from_list(records, features=SQUAD_FEATURES)


def test_copies_are_unanswerable_follow_the_originals_and_are_drawn_with_the_seed():
    dataset = rows(10)
    augmented = add_answer_removed_questions(dataset, 0.5, seed=3)
    assert augmented.select(range(len(dataset))).to_list() == dataset.to_list()
    copies = augmented.select(range(len(dataset), len(augmented)))
    assert len(copies) == 5
    originals = {row["id"]: row for row in dataset}
    for copy in copies:
        original = originals[copy["id"].removesuffix("-answer-removed")]
        assert copy["id"] == original["id"] + "-answer-removed" and original["answers"]["text"]
        assert copy["question"] == original["question"] and copy["title"] == original["title"]
        assert copy["answers"] == copy["plausible_answers"] == {"text": [], "answer_start": []}
        assert "Bradfield" not in copy["context"] and copy["context"] in original["context"].replace(
            " It was designed by J. Bradfield!", "")
    assert copies["id"] == add_answer_removed_questions(dataset, 0.5, seed=3)["id"][len(dataset):]
    assert len({tuple(add_answer_removed_questions(dataset, 0.5, seed=seed)["id"]) for seed in range(5)}) > 1
    assert len(add_answer_removed_questions(dataset, 0.0, seed=3)) == len(dataset)
    assert len(add_answer_removed_questions(dataset, 1.0, seed=3)) == 2 * len(dataset) - 1


def test_only_training_articles_get_copies_and_the_calibration_split_stays_as_given(tmp_path, tiny_model_dir):
    model_args, data_args, training_args = run_qa.parse_arguments([
        "--model_name_or_path", str(tiny_model_dir), "--train_file", str(TRAIN), "--validation_file", str(DEV),
        "--output_dir", str(tmp_path), "--do_train", "--answer_removal_fraction", "1"])
    trainer, raw, features = run_qa.prepare_run(model_args, data_args, training_args)
    given = run_qa.load_data(data_args, model_args, training_args)
    copies = [question_id for question_id in raw["train"]["id"] if question_id.endswith("-answer-removed")]
    answerable = {row["id"] for row in raw["train"] if row["answers"]["text"]}
    assert copies and {question_id.removesuffix("-answer-removed") for question_id in copies} <= answerable
    assert set(raw["calibration"]["id"]) <= set(given["train"]["id"])
    assert not set(article_keys(raw["calibration"])) & set(article_keys(raw["train"]))
    assert len(features["train"]) > len(run_qa.make_features(
        run_qa.hold_out_calibration(given, data_args, training_args, True), trainer.processing_class,
        trainer.answer_settings, data_args, training_args)["train"])


def test_copies_are_refused_for_data_without_unanswerable_questions():
    raw = datasets.DatasetDict({"train": rows(4)})
    with pytest.raises(UserError, match="--answer_removal_fraction adds unanswerable questions"):
        run_qa.add_unanswerable_copies(raw, 0.5, seed=0, version_2=False)


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_a_share_outside_0_to_1_is_refused_naming_the_flag(tmp_path, tiny_model_dir, value):
    with pytest.raises(ValueError, match="--answer_removal_fraction must be between 0 and 1"):
        run_qa.parse_arguments(["--model_name_or_path", str(tiny_model_dir), "--answer_removal_fraction", value])
