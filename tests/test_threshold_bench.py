"""The threshold-rule bench: no target article helps choose its own threshold, and a rule is scored by its gain over
answering nothing."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import threshold_rules  # noqa: E402


def squad_file(path: Path, articles: dict[str, list[tuple[str, bool]]]) -> Path:
    """Write a nested SQuAD file: article title → (question id, answerable) rows; every answer is "x"."""
    data = [{"title": title, "paragraphs": [{"context": "x y", "qas": [
        {"id": q, "question": "q?", "answers": [{"text": "x", "answer_start": 0}] if answerable else []}
        for q, answerable in rows]}]} for title, rows in articles.items()]
    path.write_text(json.dumps({"version": "v2.0", "data": data}))
    return path


@pytest.fixture
def finished_run(tmp_path) -> Path:
    """A finished cross-validation run: calibration article C, held-out articles A and B, with answer files."""
    calibration = {"C": [(f"c{i}", i % 2 == 0) for i in range(6)], "D": [("d0", True)]}
    held_out = {"A": [(f"a{i}", i < 3) for i in range(6)], "B": [(f"b{i}", i >= 3) for i in range(6)]}
    folder = tmp_path / "run" / "variant" / "fold-0" / "seed-42"
    (folder / "model").mkdir(parents=True)
    arguments = {"train_file": str(squad_file(tmp_path / "train.json", calibration)),
                 "validation_file": str(squad_file(tmp_path / "heldout.json", held_out))}
    (folder / "arguments.json").write_text(json.dumps(arguments))
    files = {"calibration": [f"c{i}" for i in range(6)], "eval": [f"{a}{i}" for a in "ab" for i in range(6)]}
    for prefix, ids in files.items():
        (folder / "model" / f"{prefix}_null_odds.json").write_text(json.dumps({q: float(i) for i, q in enumerate(ids)}))
        (folder / "model" / f"{prefix}_nonnull_predictions.json").write_text(json.dumps(dict.fromkeys(ids, "x")))
    return folder


def test_a_target_article_never_helps_choose_its_own_threshold(finished_run, monkeypatch):
    run = threshold_rules.read_run(finished_run)
    assert set(run["targets"]) == {"A", "B"} and sorted(run["calibration"]) == [f"c{i}" for i in range(6)]
    chosen_on = []
    real_choose = threshold_rules.choose
    monkeypatch.setattr(threshold_rules, "choose", lambda run, ids, errors: chosen_on.append(set(ids))
                        or real_choose(run, ids, errors))
    scored = threshold_rules.score_rules(run)
    assert len(scored) == 2 and all(set(target) == set(threshold_rules.RULES) for target in scored)
    targets = list(run["targets"].values())
    per_target = len(chosen_on) // 2
    for target_ids, choices in zip(targets, (chosen_on[:per_target], chosen_on[per_target:])):
        assert all(not ids & set(target_ids) for ids in choices)
        assert any(ids > set(run["calibration"]) for ids in choices), "two-article rules add the other article"


def test_the_score_is_the_gain_over_answering_nothing(finished_run):
    run = threshold_rules.read_run(finished_run)
    ids = run["targets"]["A"]  # answerable a0-a2 at odds 0-2, unanswerable a3-a5 at odds 3-5
    assert threshold_rules.score_target(run, ids, 2.5) == {"gain": pytest.approx(50.0), "answered": 50.0}
    assert threshold_rules.score_target(run, ids, -1.0) == {"gain": 0.0, "answered": 0.0}
    assert threshold_rules.score_target(run, ids, 10.0)["gain"] == pytest.approx(0.0)  # +3 right, -3 wrong
