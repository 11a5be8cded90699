"""The speed bench builds its runs with run_qa.py's own steps, and both of its paths give the same answers."""

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_speed  # noqa: E402


@pytest.fixture
def bench_arguments() -> argparse.Namespace:
    return argparse.Namespace(device="cpu", bf16=False, torch_compile=False, attn_implementation=None, seed=0,
                              batch_size=4, eval_batch_size=4)


def test_classic_and_recipe_evaluations_answer_alike(tiny_model_dir, tmp_path, bench_arguments, monkeypatch):
    # the bench's switch-offs are process-wide; other tests read the recipe's warnings
    monkeypatch.setattr(bench_speed, "quiet_libraries", lambda: None)
    questions, total = bench_speed.write_question_sample(ROOT / "data/squad_v2_real_sample.json", 12, 0, tmp_path)
    runs = {}
    for path in bench_speed.EVALUATION_PATHS:
        argv = bench_speed.recipe_argv(tiny_model_dir, tmp_path / path, bench_arguments, "--do_eval",
                                       "--validation_file", str(questions))
        runs[path] = bench_speed.evaluation_run(dict(path=path, argv=argv, threads=1, device="cpu",
                                                     eval_batch_size=bench_arguments.eval_batch_size))
    classic, recipe = runs["classic"], runs["recipe"]
    assert classic["questions"] == recipe["questions"] == 12 < total
    assert max(classic["widths"]) == 384 > max(recipe["widths"])  # the classic path pads, the recipe's does not
    assert classic["answers"] == recipe["answers"]
    assert classic["null_odds"].keys() == recipe["null_odds"].keys()
    assert max(abs(classic["null_odds"][key] - recipe["null_odds"][key]) for key in classic["null_odds"]) < 1e-4
