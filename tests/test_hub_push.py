"""`--push_to_hub` offline: huggingface_hub's create-repo, upload and delete calls land in a folder standing in for
the Hub, so the test sees exactly what a push would leave in the repository, and what a plain install gets from it."""

import json
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard, RepoUrl
from huggingface_hub.utils import filter_repo_objects
from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS
from test_run_qa import DEV, ROOT, TRAIN, tiny_run_args

import run_qa
from report_qa import CardData, TrainingRecord, model_card

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle"}


class FolderHub:
    """The Hub calls the Trainer makes, answered from `root/<repo id>/` (a repository's files as they would stand)."""

    def __init__(self, root: Path):
        self.root = root

    def create_repo(self, repo_id, *args, **kwargs) -> RepoUrl:
        (self.root / repo_id).mkdir(parents=True, exist_ok=True)
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, path_in_repo=None, allow_patterns=None, ignore_patterns=None,
                      run_as_future=False, **kwargs):
        folder = Path(folder_path)
        files = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
        patterns = [*(ignore_patterns or []), *DEFAULT_IGNORE_PATTERNS]
        for name in filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=patterns):
            if name == "README.md":
                ModelCard((folder / name).read_text(encoding="utf-8"))  # the Hub refuses a card it cannot parse
            target = self.root / repo_id / (path_in_repo or "") / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((folder / name).read_bytes())
        done = Future()
        done.set_result(f"https://huggingface.co/{repo_id}")
        return done if run_as_future else done.result()

    def file_exists(self, repo_id, filename, **kwargs) -> bool:
        return (self.root / repo_id / filename).is_file()

    def delete_file(self, path_in_repo, repo_id, **kwargs) -> None:
        (self.root / repo_id / path_in_repo).unlink()


def forward_to(call):
    """Return an HfApi method that hands its arguments to `call`."""
    return lambda api, *args, **kwargs: call(*args, **kwargs)


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    stand_in = FolderHub(tmp_path / "hub")
    for name in ("create_repo", "upload_folder", "file_exists", "delete_file"):
        monkeypatch.setattr(HfApi, name, forward_to(getattr(stand_in, name)))
    return stand_in.root


def test_push_uploads_model_code_tokenizer_card_figures_and_a_resumable_checkpoint_but_no_pickle(
        tmp_path, tiny_model_dir, hub):
    output_dir = tmp_path / "out"
    run_qa.main(tiny_run_args(
        tiny_model_dir, output_dir, "--do_train", "--do_eval", "--max_steps", "4", "--logging_steps", "2",
        "--save_strategy", "steps", "--save_steps", "2", "--report_to", "none",
        "--push_to_hub", "--hub_model_id", "user/x", "--hub_strategy", "checkpoint",
    ))
    repository = hub / "user" / "x"
    files = {path.relative_to(repository).as_posix() for path in repository.rglob("*") if path.is_file()}
    expected = {"model.safetensors", "config.json", "modeling_pointer_distilbert.py", "tokenizer.json",
                "tokenizer_config.json", "README.md", "training_curves.png", "no_answer_analysis.png",
                "eval_results.json", "eval_predictions.json", "eval_null_odds.json", "training_args.json",
                "pipeline.py", "features.py", "spans.py"}
    assert expected <= files, sorted(expected - files)
    resumable = {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"}
    assert {f"last-checkpoint/{name}" for name in resumable} <= files
    assert not [name for name in files if Path(name).suffix in PICKLE_SUFFIXES and not name.startswith("last-")]
    config = json.loads((repository / "config.json").read_text())
    assert config["auto_map"]["AutoModelForQuestionAnswering"] == (
        "modeling_pointer_distilbert.PointerDistilBertForQuestionAnswering")
    assert config["custom_pipelines"]["question-answering"]["impl"] == "pipeline.PointerQuestionAnsweringPipeline"
    state = json.loads((repository / "last-checkpoint" / "trainer_state.json").read_text())
    assert state["global_step"] == 4

    card_text = (repository / "README.md").read_text(encoding="utf-8")
    card = ModelCard(card_text)
    metrics = json.loads((output_dir / "eval_results.json").read_text())
    results = {result.metric_type: result for result in card.data.eval_results}
    assert results["exact_match"].metric_value == round(metrics["eval_exact"], 2)
    assert results["f1"].metric_value == round(metrics["eval_f1"], 2)
    measured_on = {(result.dataset_type, result.dataset_split) for result in results.values()}
    assert measured_on == {("sample_dev", "validation")}, "the evaluation file, not the training file"
    assert card.data.datasets is None, "local files are not Hub datasets"
    assert "- optimizer: adafactor" in card_text and "- null_score_diff_threshold: 0.0" in card_text
    assert "best_f1_thresh" in card_text
    for local_path in (str(TRAIN), str(DEV), str(ROOT), str(tmp_path)):
        assert local_path not in card_text


def test_card_of_a_squad_v2_run_names_the_hub_dataset_it_was_measured_on():
    data = run_qa.card_data(run_qa.DataTrainingArguments(dataset_name="squad_v2"))
    assert data == CardData(training="squad_v2", evaluation="squad_v2", hub_datasets=("squad_v2",))
    metrics = {"eval_exact": 61.234, "eval_f1": 64.5, "eval_HasAns_total": 5928, "eval_NoAns_total": 5945}
    record = TrainingRecord("distilbert-base-uncased", None, None, None, None)
    card = ModelCard(model_card("user/x", data, metrics, record, {"qa_head": "pointer"}))
    assert card.data.datasets == ["squad_v2"] and card.data.base_model == "distilbert-base-uncased"
    assert [(result.dataset_type, result.metric_type, result.metric_value) for result in card.data.eval_results] == [
        ("squad_v2", "exact_match", 61.23), ("squad_v2", "f1", 64.5)]
    assert card.data.eval_results[0].metric_name == "Exact match (SQuAD 2.0)"

    local = run_qa.card_data(run_qa.DataTrainingArguments(train_file="/data/my/train.jsonl",
                                                          validation_file="/data/my/dev.json"))
    assert local == CardData(training="train", evaluation="dev", hub_datasets=())


# What a plain `pip install torch transformers` lacks: the recipe's modules and its other dependencies.
NOT_INSTALLED = ("datasets", "evaluate", "accelerate", "squad", "utils_qa", "qa_pipeline", "run_qa", "trainer_qa",
                 "report_qa", "modeling_pointer_distilbert")
PLAIN_INSTALL = """
import json, os, sys
assert not any(os.path.exists(os.path.join(entry, "qa_pipeline.py")) for entry in sys.path), sys.path
for name in {not_installed!r}:
    sys.modules[name] = None  # importing it fails, as where it is not installed
from transformers import pipeline

questions = json.load(open("questions.json"))
thresholds = json.load(open("thresholds.json"))
answers = []
for qa in (pipeline("question-answering", model={repository!r}, trust_remote_code=True),
           pipeline(model={repository!r}, trust_remote_code=True)):
    assert type(qa).__module__.startswith("transformers_modules."), type(qa).__module__
    for threshold in thresholds:
        found = qa(question=[q["question"] for q in questions], context=[q["context"] for q in questions],
                   handle_impossible_answer=True, max_seq_len=128, doc_stride=48, max_answer_len=30,
                   align_to_words=False, null_score_diff_threshold=threshold)
        answers.append([answer["answer"] for answer in found])
assert all(sys.modules[name] is None for name in {not_installed!r})
json.dump(answers, open("answers.json", "w"))
"""


def test_a_pushed_model_answers_as_its_evaluation_on_a_plain_install(tmp_path, tiny_model_dir, hub):
    """Isolated Python (no repository on the path, the recipe's modules and datasets unimportable), offline: at the
    evaluation's threshold the evaluation's answers, at a median threshold its best spans or "" by its null odds."""
    output_dir = tmp_path / "out"
    run_qa.main(tiny_run_args(tiny_model_dir, output_dir, "--do_train", "--do_eval", "--max_steps", "4",
                              "--save_strategy", "no", "--report_to", "none", "--push_to_hub",
                              "--hub_model_id", "user/x"))
    evaluation, null_odds, best_spans = (json.loads((output_dir / f"eval_{kind}.json").read_text(encoding="utf-8"))
                                         for kind in ("predictions", "null_odds", "nonnull_predictions"))
    document = json.loads(DEV.read_text(encoding="utf-8"))
    questions = [{"id": qa["id"], "question": qa["question"], "context": paragraph["context"]}
                 for article in document["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]
                 if qa["id"] in evaluation]
    assert len(questions) == len(evaluation) == 20
    ranked = sorted(null_odds.values())
    median = (ranked[len(ranked) // 2 - 1] + ranked[len(ranked) // 2]) / 2  # halfway: no question sits on it
    expected = [[evaluation[q["id"]] for q in questions],
                ["" if null_odds[q["id"]] > median else best_spans[q["id"]] for q in questions]]
    assert 0 < expected[1].count("") < len(questions), "both spans and no answers are compared"
    user = tmp_path / "user"
    user.mkdir()
    (user / "questions.json").write_text(json.dumps(questions), encoding="utf-8")
    (user / "thresholds.json").write_text(json.dumps([0.0, median]), encoding="utf-8")
    script = PLAIN_INSTALL.format(not_installed=NOT_INSTALLED, repository=str(hub / "user" / "x"))
    finished = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=user, capture_output=True, text=True, timeout=600,
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin",
             "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"},
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert json.loads((user / "answers.json").read_text(encoding="utf-8")) == expected * 2
