"""The calibration split, the threshold chosen on it, and the settings a trained model ships with (qa_settings)."""

import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
from dataclasses import asdict

import datasets
import pytest
import torch

import run_qa
from modeling_pointer_distilbert import PointerDistilBertConfig, PointerDistilBertForQuestionAnswering
from utils_qa import (
    QASettings,
    answer_similarity_scale,
    article_keys,
    calibrated_null_threshold,
    compute_squad_metrics,
    split_calibration_articles,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "sample_train.json"
DEV = ROOT / "data" / "sample_dev.json"


def questions(titles: list[str], per_article: int = 3) -> datasets.Dataset:
    """Rows of `per_article` questions for each title, every article with its own context."""
    rows = [{"id": f"{title}-{index}", "title": title, "context": f"context of {title}", "question": "q?"}
            for title in titles for index in range(per_article)]
    return datasets.Dataset.from_list(rows)


def test_calibration_split_holds_out_whole_articles_drawn_with_the_seed():
    dataset = questions([f"article {letter}" for letter in "ABCDEFGHIJ"])
    train, calibration, held_out = split_calibration_articles(dataset, 0.2, seed=1)
    assert len(held_out) == 2 and len(train) + len(calibration) == len(dataset)
    assert set(calibration["title"]) == set(held_out)
    assert not set(train["title"]) & set(held_out)
    assert split_calibration_articles(dataset, 0.2, seed=1)[2] == held_out
    assert len({tuple(split_calibration_articles(dataset, 0.2, seed=seed)[2]) for seed in range(10)}) > 1
    assert len(split_calibration_articles(dataset, 0.01, seed=1)[2]) == 2, "at least two articles"
    assert len(split_calibration_articles(dataset, 0.99, seed=1)[2]) == 3, "at most a third of them"
    assert len(split_calibration_articles(dataset.select(range(15)), 0.5, seed=1)[2]) == 1, "five: one"
    assert len(split_calibration_articles(dataset.select(range(6)), 0.5, seed=1)[2]) == 1, "two: one, one to train"


def test_rows_without_a_title_are_grouped_by_their_passage():
    rows = [{"id": str(index), "title": "", "context": f"passage {index // 2}", "question": "q?"} for index in range(8)]
    train, calibration, _ = split_calibration_articles(datasets.Dataset.from_list(rows), 0.25, seed=0)
    assert len(calibration) == 2 and not set(article_keys(train)) & set(article_keys(calibration))


def test_a_single_article_cannot_be_split():
    with pytest.raises(ValueError, match="--calibration_fraction 0"):
        split_calibration_articles(questions(["only"]), 0.5, seed=0)


def test_the_run_takes_its_calibration_articles_from_the_training_file_only(tmp_path, tiny_model_dir):
    model_args, data_args, training_args = run_qa.parse_arguments([
        "--model_name_or_path", str(tiny_model_dir), "--train_file", str(TRAIN), "--validation_file", str(DEV),
        "--output_dir", str(tmp_path), "--calibration_fraction", "0.3"])
    raw = run_qa.load_data(data_args, model_args, training_args)
    split = run_qa.hold_out_calibration(raw, data_args, training_args, version_2=True)
    assert split["validation"]["id"] == raw["validation"]["id"]
    assert set(split["calibration"]["id"]) <= set(raw["train"]["id"])
    assert set(split["train"]["id"]) | set(split["calibration"]["id"]) == set(raw["train"]["id"])
    assert not set(article_keys(split["train"])) & set(article_keys(split["calibration"]))
    assert len(set(article_keys(split["calibration"]))) == 3  # 30 % of the nine training articles

    _, given_threshold, _ = run_qa.parse_arguments([
        "--model_name_or_path", str(tiny_model_dir), "--train_file", str(TRAIN), "--output_dir", str(tmp_path),
        "--null_score_diff_threshold", "1.5"])
    assert "calibration" not in run_qa.hold_out_calibration(raw, given_threshold, training_args, version_2=True)


def f1_at(threshold, references, non_null, odds) -> float:
    return compute_squad_metrics(references, non_null, odds, null_odds_threshold=threshold)["f1"]


def test_calibrated_threshold_is_the_best_one_on_a_hand_made_case():
    # Sorted by null odds: a (answer right), b (no answer), c (answer right), d and e (no answer).
    references = {"a": ["x"], "b": [], "c": ["y"], "d": [], "e": []}
    non_null = {"a": "x", "b": "z", "c": "y", "d": "z", "e": "z"}
    odds = {"a": -2.0, "b": -1.0, "c": 0.0, "d": 1.0, "e": 2.0}
    threshold = calibrated_null_threshold(references, non_null, odds)
    assert threshold == -1.5  # answer a alone (4 of 5), halfway to b; answering a, b, c also gives 4: fewer answers
    assert f1_at(threshold, references, non_null, odds) == 80.0


def test_calibrated_threshold_reaches_the_best_f1_of_every_threshold():
    rng = random.Random(0)
    for _ in range(30):
        ids = [str(index) for index in range(40)]
        references = {q: (["gold answer"] if rng.random() < 0.5 else []) for q in ids}
        non_null = {q: rng.choice(["gold answer", "gold", "other"]) for q in ids}
        odds = {q: round(rng.gauss(0, 2), 1) for q in ids}  # rounded: ties
        threshold = calibrated_null_threshold(references, non_null, odds)
        candidates = [min(odds.values()) - 1] + sorted(set(odds.values()))
        best = max(f1_at(candidate, references, non_null, odds) for candidate in candidates)
        assert f1_at(threshold, references, non_null, odds) == pytest.approx(best)


def test_no_separation_on_the_calibration_split_means_abstaining():
    references = {"a": ["x"], "b": [], "c": ["y"], "d": []}
    non_null = {"a": "x", "b": "z", "c": "y", "d": "z"}
    odds = {"a": 0.5, "b": -1.0, "c": 2.0, "d": 1.0}  # every answerable question sits above an unanswerable one
    threshold = calibrated_null_threshold(references, non_null, odds)
    assert threshold < min(odds.values())
    assert f1_at(threshold, references, non_null, odds) == 50.0


def test_a_gain_within_its_standard_errors_abstains_and_a_clear_one_answers():
    # Ten questions by rising odds; only the first has an answer: answering it alone gains F1 +10 (mean gain 0.1
    # per question), with a standard error of 0.1, so two standard errors leave nothing.
    references = {str(index): (["x"] if index == 0 else []) for index in range(10)}
    non_null = dict.fromkeys(references, "x")
    odds = {question_id: float(index) for index, question_id in enumerate(references)}
    plain = calibrated_null_threshold(references, non_null, odds)
    assert plain == 0.5 and f1_at(plain, references, non_null, odds) == 100.0
    assert calibrated_null_threshold(references, non_null, odds, standard_errors=2.0) < 0, "abstains"

    clear = dict.fromkeys(references, ["x"]) | {"8": [], "9": []}  # answering the first eight gains 8 of 10
    assert calibrated_null_threshold(clear, non_null, odds, standard_errors=2.0) == 7.5
    with pytest.raises(ValueError, match="standard_errors"):
        calibrated_null_threshold(references, non_null, odds, standard_errors=-1.0)


def test_a_gain_that_one_article_makes_and_the_other_loses_is_not_shipped():
    # Article P: ten answerable questions (odds 0-9). Article Q: four unanswerable ones among them (odds -1 to 2.5),
    # six answerable ones far above (odds 20-25) whose spans are wrong. Between questions, answering up to odds 9
    # wins by more than a standard error; between articles, P's gain is Q's loss plus noise.
    odds = {f"p{index}": float(index) for index in range(10)}
    odds |= {f"q{index}": value for index, value in enumerate([-1.0, 0.5, 1.5, 2.5, 20, 21, 22, 23, 24, 25])}
    references = {q: ([] if q in ("q0", "q1", "q2", "q3") else ["x"]) for q in odds}
    non_null = {q: ("y" if q in ("q4", "q5", "q6", "q7", "q8", "q9") else "x") for q in references}
    articles = {q: q[0] for q in references}
    assert calibrated_null_threshold(references, non_null, odds, standard_errors=1.0) == 14.5
    assert calibrated_null_threshold(references, non_null, odds, articles, standard_errors=1.0) < -1, "abstains"
    assert calibrated_null_threshold(references, non_null, odds, articles) == 14.5, "0: the F1 maximum"


def test_two_articles_that_agree_by_chance_do_not_ship_a_gain_within_the_questions_noise():
    # Each article: one answerable question at low odds, nine unanswerable ones far above. Answering the two gains
    # one question in each article, the same in both (no spread between articles), 2 of 20 in all: within the
    # sampling noise of 20 questions.
    odds = {f"a{index}": (0.0 if index == 0 else 10.0 + index) for index in range(10)}
    odds |= {f"b{index}": (1.0 if index == 0 else 20.0 + index) for index in range(10)}
    references = {q: (["x"] if q in ("a0", "b0") else []) for q in odds}
    non_null = dict.fromkeys(references, "x")
    articles = {q: q[0] for q in references}
    assert calibrated_null_threshold(references, non_null, odds, articles) == 6.0  # halfway from 1 to 11
    assert calibrated_null_threshold(references, non_null, odds, articles, standard_errors=2.0) < 0, "abstains"


def test_old_checkpoints_without_settings_get_the_recipes_defaults(tmp_path, tiny_model_dir):
    assert PointerDistilBertConfig.from_pretrained(tiny_model_dir).qa_settings is None
    _, data_args, _ = run_qa.parse_arguments(["--model_name_or_path", str(tiny_model_dir), "--do_eval",
                                              "--validation_file", str(DEV), "--output_dir", str(tmp_path)])
    assert run_qa.resolve_qa_settings(data_args, None, version_2=True, training=False) == QASettings()


def test_qa_settings_survive_save_pretrained_and_a_fresh_process(tmp_path, tiny_model_dir):
    settings = asdict(QASettings(max_seq_length=200, doc_stride=50, null_score_diff_threshold=-1.25,
                                 null_score_diff_threshold_source="calibration split: 9 questions"))
    model = PointerDistilBertForQuestionAnswering.from_pretrained(tiny_model_dir)
    model.config.qa_settings = settings
    model.save_pretrained(tmp_path / "saved")
    assert PointerDistilBertForQuestionAnswering.from_pretrained(tmp_path / "saved").config.qa_settings == settings

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    script = ("import json, sys\nfrom transformers import AutoModelForQuestionAnswering\n"
              "model = AutoModelForQuestionAnswering.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
              "print(json.dumps(model.config.qa_settings))")
    completed = subprocess.run([sys.executable, "-c", script, str(tmp_path / "saved")], cwd=elsewhere,
                               env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == settings


def run_args(model_dir, output_dir, *extra) -> list[str]:
    return ["--model_name_or_path", str(model_dir), "--output_dir", str(output_dir), "--validation_file", str(DEV),
            "--per_device_eval_batch_size", "32", "--max_eval_samples", "30", "--disable_tqdm", "true",
            "--use_cpu", "true", "--report_to", "none", *extra]


@pytest.fixture(scope="module")
def calibrated_model(tmp_path_factory, tiny_model_dir) -> pathlib.Path:
    """A tiny model trained a few steps with a calibration split, saved with its settings."""
    output_dir = tmp_path_factory.mktemp("calibrated") / "model"
    run_qa.main(run_args(
        tiny_model_dir, output_dir, "--train_file", str(TRAIN), "--do_train", "--do_eval", "--max_steps", "3",
        "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--save_strategy", "no",
        "--calibration_fraction", "0.2", "--max_seq_length", "128", "--doc_stride", "48", "--max_answer_length", "12",
    ))
    return output_dir


def test_training_saves_the_calibrated_threshold_and_the_window_settings(calibrated_model):
    saved = json.loads((calibrated_model / "config.json").read_text())["qa_settings"]
    assert saved["null_score_diff_threshold_source"].startswith("calibration split: ")
    assert (saved["max_seq_length"], saved["doc_stride"], saved["max_answer_length"]) == (128, 48, 12)
    assert saved["version_2_with_negative"] is True
    results = json.loads((calibrated_model / "eval_results.json").read_text())
    assert results["eval_null_score_diff_threshold"] == saved["null_score_diff_threshold"]
    assert results["eval_null_score_diff_threshold_source"] == saved["null_score_diff_threshold_source"]
    assert json.loads((calibrated_model / "all_results.json").read_text())["calibration_total"] > 0
    assert saved["null_score_diff_threshold_source"] in (calibrated_model / "README.md").read_text()


def test_the_calibration_answers_are_written_and_replay_the_shipped_threshold(calibrated_model):
    saved = json.loads((calibrated_model / "config.json").read_text())["qa_settings"]
    odds = json.loads((calibrated_model / "calibration_null_odds.json").read_text())
    spans = json.loads((calibrated_model / "calibration_nonnull_predictions.json").read_text())
    train = json.loads(TRAIN.read_text())
    references = {question["id"]: [answer["text"] for answer in question["answers"]]
                  for article in train["data"] for paragraph in article["paragraphs"] for question in paragraph["qas"]
                  if question["id"] in odds}
    assert len(references) == len(odds) == json.loads((calibrated_model / "all_results.json").read_text())[
        "calibration_total"]
    assert calibrated_null_threshold(references, spans, odds) == saved["null_score_diff_threshold"]


def test_a_separate_evaluation_answers_with_the_saved_settings_unless_a_flag_says_otherwise(
        tmp_path, calibrated_model):
    saved = json.loads((calibrated_model / "config.json").read_text())["qa_settings"]
    run_qa.main(run_args(calibrated_model, tmp_path / "again", "--do_eval"))
    again = json.loads((tmp_path / "again" / "eval_results.json").read_text())
    first = json.loads((calibrated_model / "eval_results.json").read_text())
    assert again["eval_null_score_diff_threshold"] == saved["null_score_diff_threshold"]
    assert again["eval_null_score_diff_threshold_source"].startswith("saved with the model (calibration split")
    assert again["eval_f1"] == pytest.approx(first["eval_f1"])
    assert (json.loads((tmp_path / "again" / "eval_predictions.json").read_text())
            == json.loads((calibrated_model / "eval_predictions.json").read_text()))

    run_qa.main(run_args(calibrated_model, tmp_path / "flag", "--do_eval", "--null_score_diff_threshold", "1e9"))
    flagged = json.loads((tmp_path / "flag" / "eval_results.json").read_text())
    assert flagged["eval_null_score_diff_threshold"] == 1e9
    assert flagged["eval_null_score_diff_threshold_source"] == "--null_score_diff_threshold"
    assert all(json.loads((tmp_path / "flag" / "eval_predictions.json").read_text()).values()), "never abstains"


def test_prediction_uses_the_saved_settings(tmp_path, calibrated_model):
    rows = [{"id": "q1", "question": "Where?", "context": "The town lies in the valley. " * 40}]
    test_file = tmp_path / "questions.jsonl"
    test_file.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    model_args, data_args, training_args = run_qa.parse_arguments(
        ["--model_name_or_path", str(calibrated_model), "--do_predict", "--test_file", str(test_file),
         "--output_dir", str(tmp_path / "out")])
    base_config = run_qa.load_base_config(model_args)
    raw = run_qa.load_data(data_args, model_args, training_args)
    version_2 = run_qa.resolve_version_2(None, raw, base_config.qa_settings)
    settings = run_qa.resolve_qa_settings(data_args, base_config.qa_settings, version_2, training=False)
    assert asdict(settings) | {"null_score_diff_threshold_source": ""} == (
        base_config.qa_settings | {"null_score_diff_threshold_source": ""})
    tokenizer = run_qa.build_tokenizer(model_args)
    features = run_qa.make_features(raw, tokenizer, settings, data_args, training_args)
    assert max(len(ids) for ids in features["test"]["input_ids"]) == 128, "the saved max_seq_length"


def test_similarity_weight_puts_the_similarity_on_the_null_odds_scale():
    odds = {"a": 0.0, "b": 2.0, "c": 4.0}
    weight, center = answer_similarity_scale(odds, {"a": 0.3, "b": 0.2, "c": 0.1})
    assert (weight, center) == (pytest.approx(20.0), pytest.approx(0.2))
    assert answer_similarity_scale(odds, {"a": 0.5, "b": 0.5, "c": 0.5}) == (0.0, 0.0), "a constant says nothing"
    with pytest.raises(ValueError, match="similarity lack 1 of 3 question ids"):
        answer_similarity_scale(odds, {"a": 0.3, "b": 0.2})


@pytest.fixture(scope="module")
def similarity_model(tmp_path_factory, tokenizer) -> tuple[pathlib.Path, pathlib.Path]:
    """(start, trained): a tiny plain DistilBERT over the real vocabulary, and the model trained from it a few steps
    with --answer_similarity and a calibration split."""
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    start = tmp_path_factory.mktemp("plain-distilbert")
    torch.manual_seed(0)
    DistilBertForMaskedLM(DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, n_layers=2, n_heads=2,
                                           hidden_dim=64, dropout=0.0, attention_dropout=0.0)).save_pretrained(start)
    tokenizer.save_pretrained(start)
    trained = tmp_path_factory.mktemp("similarity") / "model"
    run_qa.main(run_args(
        start, trained, "--train_file", str(TRAIN), "--do_train", "--do_eval", "--max_steps", "3",
        "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--save_strategy", "no",
        "--calibration_fraction", "0.3", "--max_seq_length", "128", "--doc_stride", "48", "--answer_similarity", "true",
    ))
    return start, trained


def test_the_matcher_is_the_starting_encoder_and_its_weight_travels_with_the_model(tmp_path, similarity_model):
    from safetensors.torch import load_file

    start, trained = similarity_model
    encoder = {name.removeprefix("distilbert."): value for name, value in load_file(start / "model.safetensors").items()
               if name.startswith("distilbert.")}
    weights = load_file(trained / "model.safetensors")
    matcher = {name.removeprefix("sentence_matcher.encoder."): value for name, value in weights.items()
               if name.startswith("sentence_matcher.encoder.")}
    assert matcher.keys() == encoder.keys() and all(torch.equal(matcher[name], encoder[name]) for name in encoder)
    assert not all(torch.equal(weights[f"distilbert.{name}"], encoder[name]) for name in encoder), "the reader trained"
    config = json.loads((trained / "config.json").read_text())
    assert config["answer_similarity"] and config["sentence_token_ids"]["sep"] == 102
    weight = config["qa_settings"]["answer_similarity_weight"]
    assert weight >= 0 and "answer_similarity_weight" not in config, "the weight lives in qa_settings"
    assert f"answer_similarity_weight: {weight}" in (trained / "README.md").read_text()

    run_qa.main(run_args(trained, tmp_path / "again", "--do_eval"))
    for name in ("eval_null_odds.json", "eval_predictions.json"):
        assert json.loads((tmp_path / "again" / name).read_text()) == json.loads((trained / name).read_text())


def test_a_weighed_model_answers_alike_in_evaluation_and_in_the_pipeline(tmp_path, similarity_model):
    from transformers import pipeline

    _, trained = similarity_model
    shutil.copytree(trained, tmp_path / "weighed")
    config_file = tmp_path / "weighed" / "config.json"
    config = json.loads(config_file.read_text())
    config["qa_settings"].update(answer_similarity_weight=3.0, answer_similarity_center=0.5)
    config_file.write_text(json.dumps(config))
    run_qa.main(run_args(tmp_path / "weighed", tmp_path / "eval", "--do_eval"))
    weighed = json.loads((tmp_path / "eval" / "eval_null_odds.json").read_text())
    unweighed = json.loads((trained / "eval_null_odds.json").read_text())
    assert weighed.keys() == unweighed.keys() and weighed != unweighed, "the saved weight moves the null odds"

    evaluation = json.loads((tmp_path / "eval" / "eval_predictions.json").read_text())
    questions = [question for article in json.loads(DEV.read_text())["data"] for paragraph in article["paragraphs"]
                 for question in [dict(qa, context=paragraph["context"]) for qa in paragraph["qas"]]
                 if question["id"] in evaluation]
    qa = pipeline(model=str(tmp_path / "weighed"), trust_remote_code=True)
    answers = qa(question=[q["question"] for q in questions], context=[q["context"] for q in questions])
    assert [answer["answer"] for answer in answers] == [evaluation[q["id"]] for q in questions]


class _Predictions:
    def __init__(self, null_odds):
        self.null_odds = null_odds


class _CalibrationStub:
    """What `_weigh_answer_similarity` needs of a trainer: answer settings, and answers whose null odds fall by
    weight × (similarity − centre), as the model's do."""

    def __init__(self, reader_odds, similarity):
        self.answer_settings = QASettings()
        self.reader_odds, self.similarity = reader_odds, similarity

    def use_answer_settings(self, settings):
        self.answer_settings = settings

    def _answers(self, *_):
        weight, center = self.answer_settings.answer_similarity_weight, self.answer_settings.answer_similarity_center
        return _Predictions({q: odds - weight * (self.similarity[q] - center)
                             for q, odds in self.reader_odds.items()}), None


@pytest.mark.parametrize("informative", [True, False], ids=["informative", "misleading"])
def test_the_similarity_is_weighed_in_only_when_it_separates_the_calibration_questions_better(informative):
    from trainer_qa import QuestionAnsweringTrainer

    references = {"a": ["x"], "b": [], "c": ["y"], "d": []}
    reader_odds = {"a": 0.0, "b": 1.0, "c": 2.0, "d": 1.5}  # c (answerable) ranks above b: AUC 0.75
    similarity = ({"a": 0.9, "b": 0.1, "c": 0.9, "d": 0.2} if informative  # high for the answerable ones
                  else {"a": 0.1, "b": 0.9, "c": 0.1, "d": 0.8})
    stub = _CalibrationStub(reader_odds, similarity)
    chosen = QuestionAnsweringTrainer._weigh_answer_similarity(stub, None, None, None, references,
                                                               _Predictions(reader_odds))
    config = stub.answer_settings
    if informative:
        assert (config.answer_similarity_weight, config.answer_similarity_center) == pytest.approx(
            answer_similarity_scale(reader_odds, similarity))
        assert chosen.null_odds["c"] < chosen.null_odds["b"], "the answerable question now ranks as such"
    else:
        assert (config.answer_similarity_weight, config.answer_similarity_center) == (0.0, 0.0)
        assert chosen.null_odds == reader_odds


def test_without_a_calibration_split_the_similarity_stays_unweighed(tmp_path, similarity_model, caplog):
    start, _ = similarity_model
    with caplog.at_level("WARNING"):
        run_qa.main(run_args(
            start, tmp_path / "model", "--train_file", str(TRAIN), "--do_train", "--max_steps", "1",
            "--per_device_train_batch_size", "8", "--save_strategy", "no", "--calibration_fraction", "0",
            "--max_seq_length", "128", "--doc_stride", "48", "--answer_similarity", "true",
        ))
    assert json.loads((tmp_path / "model" / "config.json").read_text())["qa_settings"]["answer_similarity_weight"] == 0
    assert "this run has none (--calibration_fraction 0): the model will not use it" in caplog.text
