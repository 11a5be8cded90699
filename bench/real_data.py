"""Cross-validation by article: how recipe variants score on real SQuAD 2.0 articles that no run trained on.

    make build/minilm-distilbert
    python bench/real_data.py --config configs/cpu_small.json --variants as-configured --seeds 42

Why: a difference of a few F1 on one split of a few articles is within what another set of articles moves, so
every choice is measured on every article: the articles of `--data` are dealt into `--folds` folds (article i goes
to fold i mod K); each fold trains on every other article and evaluates on its own. Each variant runs once per fold
and seed, as `python run_qa.py ARGS.json` in OUTPUT/VARIANT/fold-F/seed-S. ARGS is `--config` (default: the
recipe's defaults with one epoch at learning rate 3e-4, 10 % warm-up, batch 16) with the protocol's split files,
output folder, seed, evaluation and saving settings, on the CPU, then the variant's arguments and every `--extra
key=value`; `as-configured` adds nothing.

Writes OUTPUT/results.md: per variant, the mean ± standard deviation over folds × seeds of F1 at the shipped
threshold, F1 minus the fold's no-answer share (what answering nothing scores), forced HasAns F1, null-odds AUC,
best F1 over every threshold, the threshold and the training time; the paired differences against `--baseline`
(same fold and seed), which beat it only beyond their spread; and a per-fold table. `--folds-only` and `--reuse`
let a long experiment run in pieces and be reported whole.
"""

import argparse
import datetime
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from machine import ROOT, cpu_name, load_average, use_repository_offline

use_repository_offline()

# Used when no --config is given: one epoch, Adafactor at 3e-4 with 10 % warm-up, batch 16.
SMALL_BUDGET = {"per_device_train_batch_size": 16, "learning_rate": 3e-4, "warmup_steps": 0.1, "num_train_epochs": 1}
POINTER = {"qa_head": "pointer", "answer_verifier": False, "verifier_standardization": False,
           "null_span_loss_weight": 1.0}
# A variant is a name and the run_qa.py arguments it sets; add one here to compare it.
VARIANTS = {
    "as-configured": {},
    "stock": {**POINTER, "qa_head": "linear", "optim": "adamw_torch", "learning_rate": 5e-5},
    "pointer": POINTER,
    "linear-head": {"qa_head": "linear"},  # the pointer head's own ablation: the stock head, all else as configured
    "layer-decay": {"layerwise_learning_rate_decay": 0.8},
    "four-epochs": {"num_train_epochs": 4},
    "sentence-matcher": {"answer_similarity": True},
    "reader-only": {"answer_similarity": False},  # the fine-tuned reader's null odds alone, without the matcher
}
# Settings of an argument file that the protocol replaces: the data, where runs go, and when they evaluate and save.
REPLACED = ("dataset_name", "dataset_config_name", "load_best_model_at_end", "metric_for_best_model", "eval_steps",
            "save_steps")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
# (key of a run's summary, column title, decimals)
SUMMARY = (("f1", "F1", 1), ("f1_over_no_answer", "F1 − no-answer share", 1), ("forced_f1", "forced HasAns F1", 1),
           ("auc", "null-odds AUC", 3), ("best_f1", "best F1, any threshold", 1), ("threshold", "threshold", 2),
           ("train_minutes", "training min", 1))
PAIRED = ("f1", "forced_f1", "auc", "best_f1")


@dataclass(frozen=True)
class Job:
    """One training run: a variant on a fold with a seed, its folder and its run_qa.py arguments."""

    variant: str
    fold: int
    seed: int
    folder: Path
    arguments: dict


def deal_articles(n_articles: int, folds: int) -> list[list[int]]:
    """Return the article indices of each fold: article i goes to fold i mod `folds`."""
    if not 2 <= folds <= n_articles:
        raise ValueError(f"--folds must be between 2 and the number of articles ({n_articles}), got {folds}")
    return [list(range(fold, n_articles, folds)) for fold in range(folds)]


def split_fold(document: dict, held_out: list[int]) -> tuple[dict, dict]:
    """Return (train, held-out) SQuAD documents: the articles at `held_out` indices, and every other one."""
    version = document.get("version", "v2.0")
    chosen = set(held_out)
    articles = document["data"]
    return ({"version": version, "data": [article for i, article in enumerate(articles) if i not in chosen]},
            {"version": version, "data": [article for i, article in enumerate(articles) if i in chosen]})


def count_questions(document: dict) -> tuple[int, int]:
    """Return (questions, unanswerable questions) of a nested SQuAD document."""
    questions = [qa for article in document["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    return len(questions), sum(1 for qa in questions if not qa["answers"])


def parse_override(text: str) -> tuple[str, object]:
    """Return `key=value` as (key, JSON value or text)."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise ValueError(f"--extra takes key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def run_arguments(base: dict, variant: dict, overrides: dict, train_file: Path, validation_file: Path, seed: int,
                  output_dir: Path, eval_steps: int | None) -> dict:
    """Return one run's run_qa.py arguments: `base` under the protocol's data, output, evaluation and saving."""
    arguments = {key: value for key, value in base.items() if key not in REPLACED}
    arguments.setdefault("logging_steps", 10)
    arguments.update(train_file=str(train_file), validation_file=str(validation_file), do_train=True, do_eval=True,
                     eval_strategy="steps" if eval_steps else "no", save_strategy="no", report_to="none",
                     use_cpu=True, disable_tqdm=True, seed=seed)
    if eval_steps:
        arguments["eval_steps"] = eval_steps
    return {**arguments, **variant, **overrides, "output_dir": str(output_dir)}


def run_summary(metrics: dict, arguments: dict) -> dict:
    """Return the figures the report compares for one finished run: the no-answer share of the questions scored,
    and the threshold the model ships with (the calibrated one where the metrics hold it, else the run's argument)."""
    no_answer_share = 100.0 * metrics.get("eval_NoAns_total", 0) / metrics["eval_total"]
    threshold = metrics.get("eval_null_score_diff_threshold", arguments.get("null_score_diff_threshold", 0.0))
    return {"f1": metrics["eval_f1"], "f1_over_no_answer": metrics["eval_f1"] - no_answer_share,
            "forced_f1": metrics.get("eval_forced_HasAns_f1", math.nan),
            "auc": metrics.get("eval_null_odds_auc", math.nan), "best_f1": metrics.get("eval_best_f1", math.nan),
            "threshold": threshold, "train_minutes": metrics.get("train_runtime", math.nan) / 60}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Return the mean and the sample standard deviation (n − 1), NaN where there are too few values."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def paired_differences(results: dict, variant: str, baseline: str, key: str) -> list[float]:
    """Return `variant` minus `baseline` on `key` for each (fold, seed) where both finished in `results`."""
    return [summary[key] - results[(baseline, fold, seed)][key] for (name, fold, seed), summary in results.items()
            if name == variant and (baseline, fold, seed) in results]


def format_spread(values: list[float], decimals: int) -> str:
    """Return 'mean ± std' of `values`, only the mean for a single value, '—' for none."""
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "—"
    return f"{mean:.{decimals}f}" if math.isnan(std) else f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def summary_table(results: dict, variants: list[str]) -> str:
    """Return the markdown table of each variant's mean ± std over folds × seeds."""
    lines = ["| variant | runs | " + " | ".join(title for _, title, _ in SUMMARY) + " |",
             "|---|---" + "|---" * len(SUMMARY) + "|"]
    for variant in variants:
        runs = [summary for (name, _, _), summary in results.items() if name == variant]
        cells = [format_spread([run[key] for run in runs], decimals) for key, _, decimals in SUMMARY]
        lines.append(f"| {variant} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(results: dict, variants: list[str], baseline: str) -> str:
    """Return the markdown table of each variant's paired differences against `baseline` (same fold and seed)."""
    titles = {key: (title, decimals) for key, title, decimals in SUMMARY}
    lines = [f"| variant − {baseline} | pairs | " + " | ".join(f"Δ {titles[key][0]}" for key in PAIRED) + " |",
             "|---|---" + "|---" * len(PAIRED) + "|"]
    for variant in variants:
        if variant == baseline:
            continue
        differences = {key: paired_differences(results, variant, baseline, key) for key in PAIRED}
        cells = [format_spread(differences[key], titles[key][1]) for key in PAIRED]
        lines.append(f"| {variant} | {len(differences['f1'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fold_table(results: dict, variants: list[str], folds: dict[int, dict]) -> str:
    """Return the markdown table of each fold's articles and each variant's F1 / AUC there (mean over seeds)."""
    lines = ["| fold | articles | questions | no-answer share | " + " | ".join(f"{v} F1 / AUC" for v in variants)
             + " |", "|---|---|---|---" + "|---" * len(variants) + "|"]
    for fold, info in folds.items():
        cells = []
        for variant in variants:
            runs = [summary for (name, run_fold, _), summary in results.items() if (name, run_fold) == (variant, fold)]
            f1, auc = (mean_std([run[key] for run in runs])[0] for key in ("f1", "auc"))
            cells.append(f"{f1:.1f} / {auc:.3f}" if runs else "—")
        lines.append(f"| {fold} | {', '.join(info['titles'])} | {info['questions']} | {info['no_answer_share']:.1f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_data(path: Path) -> dict:
    """Return the SQuAD document at `path`, or stop with one line saying what to pass."""
    if not path.is_file():
        raise SystemExit(f"no data file at {path}: pass a SQuAD 2.0 JSON file with --data")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SystemExit(f"{path} is not valid JSON ({error}): pass a SQuAD 2.0 JSON file with --data") from None


def load_base(config: str | None) -> dict:
    """Return the argument file's settings, or the small budget when there is none."""
    if config is None:
        return dict(SMALL_BUDGET)
    try:
        return json.loads(Path(config).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"--config {config}: cannot read it as a JSON argument file ({error})") from None


def write_unless_same(path: Path, text: str):
    """Write `text` unless the file already holds it, so that runs of another invocation reading it are safe."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def write_folds(document: dict, folds: int, output: Path) -> dict[int, dict]:
    """Write each fold's train and held-out files; return per fold the file paths, titles and question counts."""
    try:
        dealt = deal_articles(len(document["data"]), folds)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    written = {}
    for fold, held_out in enumerate(dealt):
        train, evaluation = split_fold(document, held_out)
        folder = output / "splits" / f"fold-{fold}"
        folder.mkdir(parents=True, exist_ok=True)
        write_unless_same(folder / "train.json", json.dumps(train))
        write_unless_same(folder / "heldout.json", json.dumps(evaluation))
        questions, unanswerable = count_questions(evaluation)
        written[fold] = {"train": folder / "train.json", "heldout": folder / "heldout.json",
                         "titles": [article.get("title", f"article {i}") for i, article in
                                    zip(held_out, evaluation["data"])],
                         "questions": questions, "no_answer_share": 100.0 * unanswerable / questions}
    return written


def plan_jobs(args, base: dict, folds: dict[int, dict], overrides: dict) -> list[Job]:
    """Return every run, fold by fold and seed by seed, so that paired comparisons complete early."""
    jobs = []
    for fold in args.folds_only or list(folds):
        for seed in args.seeds:
            for variant in args.variants:
                folder = Path(args.output_dir).resolve() / variant / f"fold-{fold}" / f"seed-{seed}"
                arguments = run_arguments(base, VARIANTS[variant], overrides, folds[fold]["train"],
                                          folds[fold]["heldout"], seed, folder / "model", args.eval_steps)
                jobs.append(Job(variant, fold, seed, folder, arguments))
    return jobs


def finished(job: Job) -> bool:
    """Return whether the run's evaluation and wall time are on disk."""
    return (job.folder / "model" / "all_results.json").exists() and (job.folder / "wall_seconds.txt").exists()


def check_reused(jobs: list[Job]) -> None:
    """Stop with one line when a finished run to reuse was trained with other arguments than this command's."""
    for job in jobs:
        if finished(job):
            saved = json.loads((job.folder / "arguments.json").read_text())
            if saved != job.arguments:
                changed = sorted(key for key in saved.keys() | job.arguments.keys()
                                 if saved.get(key) != job.arguments.get(key))
                raise SystemExit(f"--reuse: {job.folder} was run with other arguments ({', '.join(changed)}); "
                                 "use another --output-dir or drop --reuse")


def child_torch_threads() -> int:
    """Return how many threads torch uses in a run's environment."""
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           env={**os.environ, **ONE_THREAD}, capture_output=True, text=True, check=True)
    return int(probe.stdout.strip())


def run_job(job: Job) -> bool:
    """Train and evaluate one run into its folder; return whether it succeeded, printing its F1 or its log's tail."""
    job.folder.mkdir(parents=True, exist_ok=True)
    arguments_file = job.folder / "arguments.json"
    arguments_file.write_text(json.dumps(job.arguments, indent=1))
    started = time.perf_counter()
    with (job.folder / "log.txt").open("w") as log:
        process = subprocess.run([sys.executable, str(ROOT / "run_qa.py"), str(arguments_file)], cwd=ROOT,
                                 env={**os.environ, **ONE_THREAD}, stdout=log, stderr=subprocess.STDOUT)
    if process.returncode != 0:
        tail = (job.folder / "log.txt").read_text(errors="replace").splitlines()[-25:]
        print(f"FAILED {job.folder} (exit {process.returncode}); end of its log:\n" + "\n".join(tail), flush=True)
        return False
    (job.folder / "wall_seconds.txt").write_text(f"{time.perf_counter() - started:.0f}\n")
    print(f"done {job.variant} fold {job.fold} seed {job.seed}: F1 {read_metrics(job)['eval_f1']:.1f}", flush=True)
    return True


def run_all(jobs: list[Job], parallel: int, reuse: bool) -> list[Job]:
    """Run every job not reused, `parallel` at a time, printing each as it ends; return the failed jobs."""
    todo = [job for job in jobs if not (reuse and finished(job))]
    print(f"{len(jobs) - len(todo)} run(s) reused, {len(todo)} to train, {parallel} at a time", flush=True)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        outcomes = list(pool.map(run_job, todo))
    return [job for job, succeeded in zip(todo, outcomes) if not succeeded]


def read_metrics(job: Job) -> dict:
    """Return a finished run's final metrics (training and evaluation)."""
    return json.loads((job.folder / "model" / "all_results.json").read_text())


def collect(jobs: list[Job]) -> dict:
    """Return (variant, fold, seed) -> summary of every finished run."""
    return {(job.variant, job.fold, job.seed): run_summary(read_metrics(job), job.arguments)
            for job in jobs if finished(job)}


def header(args, document: dict, folds: dict[int, dict], torch_threads: int) -> str:
    """Return the report's opening: the exact command, date, machine and protocol."""
    questions, unanswerable = count_questions(document)
    return (f"Command: `{shlex.join(['python', 'bench/real_data.py', *sys.argv[1:]])}`\n\n"
            f"Date: {datetime.date.today().isoformat()}. Machine: {cpu_name()}, {os.cpu_count()} cores, load "
            f"{load_average()} at the start; {args.parallel} run(s) side by side, {torch_threads} torch thread(s) "
            f"each.\n\n"
            f"Data: {args.data}, {len(document['data'])} articles, {questions} questions ({unanswerable} "
            f"unanswerable); {len(folds)} folds (article i held out in fold i mod {len(folds)}); seeds "
            f"{' '.join(map(str, args.seeds))}; config {args.config or 'recipe defaults + ' + json.dumps(SMALL_BUDGET)}"
            f"; extra {' '.join(args.extra) or 'none'}. Mean ± standard deviation over folds × seeds.")


def report(args, document: dict, folds: dict[int, dict], results: dict, torch_threads: int) -> str:
    """Return results.md: the header, the summary, the paired differences and the per-fold table."""
    report_folds = {fold: folds[fold] for fold in args.folds_only or folds}
    sections = [header(args, document, folds, torch_threads),
                "## Variants\n\n" + summary_table(results, args.variants)]
    if len(args.variants) > 1:
        sections.append(f"## Paired differences against {args.baseline} (same fold and seed)\n\n"
                        + paired_table(results, args.variants, args.baseline))
    sections.append("## Per fold (mean over seeds)\n\n" + fold_table(results, args.variants, report_folds))
    return "\n\n".join(sections) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/squad_v2_sample_train.json"),
                        help="SQuAD 2.0 JSON file whose articles are cross-validated")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--folds-only", type=int, nargs="+", help="run only these folds (reuse the rest later)")
    parser.add_argument("--model", help="starting checkpoint (default: the config's, else build/minilm-distilbert)")
    parser.add_argument("--config", help="recipe argument file to start from (default: the small budget)")
    parser.add_argument("--variants", nargs="+", default=["as-configured", "stock", "pointer"], choices=list(VARIANTS))
    parser.add_argument("--baseline", help="variant the others are paired against (default: the first)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--extra", action="append", default=[], help="key=value argument override for every run")
    parser.add_argument("--eval-steps", type=int,
                        help="also evaluate every N steps (each run's training_curves.png draws them)")
    parser.add_argument("--parallel", type=int, default=2, help="runs side by side, one torch thread each")
    parser.add_argument("--output-dir", default=str(ROOT / "build/real_data"))
    parser.add_argument("--reuse", action="store_true", help="read finished runs back instead of training again")
    args = parser.parse_args()
    args.baseline = args.baseline or args.variants[0]
    if args.baseline not in args.variants:
        parser.error(f"--baseline {args.baseline} is not one of --variants {' '.join(args.variants)}")
    if args.parallel < 1:
        parser.error("--parallel must be at least 1")
    if args.folds_only and not all(0 <= fold < args.folds for fold in args.folds_only):
        parser.error(f"--folds-only takes fold numbers from 0 to {args.folds - 1}")
    return args


def main() -> None:
    args = parse_args()
    output = Path(args.output_dir).resolve()
    document = load_data(Path(args.data))
    folds = write_folds(document, args.folds, output)
    base = load_base(args.config)
    base["model_name_or_path"] = args.model or base.get("model_name_or_path", str(ROOT / "build/minilm-distilbert"))
    try:
        overrides = dict(parse_override(text) for text in args.extra)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    jobs = plan_jobs(args, base, folds, overrides)
    if args.reuse:
        check_reused(jobs)
    torch_threads = child_torch_threads()

    failed = run_all(jobs, args.parallel, args.reuse)
    results = collect(jobs)
    text = report(args, document, folds, results, torch_threads)
    print("\n" + text)
    (output / "results.md").write_text(text, encoding="utf-8")
    print(f"wrote {output / 'results.md'}")
    if failed:
        raise SystemExit(f"{len(failed)} of {len(jobs)} run(s) failed: " + ", ".join(str(job.folder) for job in failed))


if __name__ == "__main__":
    main()
