"""A user's mistake on a command line ends in one line naming the file, record, field or id, and exit status 2."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import qa_pipeline
import run_qa
from cli_errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = "The observatory was founded in 1871 by Friedrich Wöhrle."
GOOD = {"id": "q1", "context": CONTEXT, "question": "Who founded it?",
        "answers": {"text": ["Friedrich Wöhrle"], "answer_start": [40]}}


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def bad_training_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Return {case: (training file, what the error line must say)} for the data mistakes users make."""
    without_question = {key: value for key, value in GOOD.items() if key != "question"} | {"id": "q2"}
    past_context = GOOD | {"id": "q2", "answers": {"text": ["1871"], "answer_start": [400]}}
    return {
        "no question": (jsonl(folder / "no_question.jsonl", [GOOD, without_question]),
                        "line 2 (id 'q2'): field 'question' is missing"),
        "duplicate id": (jsonl(folder / "duplicate.jsonl", [GOOD, GOOD]),
                         "line 2 (id 'q1'): field 'id' duplicates the id of line 1"),
        "question not a string": (jsonl(folder / "number.jsonl", [GOOD, GOOD | {"id": "q2", "question": 7}]),
                                  "line 2 (id 'q2'): field 'question' must be a string, got int"),
        "answer_start past the context": (jsonl(folder / "offset.jsonl", [GOOD, past_context]),
                                          "line 2 (id 'q2'): field 'answers[0].answer_start' 400 is outside"),
        "malformed line": (jsonl(folder / "malformed.jsonl", [GOOD, '{"id": "q2", "context" "x"}']),
                           "malformed JSON at line 2, column 24"),
        "missing file": (folder / "absent.json", "no such file"),
    }


def test_bad_input_ends_in_one_line_naming_file_record_and_field(tmp_path, tiny_model_dir):
    """Every case runs `python run_qa.py ...` as its own process (forked after one import, see forked_runs.py)."""
    files = bad_training_files(tmp_path)
    common = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path / "out"), "--use_cpu", "true"]
    cases = {name: {"argv": [*common, "--train_file", str(path), "--do_train"]} for name, (path, _) in files.items()}
    cases["unreachable Hub dataset"] = {"argv": [*common, "--dataset_name", "someone/absent-dataset"]}
    cases["headline command offline"] = {"argv": ["--model_name_or_path", str(tiny_model_dir)]}
    cases["misspelt flag"] = {"argv": [*common, "--max_seq_lenght", "128"]}
    cases["bad flag value"] = {"argv": [*common, "--learning_rate", "fast"]}
    (tmp_path / "run.json").write_text(json.dumps({"model_name_or_path": str(tiny_model_dir)}))
    cases["bad flag after a file"] = {"argv": [str(tmp_path / "run.json"), "--doc_stride"]}
    cases["traceback asked for"] = {"argv": cases["missing file"]["argv"], "env": {"QA_TRACEBACK": "1"}}
    (tmp_path / "cases.json").write_text(json.dumps(list(cases.values())))
    environment = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    environment.pop("QA_TRACEBACK", None)
    finished = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "forked_runs.py"), str(ROOT / "run_qa.py"), str(tmp_path / "cases.json")],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = dict(zip(cases, json.loads(finished.stdout)))

    expected = {name: f"{path}: {what}" for name, (path, what) in files.items()}
    expected["unreachable Hub dataset"] = "could not load dataset 'someone/absent-dataset'"
    expected["headline command offline"] = "could not load dataset 'squad_v2'"
    expected["misspelt flag"] = "unrecognized arguments: --max_seq_lenght 128; `python run_qa.py --help`"
    expected["bad flag value"] = "argument --learning_rate/--learning-rate: invalid float value: 'fast'"
    expected["bad flag after a file"] = "argument --doc_stride/--doc-stride: expected one argument"
    for name, says in expected.items():
        result = results[name]
        lines = result["stderr"].strip().splitlines()
        assert result["status"] == 2, (name, result["stderr"][-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, lines)
        assert says in lines[0], (name, lines[0])
        assert "Traceback" not in result["stderr"] + result["stdout"], name
    assert "--train_file" in results["unreachable Hub dataset"]["stderr"]
    headline = results["headline command offline"]
    assert "make demo" in headline["stderr"]
    first_log_line = headline["stdout"].strip().splitlines()[0]
    model = tiny_model_dir
    assert first_log_line.endswith(f"Run: train and evaluate: {model} on Hub dataset squad_v2; "
                                   f"outputs in out/{model.name}-squad_v2; precision float32 (CPU run; --bf16 true "
                                   "speeds it up on CPUs with AVX512-BF16 or AMX)")
    assert results["traceback asked for"]["status"] == 1
    assert "Traceback" in results["traceback asked for"]["stderr"]


def test_checkpoint_of_another_model_type_is_a_user_error(tmp_path, minilm_dir):
    with pytest.raises(UserError, match="is a 'bert' checkpoint; the recipe builds on DistilBERT.*convert_bert_to"):
        model_args = run_qa.ModelArguments(model_name_or_path=str(minilm_dir))
        run_qa.build_model(model_args, run_qa.load_base_config(model_args))


def test_unreadable_checkpoint_names_the_source_and_what_to_do(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(UserError, match=f"cannot load the tokenizer of '{missing}'.*give a folder that holds it"):
        run_qa.build_tokenizer(run_qa.ModelArguments(model_name_or_path=str(missing)))


def test_slow_only_tokenizer_is_a_user_error(monkeypatch):
    class SlowTokenizer:
        is_fast = False

    monkeypatch.setattr(run_qa.AutoTokenizer, "from_pretrained", lambda *args, **kwargs: SlowTokenizer())
    with pytest.raises(UserError, match="m has no fast tokenizer.*--tokenizer_name"):
        run_qa.build_tokenizer(run_qa.ModelArguments(model_name_or_path="m"))


def test_pipeline_command_reports_a_missing_context_file_and_an_unloadable_model(tmp_path, tiny_model_dir, capsys):
    ask = ["--question", "Who founded it?"]
    assert qa_pipeline.main([str(tiny_model_dir), "--context-file", str(tmp_path / "absent.txt"), *ask]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'absent.txt'}: no such context file; check the path\n"
    assert qa_pipeline.main([str(tiny_model_dir), "--context", "  ", *ask]) == 2
    assert capsys.readouterr().err.startswith("error: the context is empty")
    assert qa_pipeline.main([str(tmp_path / "no-model"), "--context", CONTEXT, *ask]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot load a question-answering model from '{tmp_path}")


def test_under_accelerate_only_the_main_process_prints_the_line_and_the_launch_fails(tmp_path, tiny_model_dir):
    """Both processes find the same bad record; one line is printed, and accelerate's launcher exits non-zero."""
    duplicate = jsonl(tmp_path / "duplicate.jsonl", [GOOD, GOOD])
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
        "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29518",
        str(ROOT / "run_qa.py"), "--model_name_or_path", str(tiny_model_dir), "--train_file", str(duplicate),
        "--do_train", "--output_dir", str(tmp_path / "out"), "--use_cpu", "true",
    ]
    environment = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    environment.pop("QA_TRACEBACK", None)
    finished = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode != 0
    error_lines = [line for line in finished.stderr.splitlines() if line.startswith("error: ")]
    assert error_lines == [f"error: {duplicate}: line 2 (id 'q1'): field 'id' duplicates the id of line 1 (id 'q1'); "
                           "ids must be unique, rename one"]
    assert re.search(r"exitcode\s*:\s*2\b", finished.stderr), "the launcher reports the processes' status 2"
