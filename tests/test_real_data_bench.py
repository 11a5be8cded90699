"""The cross-validation bench's protocol: folds by article, and the statistics it reports."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import real_data  # noqa: E402


def squad_document(n_articles: int) -> dict:
    """Return a SQuAD 2.0 document whose article i has i + 1 questions, the first of them unanswerable."""
    articles = []
    for i in range(n_articles):
        qas = [{"id": f"{i}-{j}", "question": "q?", "answers": [] if j == 0 else [{"text": "c", "answer_start": 0}]}
               for j in range(i + 1)]
        articles.append({"title": f"article {i}", "paragraphs": [{"context": "c", "qas": qas}]})
    return {"version": "v2.0", "data": articles}


def question_ids(document: dict) -> set[str]:
    return {qa["id"] for article in document["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]}


@pytest.mark.parametrize("n_articles, folds", [(10, 5), (10, 3), (7, 7), (16, 2)])
def test_every_article_is_held_out_exactly_once(n_articles, folds):
    dealt = real_data.deal_articles(n_articles, folds)
    assert len(dealt) == folds
    assert sorted(index for fold in dealt for index in fold) == list(range(n_articles))
    assert max(map(len, dealt)) - min(map(len, dealt)) <= 1


def test_dealing_follows_file_order():
    assert real_data.deal_articles(10, 5) == [[0, 5], [1, 6], [2, 7], [3, 8], [4, 9]]


@pytest.mark.parametrize("folds", [1, 11])
def test_folds_outside_the_articles_are_refused(folds):
    with pytest.raises(ValueError, match="--folds must be between 2 and the number of articles"):
        real_data.deal_articles(10, folds)


def test_a_fold_trains_on_no_held_out_article_and_keeps_every_question():
    document = squad_document(10)
    everything = question_ids(document)
    for held_out in real_data.deal_articles(10, 3):
        train, evaluation = real_data.split_fold(document, held_out)
        train_titles = {article["title"] for article in train["data"]}
        held_out_titles = {article["title"] for article in evaluation["data"]}
        assert held_out_titles == {f"article {i}" for i in held_out}
        assert not train_titles & held_out_titles
        assert not question_ids(train) & question_ids(evaluation)
        assert question_ids(train) | question_ids(evaluation) == everything


def test_count_questions_counts_the_unanswerable():
    assert real_data.count_questions(squad_document(4)) == (1 + 2 + 3 + 4, 4)


def test_mean_and_sample_standard_deviation():
    mean, std = real_data.mean_std([1.0, 2.0, 3.0, 6.0])
    assert mean == pytest.approx(3.0)
    assert std == pytest.approx(math.sqrt((4 + 1 + 0 + 9) / 3))
    assert real_data.mean_std([5.0])[0] == 5.0 and math.isnan(real_data.mean_std([5.0])[1])
    assert real_data.format_spread([1.0, 2.0, 3.0, 6.0], 1) == "3.0 ± 2.2"
    assert real_data.format_spread([], 1) == "—"


def test_paired_differences_match_fold_and_seed():
    results = {("base", 0, 42): {"f1": 50.0}, ("base", 0, 43): {"f1": 52.0}, ("base", 1, 42): {"f1": 40.0},
               ("new", 0, 42): {"f1": 53.0}, ("new", 0, 43): {"f1": 53.0}, ("new", 1, 42): {"f1": 46.0},
               ("new", 1, 43): {"f1": 99.0}}  # no baseline run on fold 1, seed 43: left out
    differences = real_data.paired_differences(results, "new", "base", "f1")
    assert sorted(differences) == [1.0, 3.0, 6.0]
    mean, std = real_data.mean_std(differences)
    assert mean == pytest.approx(10 / 3)
    assert std == pytest.approx(math.sqrt(((1 - 10 / 3) ** 2 + (3 - 10 / 3) ** 2 + (6 - 10 / 3) ** 2) / 2))


def test_summary_subtracts_the_no_answer_share_and_prefers_the_shipped_threshold():
    metrics = {"eval_total": 200, "eval_NoAns_total": 98, "eval_f1": 55.0, "eval_forced_HasAns_f1": 60.0,
               "eval_null_odds_auc": 0.7, "eval_best_f1": 57.0, "train_runtime": 120.0}
    summary = real_data.run_summary(metrics, {"null_score_diff_threshold": -1.5})
    assert summary["f1_over_no_answer"] == pytest.approx(6.0)
    assert summary["threshold"] == -1.5 and summary["train_minutes"] == pytest.approx(2.0)
    calibrated = real_data.run_summary({**metrics, "eval_null_score_diff_threshold": 2.0}, {})
    assert calibrated["threshold"] == 2.0
    assert real_data.run_summary(metrics, {})["threshold"] == 0.0


def test_an_argument_file_runs_under_the_protocol(tmp_path):
    config = {"model_name_or_path": "build/minilm-distilbert", "dataset_name": "squad_v2", "output_dir": "out",
              "eval_strategy": "epoch", "save_strategy": "epoch", "load_best_model_at_end": True, "seed": 1,
              "num_train_epochs": 3, "dropout": 0.1}
    arguments = real_data.run_arguments(config, {}, {"max_train_samples": 64}, tmp_path / "t.json",
                                        tmp_path / "h.json", 43, tmp_path / "model", eval_steps=None)
    assert "load_best_model_at_end" not in arguments and "dataset_name" not in arguments
    assert (arguments["eval_strategy"], arguments["save_strategy"], arguments["use_cpu"]) == ("no", "no", True)
    assert (arguments["seed"], arguments["output_dir"]) == (43, str(tmp_path / "model"))
    assert (arguments["num_train_epochs"], arguments["dropout"], arguments["max_train_samples"]) == (3, 0.1, 64)


def test_writing_the_folds_again_leaves_unchanged_split_files_untouched(tmp_path):
    """A second invocation sharing the output folder must not truncate files that running trainings read."""
    document = squad_document(6)
    first = real_data.write_folds(document, 3, tmp_path)
    stamps = {path: path.stat().st_mtime_ns for fold in first.values() for path in (fold["train"], fold["heldout"])}
    changed = squad_document(6)
    changed["data"][1]["title"] = "renamed"
    second = real_data.write_folds(document, 3, tmp_path)
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
    assert second[0]["questions"] == first[0]["questions"]
    real_data.write_folds(changed, 3, tmp_path)
    assert first[0]["train"].stat().st_mtime_ns != stamps[first[0]["train"]]
