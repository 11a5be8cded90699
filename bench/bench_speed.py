"""Benchmark: training and evaluation speed of the recipe's defaults against the classic fixed-length SQuAD recipe.

Both sides are run_qa.py and `QuestionAnsweringTrainer` with different settings. The classic side passes
`--pad_to_max_length` (every window padded to 384 tokens), `--train_sampling_strategy random` and
`--eval_do_concat_batches true`, and picks answers with the Python double loop of bench_postprocess.py in place of
`select_answers`: that loop is the one part the project does not have. The recipe side keeps the defaults: each
batch padded to its longest window (a multiple of 8), length-grouped or random training batches, per-batch logits
and vectorised post-processing. Real SQuAD 2.0 questions, the real uncased tokenizer, randomly initialised pointer
models of two sizes. One markdown table per size: training samples/s, evaluation time per question and peak
memory, and how many answers are identical.

Both data files default to the repository's real SQuAD 2.0 article (208 questions, one article's context lengths);
bench/results/dynamic_padding.md draws from more articles:
`--data ../shared/data/squad_v2_sample_unlabeled.json --train-data ../shared/data/squad_v2_sample_train.json`.
"""

import argparse
import contextlib
import gc
import json
import logging
import math
import multiprocessing
import os
import platform
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from machine import SAMPLE_DATA, cpu_name, load_average, tokenizer_dir, use_repository_offline

use_repository_offline()

import datasets  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoTokenizer, PreTrainedModel  # noqa: E402
from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback  # noqa: E402

import arguments_qa  # noqa: E402
import run_qa  # noqa: E402
import trainer_qa  # noqa: E402
from bench_postprocess import loop_select_answers  # noqa: E402
from modeling_pointer_distilbert import PointerDistilBertForQuestionAnswering  # noqa: E402
from utils_qa import DataFormatError, load_squad_file  # noqa: E402

MODEL_SIZES = {
    "distilbert-base": dict(dim=768, n_layers=6, n_heads=12, hidden_dim=3072),
    "minilm": dict(dim=384, n_layers=6, n_heads=12, hidden_dim=1536),
}
# The classic recipe's run_qa.py flags; it is the baseline of every ratio.
CLASSIC_FLAGS = ["--pad_to_max_length", "--train_sampling_strategy", "random"]
CLASSIC_EVAL_FLAGS = CLASSIC_FLAGS + ["--eval_do_concat_batches", "true"]
SAMPLING_STRATEGIES = ("random", "group_by_length")  # training orders of the dynamically padded setups
EVALUATION_PATHS = ("classic", "recipe")
PAD_MULTIPLE = 8
WARMUP_STEPS = 1  # untimed first step of every timed training run, on its first timed batch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SAMPLE_DATA,
                        help="SQuAD 2.0 file to evaluate on (an unlabelled question counts as unanswerable)")
    parser.add_argument("--train-data", type=Path, default=SAMPLE_DATA,
                        help="SQuAD 2.0 file with answers to train on (its real labels)")
    parser.add_argument("--max-examples", type=int, default=100,
                        help="questions drawn at random (seeded) from --data for evaluation")
    parser.add_argument("--train-steps", type=int, default=3,
                        help="timed optimizer steps per training setup (batches at evenly spaced width quantiles)")
    parser.add_argument("--batch-size", type=int, default=8, help="training batch size (the recipe's default is 32)")
    parser.add_argument("--eval-batch-size", type=int, default=8,
                        help="evaluation batch size (the recipe's is 64; keep it well below the number of windows)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed runs of each setup, in alternating order; the fastest is kept")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 keeps the figures steady on a shared machine)")
    parser.add_argument("--sizes", nargs="+", choices=list(MODEL_SIZES), default=list(MODEL_SIZES),
                        help="model sizes to measure")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (run_qa.py --bf16)")
    parser.add_argument("--attn-implementation", choices=("sdpa", "eager"), default=None,
                        help="encoder attention (default: the recipe's, sdpa)")
    parser.add_argument("--torch-compile", action="store_true", help="compile the model (run_qa.py --torch_compile)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the question sample, the models and the batches")
    parser.add_argument("--tokenizer", help="uncased BERT tokenizer folder (default: the MiniLM package's)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch build sees no CUDA device; use --device cpu")
    for name in ("max_examples", "train_steps", "batch_size", "eval_batch_size", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


# Set-up: question sample, random models, run_qa.py's own steps


def write_question_sample(data: Path, max_examples: int, seed: int, folder: Path) -> tuple[Path, int]:
    """Return a JSON Lines file of `max_examples` questions of `data` drawn at random (a random draw keeps the
    context lengths of the whole file; the first questions would share a few articles), and the count in `data`."""
    examples = load_squad_file(data)
    rows = np.random.default_rng(seed).choice(len(examples), size=min(max_examples, len(examples)), replace=False)
    path = folder / "questions.jsonl"
    examples.select(np.sort(rows)).to_json(path, lines=True, force_ascii=False)
    return path, len(examples)


def save_random_model(model_class: type[PreTrainedModel], shape: dict, tokenizer_folder: Path, seed: int,
                      folder: Path) -> Path:
    """Return a folder holding a randomly initialised `model_class` of `shape` (sizes of its config) and the real
    uncased tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    torch.manual_seed(seed)
    config = model_class.config_class(vocab_size=tokenizer.vocab_size, max_position_embeddings=512, **shape)
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def recipe_argv(model_dir: Path, output_dir: Path, args: argparse.Namespace, *flags: str) -> list[str]:
    """Return run_qa.py arguments: the recipe's defaults plus the benchmark's sizes, device and `flags`.

    TensorBoard is off so that no run pays for opening its writer, nothing is saved during training, and no
    calibration split is held out: every setup times training on all of the training file's windows.
    """
    switches = {"--use_cpu": args.device == "cpu", "--torch_compile": args.torch_compile}
    argv = [
        "--model_name_or_path", str(model_dir), "--output_dir", str(output_dir), "--seed", str(args.seed),
        "--per_device_train_batch_size", str(args.batch_size),
        "--per_device_eval_batch_size", str(args.eval_batch_size),
        "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true", "--calibration_fraction", "0",
        "--bf16", "true" if args.bf16 else "false",  # explicit: on a CUDA device the recipe would choose bf16
        *(item for switch, wanted in switches.items() if wanted for item in (switch, "true")),
    ]
    if args.attn_implementation:
        argv += ["--attn_implementation", args.attn_implementation]
    return argv + list(flags)


def build_run(argv: list[str], train_features: datasets.Dataset | None = None):
    """Return `(trainer, examples, features)` made by run_qa.py's own `prepare_run`, without the printing callbacks;
    with `train_features` the data steps are skipped and the trainer trains on exactly those."""
    trainer, raw, features = run_qa.prepare_run(*run_qa.parse_arguments(argv), train_features=train_features)
    return without_printing(trainer), raw, features


def without_printing(trainer):
    """Return `trainer` without the callbacks that print its progress and logs, which would break up the tables."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def quiet_libraries() -> None:
    """Switch off the progress bars and warnings of datasets and transformers, and the recipe's hints about a random
    model's answers, which would break up the tables."""
    datasets.disable_progress_bars()
    logging.getLogger("trainer_qa").setLevel(logging.ERROR)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def padded_widths(lengths: list[int], batches: list[list[int]]) -> list[int]:
    """Return the width each batch is padded to: its longest window, rounded up to a multiple of 8."""
    return [PAD_MULTIPLE * math.ceil(max(lengths[index] for index in batch) / PAD_MULTIPLE) for batch in batches]


class StepClock(TrainerCallback):
    """Records when each optimizer step of `Trainer.train` ends, the GPU's queued work included, so that steps can be
    timed without the set-up before them (optimizer, data loader) and the warm-up step that loads kernels."""

    def __init__(self, device: str):
        self.synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        self.step_ends = []

    def on_step_end(self, args, state, control, **kwargs):
        self.synchronize()
        self.step_ends.append(time.perf_counter())


def timed_training(trainer, device: str, warmup_steps: int) -> float:
    """Return the seconds that `trainer.train()` spends on its steps after the first `warmup_steps`."""
    clock = StepClock(device)
    trainer.add_callback(clock)
    trainer.train()
    return clock.step_ends[-1] - clock.step_ends[warmup_steps - 1]


def seconds_of(function, device: str) -> float:
    """Return the seconds `function()` takes, waiting for queued GPU work so that the clock counts all of it."""
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    synchronize()
    started = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - started


# Training


@dataclass
class TrainingSetup:
    """One training configuration, ready to time: its arguments and the batches it trains on, in order."""

    name: str
    argv: list[str]  # run_qa.py arguments of the timed runs
    features: datasets.Dataset  # the timed batches, one after the other
    epoch_widths: list[int]  # padded width of every batch of one full epoch
    timed_widths: list[int]  # padded width of each timed batch


def training_setups() -> list[tuple[str, list[str]]]:
    """Return `(name, run_qa.py flags)` of each training setup, the classic one first."""
    default = arguments_qa.QATrainingArguments.train_sampling_strategy
    setups = [("classic: padded to 384, random batches", CLASSIC_FLAGS)]
    for strategy in SAMPLING_STRATEGIES:
        name = f"`--train_sampling_strategy {strategy}`" + (" (recipe default)" if strategy == default else "")
        setups.append((name, ["--train_sampling_strategy", strategy]))
    return setups


def prepare_training(name: str, flags: list[str], model_dir: Path, output_dir: Path, args) -> TrainingSetup:
    """Return the setup: features made by run_qa.py, one epoch of its trainer's batches, and the timed batches.

    A step's cost is set by its padded width, so the timed batches are the epoch's batches at evenly spaced
    quantiles of width: a few steps then stand for the whole epoch. Timing the first steps instead would favour
    random batches, since `group_by_length` starts with the batch holding the longest window and goes on longest
    first through its mega-batch. The timed runs replay exactly those batches (sequential sampling), after an
    untimed warm-up step on the first of them.
    """
    argv = recipe_argv(model_dir, output_dir, args, "--do_train", "--train_file", str(args.train_data), *flags)
    trainer, _, features = build_run(argv)
    epoch = [list(batch) for batch in trainer.get_train_dataloader().batch_sampler]
    lengths = [len(ids) for ids in features["train"]["input_ids"]]
    full_batches = [batch for batch in epoch if len(batch) == args.batch_size]
    if len(full_batches) < args.train_steps:
        raise SystemExit(f"{args.train_data}: {len(full_batches)} full batches of {args.batch_size}, fewer than "
                         f"--train-steps {args.train_steps}; lower one of them")
    by_width = np.argsort(padded_widths(lengths, full_batches), kind="stable")
    timed_batches = [full_batches[by_width[int((step + 0.5) * len(full_batches) / args.train_steps)]]
                     for step in range(args.train_steps)]
    replayed = timed_batches[:1] * WARMUP_STEPS + timed_batches
    return TrainingSetup(
        name=name,
        argv=argv + ["--train_sampling_strategy", "sequential", "--max_steps", str(len(replayed))],
        features=features["train"].select([index for batch in replayed for index in batch]),
        epoch_widths=padded_widths(lengths, epoch),
        timed_widths=padded_widths(lengths, timed_batches),
    )


def compare_training(setups: list[TrainingSetup], args) -> dict[str, float]:
    """Return the best seconds of the timed steps from a fresh model for each setup, over `args.repeats` runs in
    alternating order; the set-up of `Trainer.train` and its warm-up step are not counted."""
    seconds = {setup.name: math.inf for setup in setups}
    order = list(setups)
    for _ in range(args.repeats):
        for setup in order:
            trainer = build_run(setup.argv, setup.features)[0]
            seconds[setup.name] = min(seconds[setup.name], timed_training(trainer, args.device, WARMUP_STEPS))
        order.reverse()
    return seconds


# Evaluation (each run in a fresh process, for an honest peak memory)


def memory_mib(field: str) -> float | None:
    """Return this process's `VmRSS` or `VmHWM` (peak RSS) from /proc/self/status in MiB, None where there is none."""
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) / 1024 if found else None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process to its current RSS; False where Linux does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def evaluation_run(request: dict) -> dict:
    """Return one timed `QuestionAnsweringTrainer.evaluate` of `request["path"]` ("classic" or "recipe") in this
    fresh process, with its memory and the answers and null odds it wrote. The time covers forward, post-processing,
    files and (on labelled data) the metric, after one untimed forward; peak RSS is reset just before evaluation."""
    torch.set_num_threads(request["threads"])
    quiet_libraries()
    classic = request["path"] == "classic"
    trainer, raw, features = build_run(request["argv"] + (CLASSIC_EVAL_FLAGS if classic else []))
    features, device = features["validation"], request["device"]
    lengths = [len(ids) for ids in features["input_ids"]]
    trainer.evaluation_loop(trainer.get_eval_dataloader(features.select([int(np.argmin(lengths))])), "Warm-up")
    gc.collect()
    rss_before = memory_mib("VmRSS")
    peak_reset = reset_peak_rss()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with mock.patch.object(trainer_qa, "select_answers", loop_select_answers) if classic else contextlib.nullcontext():
        seconds = seconds_of(trainer.evaluate, device)
    rss_peak = memory_mib("VmHWM") if peak_reset and rss_before is not None else None
    size = request["eval_batch_size"]
    written = {kind: json.loads((Path(trainer.args.output_dir) / f"eval_{kind}.json").read_text(encoding="utf-8"))
               for kind in ("predictions", "null_odds")}
    return {
        "seconds": seconds, "questions": len(raw["validation"]), "windows": len(features),
        "widths": padded_widths(lengths, [range(start, min(start + size, len(lengths)))
                                          for start in range(0, len(lengths), size)]),
        "rss_peak": rss_peak, "rss_growth": None if rss_peak is None else rss_peak - rss_before,
        "cuda_peak": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
        "answers": written["predictions"], "null_odds": written["null_odds"],
    }


def run_in_fresh_process(request: dict) -> dict:
    """Return `evaluation_run(request)` computed in a new interpreter, so no memory of earlier runs is reused."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(evaluation_run, (request,))


def compare_evaluation(model_dir: Path, questions: Path, folder: Path, args) -> dict[str, dict]:
    """Return each path's fastest evaluation (over `args.repeats`, alternating which path goes first), with the
    memory and answers of its first run."""
    runs = {path: [] for path in EVALUATION_PATHS}
    order = list(EVALUATION_PATHS)
    for repeat in range(args.repeats):
        for path in order:
            argv = recipe_argv(model_dir, folder / f"{path}-{repeat}", args, "--do_eval", "--validation_file",
                               str(questions))
            request = dict(path=path, argv=argv, threads=args.threads, device=args.device,
                           eval_batch_size=args.eval_batch_size)
            runs[path].append(run_in_fresh_process(request))
        order.reverse()
    return {path: dict(results[0], seconds=min(result["seconds"] for result in results))
            for path, results in runs.items()}


# Report


def ratio(baseline: float | None, value: float | None, higher_is_better: bool = True) -> str:
    """Return how many times better `value` is than `baseline`, as "1.23x"."""
    if not baseline or not value:  # None or 0
        return "n/a"
    return f"{value / baseline if higher_is_better else baseline / value:.2f}x"


def figure(value: float | None, digits: int = 0) -> str:
    """Return a table figure with thousands separators, "n/a" where there is none."""
    return "n/a" if value is None else f"{value:,.{digits}f}"


def size_table(setups: list[TrainingSetup], train_seconds: dict, evaluation: dict, args) -> list[str]:
    """Return the markdown lines of one model size's table; its last rows compare the answers of the two paths."""
    classic_setup, *recipe_setups = setups
    rate = {setup.name: args.train_steps * args.batch_size / train_seconds[setup.name] for setup in setups}
    width = {setup.name: float(np.mean(setup.epoch_widths)) for setup in setups}
    timed = {setup.name: f"{figure(width[setup.name])} ({', '.join(map(str, setup.timed_widths))})" for setup in setups}
    classic, recipe = evaluation["classic"], evaluation["recipe"]
    rows = [(f"training samples/s, {setup.name}", figure(rate[classic_setup.name], 2), figure(rate[setup.name], 2),
             ratio(rate[classic_setup.name], rate[setup.name])) for setup in recipe_setups]
    rows += [(f"training padded width, one epoch's mean (timed batches), {setup.name}", timed[classic_setup.name],
              timed[setup.name], ratio(width[setup.name], width[classic_setup.name]))
             for setup in recipe_setups]
    ms = [1000 * result["seconds"] / result["questions"] for result in (classic, recipe)]
    widths = [float(np.mean(result["widths"])) for result in (classic, recipe)]
    rows += [("evaluation ms per question (`evaluate`: forward, answers, files)", *map(figure, ms), ratio(*ms, False)),
             ("evaluation mean padded width (tokens)", *map(figure, widths), ratio(widths[1], widths[0]))]
    memory = [("cuda_peak", "peak CUDA memory allocated")] if args.device == "cuda" else []
    for key, label in memory + [("rss_peak", "peak RSS"), ("rss_growth", "peak RSS above the loaded process")]:
        rows.append((f"evaluation {label} (MiB)", figure(classic[key]), figure(recipe[key]),
                     ratio(recipe[key], classic[key])))
    same = sum(recipe["answers"][key] == answer for key, answer in classic["answers"].items())
    odds_gap = max(abs(classic["null_odds"][key] - recipe["null_odds"][key]) for key in classic["null_odds"])
    rows += [("identical answer texts (padded vs dynamic)", "", f"{same} / {len(classic['answers'])}", ""),
             ("largest null-odds difference (padded vs dynamic)", "", f"{odds_gap:.1e}", "")]
    return ["| measurement | classic recipe | this recipe | speed-up |", "|---|---:|---:|---:|"] + [
        f"| {' | '.join(cells)} |" for cells in rows
    ]


def print_size_report(size: str, setups: list[TrainingSetup], train_seconds: dict, evaluation: dict,
                      total_questions: int, args) -> None:
    """Print one model size's heading, sample description, table and any question answered differently."""
    shape, classic, recipe = MODEL_SIZES[size], evaluation["classic"], evaluation["recipe"]
    print(f"### {size} size (dim {shape['dim']}, {shape['n_layers']} layers, {shape['n_heads']} heads, hidden "
          f"{shape['hidden_dim']}), random init\n")
    print(f"Subsampled to fit a short run: training {args.train_steps} timed Adafactor steps (after an untimed "
          f"warm-up step and the trainer's set-up) of {args.batch_size} windows "
          f"from `{args.train_data.name}` (its own labels), the batches at evenly spaced width quantiles of one epoch "
          f"of each setup's sampler; evaluation on {recipe['questions']} of {total_questions:,} questions of "
          f"`{args.data.name}` ({recipe['windows']} windows, batch {args.eval_batch_size}), each run in a fresh "
          "process.\n")
    print("\n".join(size_table(setups, train_seconds, evaluation, args)))
    for key, answer in classic["answers"].items():
        if recipe["answers"][key] != answer:
            print(f"- {key}: classic {answer!r} (null odds {classic['null_odds'][key]:.5f}), recipe "
                  f"{recipe['answers'][key]!r} (null odds {recipe['null_odds'][key]:.5f})")
    print(flush=True)


def run_benchmark(args: argparse.Namespace, tokenizer_folder: Path, workdir: Path) -> None:
    """Measure every requested model size and print its table as soon as it is done."""
    questions, total_questions = write_question_sample(args.data, args.max_examples, args.seed, workdir)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs (load average {load_average()} at the start), "
          f"torch threads {args.threads}; device {device}; torch {torch.__version__}, transformers "
          f"{transformers.__version__}, datasets {datasets.__version__}, Python {platform.python_version()}.")
    print(f"Precision {'bf16 autocast' if args.bf16 else 'fp32'}, attention "
          f"{args.attn_implementation or 'sdpa (recipe default)'}, torch.compile "
          f"{'on' if args.torch_compile else 'off'}; best of {args.repeats} runs in alternating order. Peak RSS is "
          "the kernel's high-water mark (VmHWM) of the evaluation process, reset just before evaluating; the row "
          "below it subtracts the RSS the process had with libraries, model and data loaded.\n")
    for size in args.sizes:
        model_dir = save_random_model(PointerDistilBertForQuestionAnswering, MODEL_SIZES[size], tokenizer_folder,
                                      args.seed, workdir / size / "model")
        evaluation = compare_evaluation(model_dir, questions, workdir / size / "eval", args)
        setups = [prepare_training(name, flags, model_dir, workdir / size / "train", args)
                  for name, flags in training_setups()]
        print_size_report(size, setups, compare_training(setups, args), evaluation, total_questions, args)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet_libraries()
    with tempfile.TemporaryDirectory() as workdir:
        try:
            run_benchmark(args, tokenizer_dir(args.tokenizer), Path(workdir))
        except DataFormatError as error:
            raise SystemExit(f"bench_speed.py: {error}") from None


if __name__ == "__main__":
    main()
