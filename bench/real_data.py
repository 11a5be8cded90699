"""Real-data learning curves: fine-tune from the packaged MiniLM on some articles of a SQuAD 2.0 file, evaluate on
the held-out rest every `--eval-steps`, one run per recipe variant.

    make build/minilm-distilbert
    python bench/real_data.py --variants stock pointer verifier

Each run is `python run_qa.py ARGS.json`: the `--config` argument file (default: the recipe's defaults with one
epoch at learning rate 3e-4, 10 % warm-up, batch 16), the split files, the variant's arguments and every
`--extra key=value`; `as-configured` adds no arguments of its own. A variant names every setting it compares, so its
runs mean the same whatever the recipe's defaults are. Prints a markdown table (final evaluation: F1, forced HasAns
F1, null-odds AUC, best F1 over every threshold, training and wall time) and writes `curves.png` and `results.md`
into `--output-dir`. `--seeds 42 43 44` repeats every variant once per seed and adds the mean of the seeds, which
is what a difference smaller than run-to-run noise needs. `--reuse` reads finished runs back instead of training
them again, so variants and seeds can be run one at a time and reported together.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from machine import ROOT, cpu_name, load_average, use_repository_offline

use_repository_offline()

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The small budget, used when no --config is given: one epoch, Adafactor at 3e-4 with 10 % warm-up, batch 16.
SMALL_BUDGET = {"per_device_train_batch_size": 16, "learning_rate": 3e-4, "warmup_steps": 0.1, "num_train_epochs": 1}
ANSWER_HEAD = {"qa_head": "pointer", "answer_verifier": False, "verifier_standardization": False,
               "nonnull_loss_weight": 0.0, "null_span_loss_weight": 1.0, "head_learning_rate": None,
               "verifier_learning_rate": None, "dropout": 0.1}
STANDARDIZED = {**ANSWER_HEAD, "answer_verifier": True, "verifier_standardization": True}
VARIANTS = {
    "as-configured": {},
    "stock": {**ANSWER_HEAD, "qa_head": "linear", "optim": "adamw_torch", "learning_rate": 5e-5},
    "pointer": dict(ANSWER_HEAD),
    "verifier": {**ANSWER_HEAD, "answer_verifier": True},
    "head-lr": {**ANSWER_HEAD, "head_learning_rate": 3e-3},
    "verifier+head-lr": {**ANSWER_HEAD, "answer_verifier": True, "head_learning_rate": 3e-3},
    "verifier-lr": {**ANSWER_HEAD, "answer_verifier": True, "verifier_learning_rate": 3e-3},
    "verifier+nonnull": {**ANSWER_HEAD, "answer_verifier": True, "nonnull_loss_weight": 1.0},
    "standardized": STANDARDIZED,
    "standardized+nonnull": {**STANDARDIZED, "nonnull_loss_weight": 1.0},
    "standardized+no-dropout": {**STANDARDIZED, "dropout": 0.0},
    "standardized+no-dropout+null-weight": {**STANDARDIZED, "dropout": 0.0, "null_span_loss_weight": 0.5},
    "standardized+null-weight": {**STANDARDIZED, "null_span_loss_weight": 0.5},
}
CURVES = (("eval_f1", "F1"), ("eval_forced_HasAns_f1", "forced HasAns F1"), ("eval_null_odds_auc", "null-odds AUC"),
          ("eval_best_f1", "best F1, every threshold"))


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


def run_recipe(arguments: dict, folder: Path) -> float:
    """Run run_qa.py on `arguments`, logging into `folder`; return the wall time in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    arguments_file = folder / "arguments.json"
    arguments_file.write_text(json.dumps(arguments, indent=1))
    started = time.perf_counter()
    with (folder / "log.txt").open("w") as log:
        subprocess.run([sys.executable, str(ROOT / "run_qa.py"), str(arguments_file)], cwd=ROOT, check=True,
                       stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    (folder / "wall_seconds.txt").write_text(f"{seconds:.0f}\n")
    return seconds


def evaluations(log_history: list[dict]) -> list[dict]:
    """Return the evaluation entries of a Trainer log history, in step order."""
    return [entry for entry in log_history if "eval_f1" in entry]


def mean_row(rows: list[tuple[str, dict, float]], name: str) -> tuple[str, dict, float]:
    """Return a table row holding the mean of `rows`' numeric metrics and wall times."""
    numeric = [key for key, value in rows[0][1].items() if isinstance(value, (int, float))]
    metrics = {key: sum(row[1][key] for row in rows) / len(rows) for key in numeric}
    return name, metrics, sum(row[2] for row in rows) / len(rows)


def table(rows: list[tuple[str, dict, float]]) -> str:
    """Return the markdown table of each variant's final evaluation."""
    lines = ["| variant | EM | F1 | HasAns F1 | NoAns F1 | forced HasAns F1 | null-odds AUC | best F1 (threshold) | "
             "training time | wall time |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, metrics, seconds in rows:
        cells = [f"{metrics[f'eval_{key}']:.1f}" for key in ("exact", "f1", "HasAns_f1", "NoAns_f1",
                                                               "forced_HasAns_f1")]
        lines.append(f"| {name} | {' | '.join(cells)} | {metrics['eval_null_odds_auc']:.3f} | "
                     f"{metrics['eval_best_f1']:.1f} ({metrics['eval_best_f1_thresh']:.2f}) | "
                     f"{metrics['train_runtime'] / 60:.1f} min | {seconds / 60:.1f} min |")
    return "\n".join(lines)


def run_or_reuse(arguments: dict, run_folder: Path, reuse: bool) -> tuple[dict, list[dict], float]:
    """Return (final metrics, log history, wall seconds) of one run, training it unless `reuse` finds it done."""
    model_folder = Path(arguments["output_dir"])
    if reuse and (model_folder / "eval_results.json").exists():
        seconds = float((run_folder / "wall_seconds.txt").read_text())
    else:
        seconds = run_recipe(arguments, run_folder)
    metrics = json.loads((model_folder / "all_results.json").read_text())
    history = json.loads((model_folder / "trainer_state.json").read_text())["log_history"]
    return metrics, history, seconds


def plot_curves(histories: dict[str, list[dict]], no_answer_share: float, path: Path) -> None:
    """Draw every variant's evaluation curves, one panel per metric, the no-answer share marked on F1 panels."""
    figure, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.8))
    for axis, (key, title) in zip(axes, CURVES):
        for name, history in histories.items():
            points = [(entry["step"], entry[key]) for entry in evaluations(history) if key in entry]
            if points:
                axis.plot(*zip(*points), marker="o", markersize=3, label=name)
        if key == "eval_null_odds_auc":
            axis.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
        elif key != "eval_forced_HasAns_f1":
            axis.axhline(no_answer_share, color="grey", linestyle=":", linewidth=1, label="no answer everywhere")
        axis.set_title(title)
        axis.set_xlabel("training step")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/squad_v2_sample_train.json"))
    parser.add_argument("--holdout-articles", type=int, default=3)
    parser.add_argument("--model", default=str(ROOT / "build/minilm-distilbert"), help="starting checkpoint")
    parser.add_argument("--config", help="recipe argument file to start from (default: the recipe's defaults)")
    parser.add_argument("--variants", nargs="+", default=["stock", "pointer", "verifier", "standardized"],
                        choices=list(VARIANTS))
    parser.add_argument("--epochs", type=float, help="epochs of every run (default: the budget's)")
    parser.add_argument("--eval-steps", type=int, default=50)
    parser.add_argument("--extra", action="append", default=[], help="key=value argument override for every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="one run per seed, and their mean")
    parser.add_argument("--output-dir", default=str(ROOT / "build/real_data"))
    parser.add_argument("--reuse", action="store_true", help="read finished runs back instead of training again")
    args = parser.parse_args()

    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    train, held_out = split_by_article(json.loads(Path(args.data).read_text(encoding="utf-8")), args.holdout_articles)
    (output / "train.json").write_text(json.dumps(train), encoding="utf-8")
    (output / "heldout.json").write_text(json.dumps(held_out), encoding="utf-8")
    base = json.loads(Path(args.config).read_text()) if args.config else dict(SMALL_BUDGET)
    base.update(model_name_or_path=args.model, train_file=str(output / "train.json"),
                validation_file=str(output / "heldout.json"), do_train=True, do_eval=True,
                eval_strategy="steps", eval_steps=args.eval_steps, save_strategy="no", logging_steps=10,
                report_to="none", use_cpu=True, disable_tqdm=True)
    if args.epochs is not None:
        base["num_train_epochs"] = args.epochs
    overrides = dict(parse_override(text) for text in args.extra)

    (train_n, train_null), (dev_n, dev_null) = count_questions(train), count_questions(held_out)
    no_answer_share = 100.0 * dev_null / dev_n
    print(f"train: {train_n} questions ({train_null} unanswerable); held out: {dev_n} ({dev_null} unanswerable, "
          f"no-answer F1 {no_answer_share:.1f}); {cpu_name()}, load {load_average()}; "
          f"{base['num_train_epochs']:g} epoch(s), config {args.config or 'defaults'}, seeds {args.seeds}, "
          f"overrides {overrides}\n",
          flush=True)
    rows, histories = [], {}
    for name in args.variants:
        seed_rows = []
        for seed in args.seeds:
            label = name if len(args.seeds) == 1 else f"{name}, seed {seed}"
            run_folder = output / name / f"seed-{seed}"
            arguments = {**base, "seed": seed, **VARIANTS[name], **overrides, "output_dir": str(run_folder / "model")}
            metrics, histories[label], seconds = run_or_reuse(arguments, run_folder, args.reuse)
            seed_rows.append((label, metrics, seconds))
            print(table(seed_rows[-1:]).splitlines()[-1], flush=True)
        rows += seed_rows
        if len(seed_rows) > 1:
            rows.append(mean_row(seed_rows, f"**{name}, mean of {len(seed_rows)} seeds**"))

    report = table(rows)
    print("\n" + report)
    (output / "results.md").write_text(report + "\n", encoding="utf-8")
    plot_curves(histories, no_answer_share, output / "curves.png")
    print(f"\nwrote {output / 'results.md'} and {output / 'curves.png'}")


if __name__ == "__main__":
    main()
