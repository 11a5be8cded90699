"""The GPU check: the CUDA tests, training throughput of the pointer model against stock DistilBERT, and a short
real-data run, written to one summary.md (and to $OUT where that variable is set).

    make gpu-carry   # here, with the recipe's environment and PyPI: what a GPU machine without network lacks
    make gpu-check   # there; bench/README.md says how to run it through a device session

The throughput part times training steps at distilbert-base size (random weights) of the recipe's default model
(pointer + verifier) and the stock `DistilBertForQuestionAnswering` under run_qa.py's trainer, with the same batches
of real window widths, in each precision and attention: the cost of the recipe's head, on a GPU and (`--parts
machine throughput --precisions float32`) on a CPU. `--tiny` runs every part at toy size on any machine (on a CPU the
CUDA tests skip, and the real-data run is left out): tests/test_gpu_check.py runs it, so it cannot rot.
"""

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import torch
from machine import ROOT, cpu_name, tokenizer_dir, use_repository_offline

use_repository_offline()

import bench_speed  # noqa: E402
import datasets  # noqa: E402
import transformers  # noqa: E402
from real_data import run_summary  # noqa: E402
from transformers import AutoTokenizer, DistilBertForQuestionAnswering, DistilBertModel  # noqa: E402

import run_qa  # noqa: E402
import utils_qa  # noqa: E402

# What `make gpu-carry` packs for a machine without network (an ignored folder that a device call carries).
CARRY = ROOT / ".gpu"
CARRIED_CHECKPOINT = CARRY / "minilm-distilbert"
CARRIED_DATA = CARRY / "data" / "squad_v2_sample_train.json"
SIZES = {"tiny": dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64), **bench_speed.MODEL_SIZES}
PRECISIONS = ("float32", "bf16")
ATTENTIONS = ("sdpa", "eager")
MODELS = ("stock", "pointer")
POINTER_FLOOR = 0.95  # pointer model's samples/s over the stock model's, same precision and attention
BF16_FLOOR = 2.0  # bf16 samples/s over float32's, pointer model with SDPA
# Fold 0, seed 42 of `configs/cpu_small.json` in bf16 on one CPU thread (bench/results/answer_similarity.md).
CPU_FOLD_0 = {"f1_over_no_answer": 7.8, "forced_f1": 57.3, "auc": 0.750, "train_minutes": "6.0–9.5 (per run)"}
REAL_DATA_RUN = ["--config", "configs/cpu_small.json", "--variants", "as-configured", "--seeds", "42",
                 "--folds-only", "0", "--parallel", "1", "--extra", "bf16=true", "--extra", "use_cpu=false"]
PARTS = {"machine": "Machine", "cuda-tests": "CUDA tests", "throughput": "Training throughput",
         "real-data": "Real data: fold 0 of configs/cpu_small.json"}  # command-line name -> summary section


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu-check", help="folder of summary.md")
    parser.add_argument("--data", type=Path, default=first_existing(CARRIED_DATA, ROOT.parent / "shared" / "data" /
                                                                    "squad_v2_sample_train.json"),
                        help="the 10 real SQuAD 2.0 articles of the real-data run (skipped when absent)")
    parser.add_argument("--start-checkpoint", type=Path,
                        default=first_existing(CARRIED_CHECKPOINT, ROOT / "build" / "minilm-distilbert"),
                        help="the converted MiniLM the real-data run starts from (skipped when absent)")
    parser.add_argument("--tiny", action="store_true",
                        help="toy sizes and no real-data run: minutes become seconds, on any machine")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="parts to run")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                        help="precisions of the throughput part (bf16 is emulated on a CPU without AVX512-BF16)")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch of the throughput part")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each throughput run")
    parser.add_argument("--pack", type=Path, metavar="CHECKPOINT",
                        help=f"save CHECKPOINT (the converted MiniLM) in float16 into {CARRIED_CHECKPOINT} and stop "
                        "(what `make gpu-carry` runs: float16 halves it to fit what a device call carries)")
    args = parser.parse_args(argv)
    if min(args.batch_size, args.steps) < 1:
        parser.error("--batch-size and --steps must be at least 1")
    return args


def first_existing(*paths: Path) -> Path:
    """Return the first of `paths` that exists, else the last."""
    return next((path for path in paths if path.exists()), paths[-1])


def uncased_tokenizer_dir() -> Path:
    """Return a folder with the uncased BERT vocabulary's tokenizer: the packed checkpoint's (a GPU machine may lack
    the MiniLM package), else the MiniLM package's."""
    return CARRIED_CHECKPOINT if (CARRIED_CHECKPOINT / "tokenizer.json").is_file() else tokenizer_dir()


def pack_checkpoint(source: Path, destination: Path) -> None:
    """Save the encoder checkpoint `source` and its tokenizer into `destination` with float16 weights."""
    DistilBertModel.from_pretrained(source, dtype=torch.float16).save_pretrained(destination)
    AutoTokenizer.from_pretrained(source).save_pretrained(destination)


# The parts of the summary: each returns its markdown lines and whether it passed.


def machine_part() -> tuple[list[str], bool]:
    """Return the machine, the library versions and the precision that run_qa.py chooses here."""
    device = utils_qa.DeviceCapabilities.detect()
    precision = utils_qa.choose_precision(None, None, False, device)
    gpu = "none"
    if device.cuda:
        properties = torch.cuda.get_device_properties(0)
        gpu = (f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB, compute capability "
               f"{properties.major}.{properties.minor}")
    return [
        f"- GPU: {gpu}",
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical CPUs",
        f"- torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}, datasets "
        f"{datasets.__version__}, Python {platform.python_version()}",
        f"- run_qa.py's precision here: {precision.name} ({precision.reason})",
    ], True


def cuda_tests_part(out: Path) -> tuple[list[str], bool]:
    """Run tests/test_gpu.py in its own process; return its outcome line, any failure, and whether all passed."""
    command = [sys.executable, "-m", "pytest", "-q", "-rfEs", "tests/test_gpu.py"]
    process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    log = process.stdout + process.stderr
    (out / "cuda-tests.log").write_text(log)
    lines = log.strip().splitlines()
    reported = [line for line in lines if line.startswith(("FAILED", "ERROR", "SKIPPED"))]
    return [f"`{' '.join(command[2:])}`: **{lines[-1] if lines else 'no output'}** (log: cuda-tests.log)", "",
            *(f"- {line}" for line in reported[:20])], process.returncode == 0


def throughput_part(args: argparse.Namespace, workdir: Path) -> tuple[list[str], bool]:
    """Return the throughput table of both models in each precision and attention, and the floors' rows."""
    size = "tiny" if args.tiny else "distilbert-base"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch_size, steps = (4, 2) if args.tiny else (args.batch_size, args.steps)
    speed_args = bench_speed.parse_args(["--device", device, "--batch-size", str(batch_size), "--train-steps",
                                         str(steps), "--tokenizer", str(uncased_tokenizer_dir())])
    # An encoder alone, as the headline run starts: run_qa.py builds its default head on it, the stock model its own.
    model_dir = bench_speed.save_random_model(DistilBertModel, SIZES[size], Path(speed_args.tokenizer), 0,
                                              workdir / "encoder")
    setup = bench_speed.prepare_training("recipe", [], model_dir, workdir / "features", speed_args)
    timed_rows = setup.features.select(range(bench_speed.WARMUP_STEPS * batch_size, len(setup.features)))
    tokens = sum(len(ids) for ids in timed_rows["input_ids"])
    runs = {}  # (model, precision, attention) -> (samples/s, tokens/s, peak GiB or None)
    for attention in ATTENTIONS:
        for precision in args.precisions:
            for model in MODELS:
                flags = ["--bf16", str(precision == "bf16").lower(), "--attn_implementation", attention]
                seconds, memory = training_rate(model, setup, flags, model_dir, device)
                runs[model, precision, attention] = (steps * batch_size / seconds, tokens / seconds, memory)
    shape = SIZES[size]
    description = (f"{size} size (dim {shape['dim']}, {shape['n_layers']} layers, {shape['n_heads']} heads), random "
                   f"weights; batch {batch_size}, {steps} timed steps after {bench_speed.WARMUP_STEPS} untimed, "
                   "windows of `data/squad_v2_real_sample.json` at evenly spaced width quantiles (padded widths "
                   f"{', '.join(map(str, setup.timed_widths))}), Adafactor, run_qa.py's trainer for both models; the "
                   "pointer model is the recipe's default head (pointer + verifier). float32 is without TF32.")
    elsewhere = " (the floors are meant for distilbert-base on a GPU)" if args.tiny or device == "cpu" else ""
    return [description, "", *throughput_table(runs), "", f"Floors{elsewhere}:", "", *floors_table(runs)], True


def throughput_table(runs: dict) -> list[str]:
    """Return the markdown table of every run, with the pointer model's rate over the stock model's beside it."""
    lines = ["| model | precision | attention | samples/s | tokens/s | peak memory (GiB) | pointer / stock |",
             "|---|---|---|---:|---:|---:|---:|"]
    for (model, precision, attention), (samples, tokens, memory) in runs.items():
        ratio = f"{samples / runs['stock', precision, attention][0]:.3f}" if model == "pointer" else ""
        peak = "—" if memory is None else f"{memory:.2f}"
        lines.append(f"| {model} | {precision} | {attention} | {samples:,.1f} | {tokens:,.0f} | {peak} | {ratio} |")
    return lines


def floors_table(runs: dict) -> list[str]:
    """Return the markdown table of the floors the throughput is held to, measured and met or not."""
    rows = [(f"pointer ≥ {POINTER_FLOOR}× stock, {precision}, {attention}",
              runs["pointer", precision, attention][0] / runs["stock", precision, attention][0], POINTER_FLOOR)
            for precision in PRECISIONS for attention in ATTENTIONS if ("pointer", precision, attention) in runs]
    if ("pointer", "bf16", "sdpa") in runs and ("pointer", "float32", "sdpa") in runs:
        rows.append((f"bf16 ≥ {BF16_FLOOR}× float32, pointer, sdpa",
                     runs["pointer", "bf16", "sdpa"][0] / runs["pointer", "float32", "sdpa"][0], BF16_FLOOR))
    return ["| floor | measured | met |", "|---|---:|---|"] + [
        f"| {name} | {measured:.3f} | {'yes' if measured >= floor else '**no**'} |" for name, measured, floor in rows]


def training_rate(model: str, setup, flags: list[str], model_dir: Path, device: str) -> tuple[float, float | None]:
    """Return the seconds of the timed steps and the peak GPU memory (GiB; None on a CPU) of one model's run."""
    argv = setup.argv + flags
    trainer = (bench_speed.build_run(argv, setup.features)[0] if model == "pointer"
               else stock_trainer(argv, setup.features, model_dir))
    gc.collect()  # earlier runs' models and optimizers out of the peak
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    seconds = bench_speed.timed_training(trainer, device, bench_speed.WARMUP_STEPS)
    return seconds, torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def stock_trainer(argv: list[str], features, model_dir: Path):
    """Return `DistilBertForQuestionAnswering` on `model_dir`'s encoder in run_qa.py's trainer, with the arguments,
    collator and batches the pointer model gets."""
    model_args, data_args, training_args = run_qa.parse_arguments(argv)
    stock = DistilBertForQuestionAnswering.from_pretrained(
        model_dir, attn_implementation=model_args.attn_implementation, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    settings = run_qa.resolve_qa_settings(data_args, None, version_2=True, training=True)
    trainer = run_qa.build_trainer(stock, tokenizer, {}, {"train": features}, settings, data_args, training_args)
    return bench_speed.without_printing(trainer)


def real_data_part(args: argparse.Namespace, out: Path) -> tuple[list[str], bool]:
    """Run fold 0 of bench/real_data.py with configs/cpu_small.json in bf16 here; return it beside the CPU's run."""
    if args.tiny:
        return ["Skipped with --tiny: the run trains for minutes."], True
    missing = [path for path in (args.data, args.start_checkpoint) if not path.exists()]
    if missing:
        return [f"Skipped: {', '.join(map(str, missing))} not found. `make gpu-carry` packs the data file "
                f"(../shared/data/squad_v2_sample_train.json) and the converted MiniLM into {CARRY.name}/, which a "
                "device call carries (bench/README.md)."], True
    folder = out / "real-data"
    command = [sys.executable, "bench/real_data.py", *REAL_DATA_RUN, "--data", str(args.data), "--model",
               str(args.start_checkpoint), "--output-dir", str(folder)]
    with (out / "real-data.log").open("w") as log:
        process = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if process.returncode != 0:
        return [f"`{' '.join(command[1:])}` failed (exit {process.returncode}); see real-data.log"], False
    run = folder / "as-configured" / "fold-0" / "seed-42"
    metrics = json.loads((run / "model" / "all_results.json").read_text())
    found = run_summary(metrics, json.loads((run / "arguments.json").read_text()))
    return [
        f"`python {' '.join(command[1:])}` (start checkpoint stored in float16 to travel, trained in float32 "
        "weights under bf16 autocast; the CPU runs started from the float32 checkpoint). Gain = F1 at the shipped "
        "threshold minus the fold's no-answer share.", "",
        "| run | gain | forced HasAns F1 | null-odds AUC | training minutes |", "|---|---:|---:|---:|---:|",
        f"| this GPU, bf16 | {found['f1_over_no_answer']:+.1f} | {found['forced_f1']:.1f} | {found['auc']:.3f} | "
        f"{found['train_minutes']:.1f} |",
        f"| CPU, bf16, one thread (bench/results/answer_similarity.md) | {CPU_FOLD_0['f1_over_no_answer']:+.1f} | "
        f"{CPU_FOLD_0['forced_f1']:.1f} | {CPU_FOLD_0['auc']:.3f} | {CPU_FOLD_0['train_minutes']} |",
    ], True


def run_part(part, *args) -> tuple[list[str], bool]:
    """Return a part's lines and outcome; a part that raises is reported with its traceback, and the rest still run."""
    try:
        return part(*args)
    except Exception:  # the summary must say what broke, and the other parts still run on the one device call
        return ["FAILED:", "", "```", *traceback.format_exc(limit=-6).splitlines(), "```"], False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pack:
        pack_checkpoint(args.pack, CARRIED_CHECKPOINT)
        return 0
    bench_speed.quiet_libraries()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = args.out / "work"
    parts = {
        "machine": (machine_part,),
        "cuda-tests": (cuda_tests_part, args.out),
        "throughput": (throughput_part, args, workdir),
        "real-data": (real_data_part, args, args.out),
    }
    sections, all_passed = ["# GPU check" + (" (--tiny)" if args.tiny else ""), ""], True
    for name in args.parts:
        part, *part_args = parts[name]
        print(f"gpu_check: {PARTS[name]}", flush=True)
        lines, passed = run_part(part, *part_args)
        sections += [f"## {PARTS[name]}", "", *lines, ""]
        all_passed &= passed
    shutil.rmtree(workdir, ignore_errors=True)
    (args.out / "summary.md").write_text("\n".join(sections))
    returned = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    if returned is not None and returned.resolve() != args.out.resolve():
        for name in ("summary.md", "cuda-tests.log", "real-data.log"):
            if (args.out / name).is_file():
                shutil.copy(args.out / name, returned / name)
    print("\n".join(sections))
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
