"""What a run writes is true: the model card of a run that only evaluated, the no-answer figure's threshold and
titles, and the saved tokenizer's configuration."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_run_qa import DEV, tiny_run_args

import run_qa
from report_qa import (
    CardData,
    TrainingRecord,
    how_it_answered,
    model_card,
    no_answer_figure,
    saved_training_record,
)

# Keys that loading a tokenizer, or calling it, leaves in its init arguments; none configures the tokenizer.
LOADING_TIME_KEYS = {"local_files_only", "is_local", "max_length", "stride", "truncation_strategy",
                     "pad_to_multiple_of"}


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory, tiny_model_dir) -> Path:
    """A tiny trained run whose settings all differ from the recipe's defaults (learning rate, batch, seed, steps)."""
    output_dir = tmp_path_factory.mktemp("trained") / "trained"
    run_qa.main(tiny_run_args(tiny_model_dir, output_dir, "--do_train", "--max_steps", "3", "--save_strategy", "no",
                              "--report_to", "none"))
    return output_dir


@pytest.fixture(scope="module")
def evaluation_folder(tmp_path_factory, trained_folder) -> Path:
    """The output folder of a run that only evaluated `trained_folder`."""
    output_dir = tmp_path_factory.mktemp("evaluated") / "evaluated"
    run_qa.main(["--model_name_or_path", str(trained_folder), "--validation_file", str(DEV), "--do_eval",
                 "--output_dir", str(output_dir), "--max_eval_samples", "12", "--max_seq_length", "128",
                 "--doc_stride", "48", "--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true"])
    return output_dir


@pytest.fixture(scope="module")
def evaluation_card(evaluation_folder) -> str:
    return (evaluation_folder / "README.md").read_text(encoding="utf-8")


def card_section(card: str, title: str) -> str:
    """Return the text of the card's `## title` section."""
    return card.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_an_evaluation_only_card_lists_the_saved_runs_training_settings(evaluation_card, trained_folder):
    training = card_section(evaluation_card, "Training settings")
    saved = json.loads((trained_folder / "training_args.json").read_text())
    assert saved["learning_rate"] == 1e-3 and saved["seed"] == 0  # what tiny_run_args sets, not the defaults
    assert f"`{trained_folder}`" in training
    for line in ("- learning_rate: 0.001", "- per_device_train_batch_size: 8", "- training_steps: 3", "- seed: 0"):
        assert line in training, training
    assert "0.0001" not in training and "- seed: 42" not in training and "32" not in training


def test_an_evaluation_only_card_does_not_say_the_model_was_fine_tuned_from_the_folder_it_evaluated(
        evaluation_card, trained_folder, tiny_model_dir):
    assert f"fine-tuned from `{trained_folder}`" not in evaluation_card
    assert f"evaluated as saved in `{trained_folder}`, fine-tuned from `{tiny_model_dir}`" in evaluation_card
    assert "trained nothing" in evaluation_card
    assert f'model="{trained_folder}"' in card_section(evaluation_card, "How to use"), "where the weights are"


def test_a_run_that_only_evaluated_draws_no_training_curves_but_its_no_answer_analysis(evaluation_folder):
    names = {path.name for path in evaluation_folder.iterdir()}
    assert "no_answer_analysis.png" in names and "training_curves.png" not in names


def test_a_model_saved_without_its_run_gets_no_invented_settings(tiny_model_dir):
    record = saved_training_record(str(tiny_model_dir))
    assert (record.arguments, record.evaluated) == (None, str(tiny_model_dir))
    answered = how_it_answered({"null_score_diff_threshold": -2.97, "null_score_diff_threshold_source": "saved"},
                               {"qa_head": "pointer"})
    card = model_card("x", CardData(evaluation="dev"), {"eval_f1": 50.0}, record, answered)
    training = card_section(card, "Training settings")
    assert "holds no record of the run that trained it" in training and "- " not in training
    assert "fine-tuned" not in card
    assert "- null_score_diff_threshold: -2.97" in card_section(card, "Evaluation")


def test_a_training_runs_card_says_what_it_was_fine_tuned_from_and_with():
    arguments = {"optim": "adamw_torch", "learning_rate": 5e-5, "warmup_steps": 0, "per_device_train_batch_size": 4,
                 "gradient_accumulation_steps": 2, "num_train_epochs": 3.0, "seed": 7}
    record = TrainingRecord("base/model", arguments, epochs=1.5, steps=30, total_batch_size=16)
    card = model_card("x", CardData(training="train"), {}, record, {})
    assert "fine-tuned from `base/model` with adamw_torch on train." in card
    training = card_section(card, "Training settings")
    for line in ("- gradient_accumulation_steps: 2", "- total_train_batch_size: 16", "- num_train_epochs: 1.5",
                 "- training_steps: 30", "- seed: 7"):
        assert line in training, training


def figure_and_scores():
    rng = np.random.default_rng(0)
    references = {f"q{i}": ["x"] if i % 2 else [] for i in range(200)}
    null_odds = {question: float(rng.normal(-2.0 if golds else 1.0, 2.0)) for question, golds in references.items()}
    scores = {"null_score_diff_threshold": -2.97, "best_f1_thresh": -1.23, "best_f1": 61.2, "forced_HasAns_f1": 47.5}
    return no_answer_figure(references, null_odds, scores), scores


def test_the_no_answer_figure_draws_the_threshold_the_run_answered_with():
    figure, _ = figure_and_scores()
    histogram_axis = figure.axes[0]
    dashed = [line for line in histogram_axis.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1
    assert list(dashed[0].get_xdata()) == [-2.97, -2.97]
    assert "-2.97" in dashed[0].get_label()


def test_no_title_of_the_no_answer_figure_is_clipped_at_the_default_size():
    figure, _ = figure_and_scores()
    renderer = figure.canvas.get_renderer()
    figure.canvas.draw()
    bounds = figure.bbox
    titles = [axis.title.get_window_extent(renderer) for axis in figure.axes]
    for title in titles:
        assert bounds.x0 <= title.x0 and title.x1 <= bounds.x1 and bounds.y0 <= title.y0 and title.y1 <= bounds.y1
    assert not titles[0].overlaps(titles[1])


def test_the_saved_tokenizer_config_holds_no_loading_time_state(trained_folder):
    saved = json.loads((trained_folder / "tokenizer_config.json").read_text())
    assert not LOADING_TIME_KEYS & saved.keys(), sorted(LOADING_TIME_KEYS & saved.keys())
    assert saved["tokenizer_class"] == "BertTokenizer"
    backend = json.loads((trained_folder / "tokenizer.json").read_text())
    assert backend["truncation"] is None and backend["padding"] is None, "each call sets its own"


def test_the_cards_tokenizer_snippet_loads_without_a_prompt(trained_folder, tokenizer, tmp_path):
    card = (trained_folder / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r'^tokenizer = AutoTokenizer\.from_pretrained\("([^"]+)"(.*)\)$', card, re.MULTILINE)
    assert snippet, "the card shows how to load the tokenizer"
    line = f"tokenizer = AutoTokenizer.from_pretrained({str(trained_folder)!r}{snippet.group(2)})"
    script = f"""from transformers import AutoTokenizer
{line}
print(tokenizer("Who built it?")["input_ids"])"""
    loaded = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "[y/N]" not in loaded.stdout + loaded.stderr and "custom code" not in loaded.stdout + loaded.stderr
    assert loaded.stdout.strip() == str(tokenizer("Who built it?")["input_ids"])
