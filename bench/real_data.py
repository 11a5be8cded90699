"""Real-data check: fine-tune on some articles of a SQuAD 2.0 file, evaluate on the held-out rest, per answer head.

    python bench/real_data.py --data ../shared/data/squad_v2_sample_train.json --holdout-articles 3

Each run is `python run_qa.py ARGS.json` with the recipe file given by --config plus the split files and the
head; `--extra key=value` overrides any argument of every run (e.g. --extra learning_rate=5e-5 --extra optim=adamw_torch
reproduces the stock recipe). Prints one markdown row per run: scores at the default threshold, best-threshold
scores, and wall time.
"""

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def split_by_article(document: dict, holdout_articles: int) -> tuple[dict, dict]:
    """Return (train, held-out) documents: the last `holdout_articles` articles are held out."""
    articles = document["data"]
    if not 0 < holdout_articles < len(articles):
        raise SystemExit(f"--holdout-articles must be between 1 and {len(articles) - 1}")
    version = document.get("version", "v2.0")
    return ({"version": version, "data": articles[:-holdout_articles]},
            {"version": version, "data": articles[-holdout_articles:]})


def count_questions(document: dict) -> tuple[int, int]:
    """Return (questions, unanswerable questions) of a nested SQuAD document."""
    questions = [qa for article in document["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    return len(questions), sum(1 for qa in questions if not qa["answers"])


def parse_override(text: str) -> tuple[str, object]:
    """Return `key=value` as (key, JSON value or text)."""
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def run_recipe(arguments: dict, folder: Path) -> tuple[dict, float]:
    """Run run_qa.py on `arguments`; return its eval metrics and the wall time in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    arguments_file = folder / "arguments.json"
    arguments_file.write_text(json.dumps(arguments, indent=1))
    started = time.perf_counter()
    with (folder / "log.txt").open("w") as log:
        subprocess.run([sys.executable, str(ROOT / "run_qa.py"), str(arguments_file)], cwd=ROOT, check=True,
                       stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    return json.loads((Path(arguments["output_dir"]) / "eval_results.json").read_text()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/squad_v2_sample_train.json"))
    parser.add_argument("--holdout-articles", type=int, default=3)
    parser.add_argument("--config", default=str(ROOT / "configs/cpu_small.json"), help="recipe argument file")
    parser.add_argument("--heads", nargs="+", default=["pointer", "linear"], choices=["pointer", "linear"])
    parser.add_argument("--extra", action="append", default=[], help="key=value argument override for every run")
    parser.add_argument("--output-dir", default=str(ROOT / "build/real_data"))
    args = parser.parse_args()

    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    train, held_out = split_by_article(json.loads(Path(args.data).read_text(encoding="utf-8")), args.holdout_articles)
    (output / "train.json").write_text(json.dumps(train), encoding="utf-8")
    (output / "heldout.json").write_text(json.dumps(held_out), encoding="utf-8")
    base = json.loads(Path(args.config).read_text())
    overrides = dict(parse_override(text) for text in args.extra)

    (train_n, train_null), (dev_n, dev_null) = count_questions(train), count_questions(held_out)
    print(f"train: {train_n} questions ({train_null} unanswerable); held out: {dev_n} ({dev_null} unanswerable); "
          f"{platform.processor() or platform.machine()}, config {Path(args.config).name}, overrides {overrides}\n")
    print("| head | EM | F1 | HasAns F1 | NoAns F1 | best F1 (threshold) | wall time |")
    print("|---|---|---|---|---|---|---|")
    for head in args.heads:
        run_folder = output / head
        arguments = {**base, "train_file": str(output / "train.json"), "validation_file": str(output / "heldout.json"),
                     "output_dir": str(run_folder / "model"), "qa_head": head, **overrides}
        metrics, seconds = run_recipe(arguments, run_folder)
        scores = [metrics[f"eval_{key}"] for key in ("exact", "f1", "HasAns_f1", "NoAns_f1", "best_f1")]
        cells = " | ".join(f"{score:.1f}" for score in scores)
        print(f"| {head} | {cells} ({metrics['eval_best_f1_thresh']:.2f}) | {seconds / 60:.1f} min |", flush=True)


if __name__ == "__main__":
    main()
