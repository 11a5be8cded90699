"""End-to-end runs of run_qa.py on a tiny model: outputs, arguments, resuming, and data-parallel training."""

import dataclasses
import inspect
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import run_qa
import trainer_qa
import utils_qa
from cli_errors import UserError
from modeling_pointer_distilbert import PointerDistilBertConfig, PointerDistilBertForQuestionAnswering
from trainer_qa import QuestionAnsweringTrainer
from utils_qa import compute_squad_metrics

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRAIN = ROOT / "data" / "sample_train.json"
DEV = ROOT / "data" / "sample_dev.json"
OFFICIAL_KEYS = ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1",
                 "NoAns_total"]
BEST_KEYS = ["best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]
DIAGNOSTIC_KEYS = ["forced_HasAns_exact", "forced_HasAns_f1", "null_odds_auc"]
METRIC_KEYS = OFFICIAL_KEYS + BEST_KEYS + DIAGNOSTIC_KEYS


def tiny_run_args(model_dir, output_dir, *extra) -> list[str]:
    """Arguments of a few-second run on the bundled sample."""
    return [
        "--model_name_or_path", str(model_dir), "--train_file", str(TRAIN), "--validation_file", str(DEV),
        "--output_dir", str(output_dir), "--max_seq_length", "128", "--doc_stride", "48",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--max_train_samples", "24",
        "--max_eval_samples", "20", "--learning_rate", "1e-3", "--seed", "0", "--disable_tqdm", "true",
        "--use_cpu", "true", *extra,
    ]


def dev_ids(limit: int) -> list[str]:
    document = json.loads(DEV.read_text(encoding="utf-8"))
    ids = [qa["id"] for article in document["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    return ids[:limit]


def json_value(text: str):
    """Return a command-line value as an argument file would hold it: "128" -> 128, "true" -> True, paths as text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@pytest.fixture(scope="module")
def unlabelled_test_file(tmp_path_factory) -> pathlib.Path:
    """The dev questions as flat jsonl rows without answers, as a user's test file would be."""
    document = json.loads(DEV.read_text(encoding="utf-8"))
    path = tmp_path_factory.mktemp("test-data") / "questions.jsonl"
    with path.open("w", encoding="utf-8") as file:
        for article in document["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    row = {"id": qa["id"], "question": qa["question"], "context": paragraph["context"]}
                    file.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def trained_output(tmp_path_factory, tiny_model_dir, unlabelled_test_file) -> pathlib.Path:
    output_dir = tmp_path_factory.mktemp("run") / "out"
    run_qa.main(tiny_run_args(
        tiny_model_dir, output_dir, "--do_train", "--do_eval", "--do_predict", "--test_file",
        str(unlabelled_test_file), "--max_predict_samples", "15", "--max_steps", "6", "--logging_steps", "2",
        "--eval_strategy", "steps", "--eval_steps", "3", "--save_strategy", "no",
    ))
    return output_dir


def test_run_writes_every_promised_output(trained_output):
    names = {path.name for path in trained_output.iterdir()}
    expected = {
        "model.safetensors", "config.json", "modeling_pointer_distilbert.py", "tokenizer.json", "tokenizer_config.json",
        "train_results.json", "eval_results.json", "predict_results.json", "all_results.json", "trainer_state.json",
        "eval_predictions.json", "eval_nbest_predictions.json", "eval_null_odds.json", "eval_nonnull_predictions.json",
        "predict_predictions.json", "predict_nbest_predictions.json", "predict_null_odds.json",
        "training_curves.png", "no_answer_analysis.png", "README.md", "training_args.json",
    }
    assert expected <= names, f"missing: {sorted(expected - names)}"
    assert not [name for name in names if name.startswith("test_")], "--do_predict files are named predict_*"
    assert not [p for p in trained_output.rglob("*") if p.suffix in {".bin", ".pt", ".pkl", ".pickle"}
                and "checkpoint" not in str(p)], "weights must be saved as safetensors only"
    assert list(trained_output.rglob("events.out.tfevents*")), "TensorBoard event files are the default log"
    config = json.loads((trained_output / "config.json").read_text())
    assert config["model_type"] == "pointer_distilbert"
    assert config["auto_map"]["AutoModelForQuestionAnswering"].startswith("modeling_pointer_distilbert.")
    for png in ("training_curves.png", "no_answer_analysis.png"):
        assert (trained_output / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (trained_output / "README.md").read_text()
    assert "f1" in card.lower() and "trust_remote_code=True" in card
    assert "| null_odds_auc |" in card and "| forced_HasAns_f1 |" in card and "eval_nonnull_predictions.json" in card


def test_eval_metrics_have_official_keys_and_ranges(trained_output):
    metrics = json.loads((trained_output / "eval_results.json").read_text())
    for key in METRIC_KEYS:
        assert f"eval_{key}" in metrics, key
    for key in ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_f1"):
        assert 0.0 <= metrics[f"eval_{key}"] <= 100.0
    assert metrics["eval_total"] == 20 == metrics["eval_HasAns_total"] + metrics["eval_NoAns_total"]
    assert metrics["eval_best_f1"] >= metrics["eval_f1"] - 1e-9
    predictions = json.loads((trained_output / "eval_predictions.json").read_text())
    assert sorted(predictions) == sorted(dev_ids(20))
    all_results = json.loads((trained_output / "all_results.json").read_text())
    assert all_results["eval_f1"] == metrics["eval_f1"] and "train_loss" in all_results


def test_reported_scores_re_score_from_the_written_files(trained_output):
    """The official scoring of the written files gives exactly eval_results.json: predictions and null odds give the
    official keys, the non-null answers and the same null odds give best_* (the search over every threshold)."""
    def written(kind):
        return json.loads((trained_output / f"eval_{kind}.json").read_text())

    predictions, null_odds, non_null = written("predictions"), written("null_odds"), written("nonnull_predictions")
    document = json.loads(DEV.read_text(encoding="utf-8"))
    references = {qa["id"]: [answer["text"] for answer in qa["answers"]] for article in document["data"]
                  for paragraph in article["paragraphs"] for qa in paragraph["qas"] if qa["id"] in predictions}
    as_predicted = compute_squad_metrics(references, predictions, null_odds)
    every_threshold = compute_squad_metrics(references, non_null, null_odds)
    reported = json.loads((trained_output / "eval_results.json").read_text())
    for key in OFFICIAL_KEYS + ["null_odds_auc"]:
        assert as_predicted[key] == pytest.approx(reported[f"eval_{key}"], abs=1e-9), key
    for key in BEST_KEYS:
        assert every_threshold[key] == pytest.approx(reported[f"eval_{key}"], abs=1e-9), key


def test_log_says_when_spans_are_learned_but_abstention_is_not(caplog):
    with caplog.at_level(logging.WARNING, logger="trainer_qa"):
        trainer_qa._log_hints({"null_odds_auc": 0.51, "forced_HasAns_f1": 51.7}, utils_qa.QASettings())
        trainer_qa._log_hints({"null_odds_auc": 0.81, "forced_HasAns_f1": 70.0}, utils_qa.QASettings())
    (record,) = caplog.records
    assert "AUC 0.51" in record.message and "HasAns F1 51.7" in record.message and "abstain" in record.message


def test_training_logged_loss_and_periodic_evaluation(trained_output):
    state = json.loads((trained_output / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    evaluations = [entry for entry in state["log_history"] if "eval_f1" in entry]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert [entry["step"] for entry in evaluations][:2] == [3, 6]


def test_predict_answers_unlabelled_questions(trained_output):
    predictions = json.loads((trained_output / "predict_predictions.json").read_text())
    assert sorted(predictions) == sorted(dev_ids(15))
    metrics = json.loads((trained_output / "predict_results.json").read_text())
    assert "test_f1" not in metrics and metrics["predict_samples"] == 15


def test_predict_on_labelled_questions_names_files_and_metrics_as_hugging_face_does(tmp_path, tiny_model_dir):
    """Files predict_*.json, metric keys test_* (Hugging Face's run_qa.py: trainer.predict's default prefix "test",
    then log_metrics/save_metrics("predict")), n-best entries with Hugging Face's keys."""
    run_qa.main(tiny_run_args(tiny_model_dir, tmp_path, "--do_predict", "--test_file", str(DEV),
                              "--max_predict_samples", "10", "--version_2_with_negative", "true", "--report_to",
                              "none"))
    metrics = json.loads((tmp_path / "predict_results.json").read_text())
    assert metrics["predict_samples"] == 10 and metrics["test_total"] == 10
    assert {f"test_{key}" for key in OFFICIAL_KEYS + BEST_KEYS} <= metrics.keys()
    assert not [key for key in metrics if key.startswith("predict_") and key != "predict_samples"]
    predictions = json.loads((tmp_path / "predict_predictions.json").read_text())
    null_odds = json.loads((tmp_path / "predict_null_odds.json").read_text())
    assert sorted(predictions) == sorted(null_odds) == sorted(dev_ids(10))
    nbest = json.loads((tmp_path / "predict_nbest_predictions.json").read_text())
    for entries in nbest.values():
        for entry in entries:
            assert {"text", "probability", "score", "start_logit", "end_logit"} <= entry.keys()
            assert entry["score"] == entry["start_logit"] + entry["end_logit"]


def test_evaluation_answers_do_not_depend_on_the_training_order(tmp_path, tiny_model_dir):
    """Length-grouped training must not reorder evaluation windows: logits are matched to features by position."""
    answers = {}
    for strategy in ("group_by_length", "random"):
        output_dir = tmp_path / strategy
        run_qa.main(tiny_run_args(tiny_model_dir, output_dir, "--do_eval", "--train_sampling_strategy", strategy,
                                  "--per_device_eval_batch_size", "4", "--report_to", "none"))
        answers[strategy] = json.loads((output_dir / "eval_null_odds.json").read_text())
    assert answers["group_by_length"].keys() == answers["random"].keys()
    for question_id, odds in answers["random"].items():
        assert answers["group_by_length"][question_id] == pytest.approx(odds, abs=1e-4), question_id


def test_optimizer_groups_hold_every_trainable_parameter_once_split_by_weight_decay(tmp_path, tiny_model_dir):
    _, _, training_args = run_qa.parse_arguments(tiny_run_args(
        tiny_model_dir, tmp_path, "--weight_decay", "0.01", "--report_to", "none"))
    model = PointerDistilBertForQuestionAnswering.from_pretrained(tiny_model_dir)
    model.distilbert.embeddings.word_embeddings.weight.requires_grad_(False)
    optimizer = QuestionAnsweringTrainer(model=model, args=training_args).create_optimizer()
    grouped = [id(p) for group in optimizer.param_groups for p in group["params"]]
    trainable = {id(p): name for name, p in model.named_parameters() if p.requires_grad}
    assert sorted(grouped) == sorted(trainable), "each trainable parameter in exactly one group, nothing frozen"
    decay_of = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    for parameter_id, name in trainable.items():
        if name.endswith("bias") or "layernorm" in name.replace("_", "").lower():
            assert decay_of[parameter_id] == 0.0, name
        elif name.endswith("lin1.weight") or name.endswith("key_proj.weight"):
            assert decay_of[parameter_id] == 0.01, name
    assert {group["lr"] for group in optimizer.param_groups} == {1e-3}


def test_layerwise_learning_rate_decay_shrinks_each_lower_encoder_layers_rate(tmp_path, tiny_model_dir):
    _, _, training_args = run_qa.parse_arguments(tiny_run_args(
        tiny_model_dir, tmp_path, "--layerwise_learning_rate_decay", "0.5", "--report_to", "none"))
    model = PointerDistilBertForQuestionAnswering.from_pretrained(tiny_model_dir, answer_verifier=True)
    optimizer = QuestionAnsweringTrainer(model=model, args=training_args).create_optimizer()
    learning_rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert model.config.n_layers == 2
    expected = {"distilbert.embeddings": 1e-3 / 8, "distilbert.transformer.layer.0": 1e-3 / 4,
                "distilbert.transformer.layer.1": 1e-3 / 2, "qa_outputs": 1e-3, "verifier": 1e-3}
    for name, parameter in model.named_parameters():
        part = next(prefix for prefix in expected if name.startswith(prefix + "."))
        assert learning_rate_of[id(parameter)] == pytest.approx(expected[part]), name


@pytest.mark.parametrize("value", ["0", "1.5"])
def test_layerwise_learning_rate_decay_outside_0_to_1_is_refused(tmp_path, tiny_model_dir, value):
    with pytest.raises(ValueError, match="--layerwise_learning_rate_decay must be above 0 and at most 1"):
        run_qa.parse_arguments(tiny_run_args(tiny_model_dir, tmp_path, "--layerwise_learning_rate_decay", value))


def test_optim_args_reach_adafactor_and_give_it_a_first_moment(tmp_path, tiny_model_dir):
    """The stock Trainer drops --optim_args for Adafactor; the recipe's must not, with or without split groups."""
    model = PointerDistilBertForQuestionAnswering.from_pretrained(tiny_model_dir)
    moments = {}
    for optim_args in (None, "beta1=0.9, clip_threshold=2"):
        flags = ["--layerwise_learning_rate_decay", "0.5", "--report_to", "none"]
        _, _, training_args = run_qa.parse_arguments(tiny_run_args(
            tiny_model_dir, tmp_path, *flags, *(["--optim_args", optim_args] if optim_args else [])))
        optimizer = QuestionAnsweringTrainer(model=model, args=training_args).create_optimizer()
        assert len(optimizer.param_groups) > 1
        settings = {(group["beta1"], group["clip_threshold"]) for group in optimizer.param_groups}
        assert settings == ({(0.9, 2.0)} if optim_args else {(None, 1.0)})
        for parameter in model.parameters():
            parameter.grad = torch.ones_like(parameter)
        optimizer.step()
        moments[optim_args] = all("exp_avg" in state for state in optimizer.state.values())
    assert moments == {None: False, "beta1=0.9, clip_threshold=2": True}


@pytest.mark.parametrize("optim_args, message", [("momentum=0.9", "not 'momentum'"), ("beta1=high", "a number")])
def test_optim_args_adafactor_lacks_are_refused_naming_the_flag(tmp_path, tiny_model_dir, optim_args, message):
    with pytest.raises(ValueError, match=f"--optim_args.*{message}"):
        run_qa.parse_arguments(tiny_run_args(tiny_model_dir, tmp_path, "--optim_args", optim_args))


def test_explicit_version_flag_that_contradicts_data_is_refused(tmp_path, tiny_model_dir):
    with pytest.raises(ValueError, match="contradicts the data"):
        run_qa.main(tiny_run_args(tiny_model_dir, tmp_path / "o", "--do_eval", "--version_2_with_negative", "false"))


def argument_file_values(argv: list[str]) -> dict:
    """Return the `--flag value` pairs of `argv` as an argument file holds them (a lone last flag is left out)."""
    return {flag.lstrip("-"): json_value(value) for flag, value in zip(argv[::2], argv[1::2])}


def test_argument_file_gives_same_arguments_as_command_line(tmp_path, tiny_model_dir):
    argv = tiny_run_args(tiny_model_dir, tmp_path / "o", "--do_eval")
    as_json = {"do_eval": True, **argument_file_values(argv)}
    (tmp_path / "args.json").write_text(json.dumps(as_json))
    from_file = run_qa.parse_arguments([str(tmp_path / "args.json")])
    from_cli = run_qa.parse_arguments(argv)
    assert from_file[:2] == from_cli[:2]
    assert from_file[2].to_dict() == from_cli[2].to_dict()


def test_flags_after_an_argument_file_win_over_it_even_at_their_default_values(tmp_path, tiny_model_dir):
    argv = tiny_run_args(tiny_model_dir, tmp_path / "o", "--do_eval")
    as_json = {"do_eval": True, **argument_file_values(argv)}
    as_json.update(bf16=True, learning_rate=3e-4, seed=7)
    (tmp_path / "args.json").write_text(json.dumps(as_json))
    overrides = ["--bf16", "false", "--learning_rate", "1e-4", "--output_dir", str(tmp_path / "mine")]
    _, data_args, training_args = run_qa.parse_arguments([str(tmp_path / "args.json"), *overrides])
    assert (training_args.bf16, training_args.learning_rate, training_args.output_dir) == (
        False, 1e-4, str(tmp_path / "mine"))
    assert (training_args.seed, training_args.use_cpu, training_args.do_eval) == (7, True, True)
    assert data_args.validation_file == as_json["validation_file"]
    merged = {**as_json, "bf16": False, "learning_rate": 1e-4, "output_dir": str(tmp_path / "mine")}
    (tmp_path / "merged.json").write_text(json.dumps(merged))
    assert run_qa.parse_arguments([str(tmp_path / "merged.json")])[2].to_dict() == training_args.to_dict()


def test_an_argument_file_may_leave_required_flags_to_the_command_line(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"do_eval": True, "validation_file": str(DEV)}))
    model_args, data_args, _ = run_qa.parse_arguments([str(tmp_path / "run.json"), "--model_name_or_path", "m"])
    assert (model_args.model_name_or_path, data_args.validation_file) == ("m", str(DEV))
    with pytest.raises(UserError, match=r"run.json: .*model_name_or_path"):
        run_qa.parse_arguments([str(tmp_path / "run.json"), "--max_seq_length", "128"])


RECIPE_FILES = sorted(path.name for path in (ROOT / "configs").glob("*.json"))


@pytest.mark.parametrize("name", RECIPE_FILES)
def test_recipe_argument_files_set_exactly_what_they_say(tmp_path, name):
    values = json.loads((ROOT / "configs" / name).read_text())
    runnable_here = {**values, "use_cpu": True}  # the GPU file's bf16 is refused on a machine without a GPU
    (tmp_path / name).write_text(json.dumps(runnable_here))
    groups = run_qa.parse_arguments([str(tmp_path / name)])
    parsed = {key: getattr(group, key) for group in groups for key in runnable_here if hasattr(group, key)}
    assert parsed == runnable_here


def test_recipe_defaults(tmp_path):
    model_args, data_args, training_args = run_qa.parse_arguments(
        ["--model_name_or_path", "m", "--dataset_name", "squad_v2", "--output_dir", str(tmp_path)]
    )
    assert training_args.optim == "adafactor"
    settings = run_qa.resolve_qa_settings(data_args, None, version_2=True, training=True)
    assert (settings.max_seq_length, settings.doc_stride, settings.max_query_length, settings.max_answer_length,
            settings.n_best_size) == (384, 128, 64, 30, 20)
    assert (data_args.calibration_fraction, settings.null_score_diff_threshold) == (0.05, 0.0)
    assert data_args.pad_to_max_length is False and data_args.version_2_with_negative is None
    assert training_args.metric_for_best_model == "f1"
    assert training_args.train_sampling_strategy == "group_by_length"
    assert (model_args.qa_head, model_args.answer_verifier, model_args.verifier_standardization) == (
        "pointer", True, True)
    assert (model_args.null_span_loss_weight, model_args.dropout) == (1.0, None)


def test_the_command_line_and_the_config_class_default_every_shared_setting_alike():
    """Every setting the config class adds to DistilBERT's and the command line also has, defaults alike (dropout,
    DistilBERT's own, defaults to the checkpoint's on the command line)."""
    config = PointerDistilBertConfig()
    model_args, _, _ = run_qa.parse_arguments(["--model_name_or_path", "m", "--output_dir", "o"])
    own = set(inspect.signature(PointerDistilBertConfig.__init__).parameters) - {"self", "kwargs"}
    shared = [field.name for field in dataclasses.fields(run_qa.ModelArguments) if field.name in own]
    assert {"qa_head", "answer_verifier", "verifier_standardization", "null_span_loss_weight",
            "answer_similarity"} <= set(shared)
    for name in shared:
        assert getattr(model_args, name) == getattr(config, name), name


def save_tiny_distilbert(folder, **settings) -> None:
    """Saves a tiny random plain DistilBERT checkpoint (no QA head) into `folder`."""
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    sizes = {"vocab_size": 99, "dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 37}
    encoder = DistilBertConfig(**{**sizes, **settings})
    DistilBertForMaskedLM(encoder).save_pretrained(folder)


def _model_with(folder, *flags) -> tuple:
    """Return build_model's arguments for the checkpoint in `folder` and `flags`."""
    model_args, _, _ = run_qa.parse_arguments(["--model_name_or_path", str(folder), *flags])
    return model_args, run_qa.load_base_config(model_args)


@pytest.mark.parametrize("standardization", [True, False])
def test_new_models_get_the_verifier_with_standardised_features_unless_told_otherwise(tmp_path, standardization):
    save_tiny_distilbert(tmp_path)
    flags = [] if standardization else ["--verifier_standardization", "false"]
    model = run_qa.build_model(*_model_with(tmp_path, *flags))
    assert model.config.answer_verifier and model.config.verifier_standardization == standardization
    assert isinstance(model.verifier.standardize, torch.nn.BatchNorm1d) == standardization


@pytest.mark.parametrize("flags, expected", [([], 0.3), (["--dropout", "0.1"], 0.1)], ids=["default", "flag"])
def test_dropout_flag_replaces_every_dropout_of_encoder_and_head_and_defaults_to_the_checkpoints(
        tmp_path, flags, expected):
    save_tiny_distilbert(tmp_path, dropout=0.3, attention_dropout=0.3, qa_dropout=0.3)
    model = run_qa.build_model(*_model_with(tmp_path, *flags))
    assert (model.config.dropout, model.config.attention_dropout, model.config.qa_dropout) == (expected,) * 3
    rates = {module.p for module in model.modules() if isinstance(module, torch.nn.Dropout)}
    assert rates == {expected}


def test_null_span_loss_weight_is_the_runs_for_new_and_continued_models(tmp_path):
    save_tiny_distilbert(tmp_path / "plain")
    model = run_qa.build_model(*_model_with(tmp_path / "plain", "--null_span_loss_weight", "0.5"))
    assert model.config.null_span_loss_weight == 0.5
    model.save_pretrained(tmp_path / "pointer")
    continued = run_qa.build_model(*_model_with(tmp_path / "pointer"))
    assert continued.config.null_span_loss_weight == 1.0  # the flag's default, not the saved 0.5


def test_contradictory_data_arguments_are_refused():
    with pytest.raises(ValueError, match="doc_stride"):
        run_qa.DataTrainingArguments(dataset_name="squad_v2", max_seq_length=128, doc_stride=128)
    with pytest.raises(UserError, match="--doc_stride .128. must be below --max_seq_length"):
        run_qa.parse_arguments(["--model_name_or_path", "m", "--max_seq_length", "128", "--doc_stride", "128"])


def test_headline_command_trains_and_evaluates_on_squad_v2_into_a_named_folder(monkeypatch):
    no_gpu = utils_qa.DeviceCapabilities(cuda=False, cuda_bf16=False)
    monkeypatch.setattr(utils_qa.DeviceCapabilities, "detect", classmethod(lambda cls: no_gpu))
    model_args, data_args, training_args = run_qa.parse_arguments(["--model_name_or_path", "distilbert-base-uncased"])
    assert data_args.dataset_name == "squad_v2" and data_args.train_file is None
    assert (training_args.do_train, training_args.do_eval, training_args.do_predict) == (True, True, False)
    assert training_args.output_dir == "out/distilbert-base-uncased-squad_v2"
    assert run_qa.run_plan(model_args, data_args, training_args) == (
        "train and evaluate: distilbert-base-uncased on Hub dataset squad_v2; "
        "outputs in out/distilbert-base-uncased-squad_v2; precision float32 (CPU run; --bf16 true speeds it up on "
        "CPUs with AVX512-BF16 or AMX)")


def test_explicit_flags_keep_hugging_face_meaning(tmp_path):
    _, data_args, training_args = run_qa.parse_arguments(
        ["--model_name_or_path", "build/minilm-distilbert/", "--validation_file", str(DEV), "--do_eval"])
    assert data_args.dataset_name is None and (training_args.do_train, training_args.do_eval) == (False, True)
    assert training_args.output_dir == "out/minilm-distilbert-sample_dev"
    _, data_args, training_args = run_qa.parse_arguments(
        ["--model_name_or_path", "m", "--dataset_name", "rajpurkar/squad", "--do_predict", "--output_dir", "o"])
    assert (training_args.do_train, training_args.do_eval, training_args.do_predict) == (False, False, True)
    assert training_args.output_dir == "o" and data_args.dataset_name == "rajpurkar/squad"
    (tmp_path / "run.yaml").write_text("model_name_or_path: distilbert-base-uncased\n")
    from_file = run_qa.parse_arguments([str(tmp_path / "run.yaml")])
    assert from_file[2].output_dir == "out/distilbert-base-uncased-squad_v2" and from_file[2].do_train


def test_argument_file_mistakes_name_the_file(tmp_path):
    (tmp_path / "run.json").write_text('{"model_name_or_path": "m",\n "max_seq_lenght": 128}')
    with pytest.raises(UserError, match=r"run.json: Some keys are not used .*max_seq_lenght"):
        run_qa.parse_arguments([str(tmp_path / "run.json")])
    (tmp_path / "broken.json").write_text('{"model_name_or_path": "m"\n "do_eval": true}')
    with pytest.raises(UserError, match="broken.json: malformed JSON at line 2, column 2"):
        run_qa.parse_arguments([str(tmp_path / "broken.json")])
    with pytest.raises(UserError, match="missing.yaml: no such argument file"):
        run_qa.parse_arguments([str(tmp_path / "missing.yaml")])


class CrashAfterFirstCheckpoint(Exception):
    pass


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, tiny_model_dir, monkeypatch):
    from transformers import TrainerCallback

    schedule = ("--do_train", "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3",
                "--report_to", "none")
    run_qa.main(tiny_run_args(tiny_model_dir, tmp_path / "whole", *schedule))

    class Crash(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise CrashAfterFirstCheckpoint(state.global_step)

    original_build = run_qa.build_trainer

    def build_crashing_trainer(*args, **kwargs):
        trainer = original_build(*args, **kwargs)
        trainer.add_callback(Crash())
        return trainer

    monkeypatch.setattr(run_qa, "build_trainer", build_crashing_trainer)
    with pytest.raises(CrashAfterFirstCheckpoint):
        run_qa.main(tiny_run_args(tiny_model_dir, tmp_path / "broken", *schedule))
    monkeypatch.setattr(run_qa, "build_trainer", original_build)
    assert not (tmp_path / "broken" / "model.safetensors").exists()
    checkpoint = tmp_path / "broken" / "checkpoint-3"
    run_qa.main(tiny_run_args(tiny_model_dir, tmp_path / "broken", *schedule, "--resume_from_checkpoint",
                              str(checkpoint)))

    whole = load_file(tmp_path / "whole" / "model.safetensors")
    resumed = load_file(tmp_path / "broken" / "model.safetensors")
    assert whole.keys() == resumed.keys()
    start = load_file(tiny_model_dir / "model.safetensors")
    assert any(not np.allclose(whole[k], start[k]) for k in whole), "training must have changed the weights"
    for name in whole:
        np.testing.assert_allclose(resumed[name], whole[name], atol=1e-5, err_msg=name)


@pytest.mark.parametrize("has_end", [True, False])
def test_a_run_ends_its_trackers_and_process_group_on_every_supported_transformers(has_end):
    """`Trainer.end` arrived in transformers 5.18; requirements.txt allows 5.17, where the accelerator ends the run."""
    calls = []

    class Accelerator:
        def end_training(self):
            calls.append("accelerator")

    class Trainer:
        accelerator = Accelerator()

    if has_end:
        Trainer.end = lambda self: calls.append("trainer")
    run_qa.end_run(Trainer())
    assert calls == (["trainer"] if has_end else ["accelerator"])


def test_data_parallel_run_matches_single_process_evaluation(tmp_path, tiny_model_dir):
    """Two CPU processes under accelerate's torch.distributed launcher (gloo), as on a two-GPU machine.

    accelerate spawns several CPU processes only through `--multi_gpu` (its `--cpu` launcher starts one process
    unless an MPI host file is given); `--use_cpu true` then makes the Trainer use gloo on the CPU.
    """
    ddp_output = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
        str(ROOT / "run_qa.py"),
        *tiny_run_args(tiny_model_dir, ddp_output, "--do_train", "--do_eval", "--max_steps", "3",
                       "--save_strategy", "no", "--report_to", "none", "--log_level", "info"),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "Total train batch size (w. parallel, distributed & accumulation) = 16" in finished.stdout + finished.stderr
    ddp_metrics = json.loads((ddp_output / "eval_results.json").read_text())
    predictions = json.loads((ddp_output / "eval_predictions.json").read_text())
    assert sorted(predictions) == sorted(dev_ids(20)), "every example answered exactly once"
    assert len(list(ddp_output.glob("*_predictions.json"))) == 3  # eval predictions, n-best and non-null, one set

    single_output = tmp_path / "single"
    run_qa.main(tiny_run_args(ddp_output, single_output, "--do_eval", "--report_to", "none"))
    single_metrics = json.loads((single_output / "eval_results.json").read_text())
    for key in METRIC_KEYS:
        assert ddp_metrics[f"eval_{key}"] == pytest.approx(single_metrics[f"eval_{key}"], abs=1e-6), key
    shutil.rmtree(ddp_output)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_bf16_instructions_is_warned_about(tmp_path, caplog, native):
    flags = {"avx2", "avx512f", *(["avx512_bf16"] if native else [])}
    _, _, training_args = run_qa.parse_arguments(
        ["--model_name_or_path", "m", "--output_dir", str(tmp_path), "--use_cpu", "--bf16"])
    with caplog.at_level(logging.WARNING, logger="run_qa"):
        run_qa.warn_about_slow_bf16(training_args, flags)
    assert ("pass --bf16 false" in caplog.text) is not native


@pytest.mark.parametrize("flags, expected", [([], False), (["--answer_similarity", "true"], True)],
                         ids=["default", "asked-for"])
def test_the_matcher_is_a_frozen_copy_of_the_starting_encoder_when_asked_for(tmp_path, tokenizer, flags, expected):
    save_tiny_distilbert(tmp_path, vocab_size=tokenizer.vocab_size)
    tokenizer.save_pretrained(tmp_path)
    model = run_qa.build_model(*_model_with(tmp_path, *flags))
    assert (model.sentence_matcher is not None) == expected == model.config.answer_similarity
    if expected:
        start, matcher = model.distilbert.state_dict(), model.sentence_matcher.encoder.state_dict()
        assert matcher.keys() == start.keys() and all(torch.equal(matcher[name], start[name]) for name in start)
        assert model.config.sentence_token_ids == {"cls": 101, "sep": 102, "sentence_ends": [1012, 1029, 999]}
