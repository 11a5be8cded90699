"""The recipe learns: a tiny pointer model trained from scratch solves a synthetic SQuAD 2.0 task, and the saved
model answers the same through a fresh process and through the `question-answering` pipeline it carries."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import pipeline

import run_qa
from conftest import save_tiny_pointer_model
from synthetic_squad import make_example, make_squad, make_two_fact_example
from utils_qa import prepare_eval_features

MAX_SEQ_LENGTH = 64
# The evaluation settings of `train_from_scratch`, as the pipeline takes them.
WINDOWS = dict(max_seq_len=MAX_SEQ_LENGTH, doc_stride=24, max_question_len=16)


def write_split(folder: pathlib.Path, make=make_example) -> tuple[pathlib.Path, pathlib.Path]:
    """Write 4,000 training and 300 held-out synthetic questions; return the two files."""
    train, dev = folder / "train.json", folder / "dev.json"
    train.write_text(json.dumps(make_squad(4000, seed=1, make=make)))
    dev.write_text(json.dumps(make_squad(300, seed=2, make=make)))
    return train, dev


def train_from_scratch(folder: pathlib.Path, tokenizer, train: pathlib.Path, dev: pathlib.Path) -> pathlib.Path:
    """Train a 2-layer, 64-wide pointer model with the answer verifier (over unstandardised features) from scratch
    (well under two minutes on two CPU cores); return its output folder."""
    start = save_tiny_pointer_model(folder / "init", tokenizer, dim=64, n_heads=4, hidden_dim=128,
                                    max_position_embeddings=MAX_SEQ_LENGTH, answer_verifier=True,
                                    verifier_standardization=False)
    torch.set_num_threads(2)
    run_qa.main([
        "--model_name_or_path", str(start), "--train_file", str(train), "--validation_file", str(dev),
        "--output_dir", str(folder / "out"), "--do_train", "--do_eval", "--max_seq_length", str(MAX_SEQ_LENGTH),
        "--doc_stride", "24", "--max_query_length", "16", "--per_device_train_batch_size", "32",
        "--num_train_epochs", "6", "--learning_rate", "1e-3", "--warmup_steps", "0.05", "--seed", "0",
        "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true",
    ])
    return folder / "out"


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    return write_split(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def learned_output(tmp_path_factory, tokenizer, synthetic_files) -> pathlib.Path:
    return train_from_scratch(tmp_path_factory.mktemp("learned"), tokenizer, *synthetic_files)


def dev_questions(dev: pathlib.Path) -> list[dict]:
    document = json.loads(dev.read_text())
    return [dict(qa, context=paragraph["context"]) for article in document["data"]
            for paragraph in article["paragraphs"] for qa in paragraph["qas"]]


def test_tiny_pointer_model_reaches_f1_90_on_held_out_synthetic_questions(learned_output):
    metrics = json.loads((learned_output / "eval_results.json").read_text())
    assert metrics["eval_f1"] >= 90.0, metrics
    assert metrics["eval_HasAns_f1"] >= 80.0 and metrics["eval_NoAns_f1"] >= 80.0, metrics


def test_abstention_is_learned_where_only_the_content_decides(tmp_path, tokenizer):
    """Contexts of one shape, questions of one form: the null odds must come from reading the context."""
    output = train_from_scratch(tmp_path, tokenizer, *write_split(tmp_path, make=make_two_fact_example))
    metrics = json.loads((output / "eval_results.json").read_text())
    assert metrics["eval_null_odds_auc"] >= 0.95, metrics
    assert metrics["eval_HasAns_f1"] >= 85.0 and metrics["eval_NoAns_f1"] >= 85.0, metrics


def test_fresh_process_loads_saved_model_with_remote_code_and_gives_same_logits(learned_output, tmp_path, tokenizer):
    from transformers import AutoModelForQuestionAnswering

    encoded = tokenizer("where does anna live?", "anna lives in paris. boris owns a dog.", return_tensors="pt")
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    torch.save(inputs, tmp_path / "inputs.pt")
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForQuestionAnswering\n"
        "assert not any('modeling_pointer_distilbert' in name for name in sys.modules)\n"
        f"model = AutoModelForQuestionAnswering.from_pretrained({str(learned_output)!r}, trust_remote_code=True)\n"
        "model.eval()\n"
        "inputs = torch.load('inputs.pt')\n"
        "with torch.no_grad():\n"
        "    out = model(**inputs)\n"
        "torch.save((out.start_logits, out.end_logits, type(model).__name__), 'logits.pt')\n"
    )
    finished = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                              env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf")},
                              timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    start, end, class_name = torch.load(tmp_path / "logits.pt")
    assert class_name == "PointerDistilBertForQuestionAnswering"
    model = AutoModelForQuestionAnswering.from_pretrained(learned_output).eval()
    with torch.no_grad():
        expected = model(**inputs)
    torch.testing.assert_close(start, expected.start_logits)
    torch.testing.assert_close(end, expected.end_logits)


def test_pipeline_gives_evaluation_answers_spans_and_no_answers(learned_output, synthetic_files):
    questions = dev_questions(synthetic_files[1])
    qa = pipeline("question-answering", model=str(learned_output), trust_remote_code=True)
    answers = qa([{"question": q["question"], "context": q["context"]} for q in questions],
                 handle_impossible_answer=True, max_answer_len=30, batch_size=1, **WINDOWS)
    evaluation = json.loads((learned_output / "eval_predictions.json").read_text())
    assert [a["answer"] for a in answers] == [evaluation[q["id"]] for q in questions]
    batched = qa(question=[q["question"] for q in questions], context=[q["context"] for q in questions],
                 handle_impossible_answer=True, max_answer_len=30, batch_size=64, **WINDOWS)
    assert [(a["answer"], a["start"], a["end"]) for a in batched] == [(a["answer"], a["start"], a["end"])
                                                                      for a in answers]
    for question, answer in zip(questions, answers):
        if answer["answer"]:
            assert question["context"][answer["start"]:answer["end"]] == answer["answer"]
        assert 0.0 <= answer["score"] <= 1.0
    unanswerable = [a["answer"] for q, a in zip(questions, answers) if q["is_impossible"]]
    assert unanswerable.count("") >= 0.8 * len(unanswerable)
    answered = [a["answer"] == q["answers"][0]["text"] for q, a in zip(questions, answers) if not q["is_impossible"]]
    assert sum(answered) >= 0.8 * len(answered)


def test_pipeline_reads_long_contexts_through_windows(learned_output, tokenizer):
    """The answer sits in the last of several windows; the top-k answers are distinct spans, best first."""
    filler = " ".join(["hugo owns a dog.", "hugo works as a nurse.", "hugo loves eating soup."] * 3)
    context = filler + " hugo lives in oslo."
    windows = dict(max_seq_len=32, doc_stride=8, max_question_len=16)
    features = prepare_eval_features({"id": ["q"], "question": ["where does hugo live?"], "context": [context]},
                                     tokenizer, max_seq_length=32, doc_stride=8, max_query_length=16)
    assert len(features["input_ids"]) >= 3
    qa = pipeline("question-answering", model=str(learned_output), trust_remote_code=True)
    answer = qa(question="where does hugo live?", context=context, **windows)
    assert answer["answer"] == "oslo"
    assert context[answer["start"]:answer["end"]] == "oslo"
    top = qa(question="where does hugo live?", context=context, top_k=3, **windows)
    assert len(top) == 3 and top[0] == answer
    assert len({(a["start"], a["end"]) for a in top}) == 3
    assert top[0]["score"] >= top[1]["score"] >= top[2]["score"]


def test_a_model_with_its_evaluation_settings_answers_as_evaluation_without_arguments(learned_output, synthetic_files,
                                                                                      tmp_path):
    """`qa_settings` in config.json (the run's windows, answer length and threshold) are the pipeline's defaults."""
    shutil.copytree(learned_output, tmp_path / "model")
    config_file = tmp_path / "model" / "config.json"
    config = json.loads(config_file.read_text())
    config["qa_settings"] = {"max_seq_length": MAX_SEQ_LENGTH, "doc_stride": 24, "max_query_length": 16,
                             "max_answer_length": 30, "n_best_size": 20, "version_2_with_negative": True,
                             "null_score_diff_threshold": 0.0, "null_score_diff_threshold_source": "default"}
    config_file.write_text(json.dumps(config))
    questions = dev_questions(synthetic_files[1])
    qa = pipeline(model=str(tmp_path / "model"), trust_remote_code=True)
    answers = qa(question=[q["question"] for q in questions], context=[q["context"] for q in questions])
    evaluation = json.loads((learned_output / "eval_predictions.json").read_text())
    assert [a["answer"] for a in answers] == [evaluation[q["id"]] for q in questions]
    assert sum(a["answer"] == "" for a in answers) > 50, "no answer comes from the model's settings, not an argument"
