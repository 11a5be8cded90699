"""`python utils_qa.py score DATA PREDICTIONS [--null-odds FILE]`: metrics as JSON, one-line errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from utils_qa import DataFormatError, compute_squad_metrics, score_files

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = "Super Bowl 50 was played at Levi's Stadium in Santa Clara, California, by the Denver Broncos."
DATA = {
    "version": "v2.0",
    "data": [
        {
            "title": "Super_Bowl_50",
            "paragraphs": [
                {
                    "context": CONTEXT,
                    "qas": [
                        {"id": "q1", "question": "Who played?", "is_impossible": False,
                         "answers": [{"text": "Denver Broncos", "answer_start": 78},
                                     {"text": "the Denver Broncos", "answer_start": 74}]},
                        {"id": "q2", "question": "Where?", "is_impossible": False,
                         "answers": [{"text": "Santa Clara, California", "answer_start": 46}]},
                        {"id": "q3", "question": "Who sang?", "is_impossible": True, "answers": [],
                         "plausible_answers": [{"text": "Levi's", "answer_start": 28}]},
                        {"id": "q4", "question": "Who lost?", "is_impossible": True, "answers": []},
                    ],
                }
            ],
        }
    ],
}
PREDICTIONS = {"q1": "Denver Broncos", "q2": "Santa Clara", "q3": "", "q4": "Levi's Stadium"}
NULL_ODDS = {"q1": -2.0, "q2": -0.5, "q3": 3.0, "q4": 0.25}


def write(path, content):
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def run_score(*args):
    """Run the command in a fresh interpreter, as a user would."""
    environment = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run(
        [sys.executable, str(ROOT / "utils_qa.py"), "score", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, env=environment, timeout=120,
    )


def test_score_prints_the_official_metrics_as_json(tmp_path):
    data = write(tmp_path / "dev.json", DATA)
    finished = run_score(data, write(tmp_path / "predictions.json", PREDICTIONS),
                         "--null-odds", write(tmp_path / "null_odds.json", NULL_ODDS))
    assert finished.returncode == 0, finished.stderr
    references = {"q1": ["Denver Broncos", "the Denver Broncos"], "q2": ["Santa Clara, California"], "q3": [], "q4": []}
    assert json.loads(finished.stdout) == pytest.approx(compute_squad_metrics(references, PREDICTIONS, NULL_ODDS))
    assert "Traceback" not in finished.stderr


def test_predictions_missing_ids_exit_with_one_line_naming_the_file_and_ids(tmp_path):
    predictions = write(tmp_path / "predictions.json", {"q1": "Denver Broncos", "q3": ""})
    finished = run_score(write(tmp_path / "dev.json", DATA), predictions)
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(predictions) in lines[0]
    assert "no entry for 2 of 4 questions" in lines[0] and "'q2', 'q4'" in lines[0]
    assert finished.stdout == ""


def test_malformed_input_files_exit_with_one_line_and_no_traceback(tmp_path):
    broken = tmp_path / "predictions.json"
    broken.write_text('{"q1": "Denver",\n "q2" "Santa"}', encoding="utf-8")
    finished = run_score(write(tmp_path / "dev.json", DATA), broken)
    assert finished.returncode == 2 and "Traceback" not in finished.stderr
    assert "malformed JSON at line 2, column 7" in finished.stderr

    bad_data = json.loads(json.dumps(DATA))
    bad_data["data"][0]["paragraphs"][0]["qas"][1]["question"] = ["Where?"]
    finished = run_score(write(tmp_path / "bad.json", bad_data), write(tmp_path / "p.json", PREDICTIONS))
    assert finished.returncode == 2 and "Traceback" not in finished.stderr
    assert "data[0].paragraphs[0].qas[1] (id 'q2'): field 'question' must be a string, got list" in finished.stderr


def test_debug_shows_the_traceback_of_an_input_error(tmp_path, capsys):
    from utils_qa import main

    data = write(tmp_path / "dev.json", DATA)
    assert main(["score", str(data), str(tmp_path / "absent.json")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'absent.json'}: no such file")
    with pytest.raises(DataFormatError, match="no such file"):
        main(["score", str(data), str(tmp_path / "absent.json"), "--debug"])


def test_extra_prediction_ids_are_counted_in_a_warning(tmp_path, caplog):
    predictions = write(tmp_path / "predictions.json", {**PREDICTIONS, "x1": "", "x2": "a"})
    metrics = score_files(write(tmp_path / "dev.json", DATA), predictions)
    assert metrics == pytest.approx(score_files(tmp_path / "dev.json", write(tmp_path / "exact.json", PREDICTIONS)))
    assert "2 ids are not questions of" in caplog.text and "'x1', 'x2'" in caplog.text


def test_squad_v1_data_gets_v1_keys_and_non_numeric_null_odds_are_refused(tmp_path):
    v1 = json.loads(json.dumps(DATA))
    v1["data"][0]["paragraphs"][0]["qas"] = v1["data"][0]["paragraphs"][0]["qas"][:2]
    answers = write(tmp_path / "p.json", {"q1": "Denver Broncos", "q2": "Santa Clara"})
    assert set(score_files(write(tmp_path / "v1.json", v1), answers)) == {"exact_match", "f1"}
    with pytest.raises(DataFormatError, match="id 'q2': value must be a number"):
        score_files(tmp_path / "v1.json", answers, write(tmp_path / "odds.json", {"q1": 0.5, "q2": "high"}))


def test_answers_made_at_a_threshold_above_one_are_scored_as_written_by_default(tmp_path):
    """A calibrated threshold can exceed the official script's 1.0; scoring must not blank what the run answered."""
    answered_at_3_5 = {**PREDICTIONS, "q3": "Levi's"}  # null odds 3.0 <= 3.5: the run answered it
    data = write(tmp_path / "dev.json", DATA)
    predictions = write(tmp_path / "predictions.json", answered_at_3_5)
    odds = write(tmp_path / "null_odds.json", NULL_ODDS)
    finished = run_score(data, predictions, "--null-odds", odds)
    assert finished.returncode == 0, finished.stderr
    as_written = json.loads(finished.stdout)
    assert as_written["NoAns_f1"] == 0.0  # q3 and q4 both answered, as in the file
    assert as_written["f1"] == pytest.approx(score_files(data, predictions)["f1"])
    assert score_files(data, predictions, odds, null_odds_threshold=1.0)["NoAns_f1"] == 50.0
