"""Benchmark: training-step time of the answer-pointer head, with and without the answer verifier, against the linear
head on the same DistilBERT encoder.

One step is forward, backward and an Adafactor update with the recipe's settings (lr 1e-4 fixed, no parameter
scaling, no relative step, no warm-up init). Both models live in one process and run the same padded random batch;
repeats alternate which head goes first so that slow drifts of a shared machine hit both alike. Prints a markdown
table with median and minimum wall ms/step, median CPU ms/step (all threads of this process, less disturbed than wall
time when other jobs share the cores), the pointer/linear ratios, the overhead and the parameter counts.

    python bench/bench_head.py [--seq-len 384] [--batch-size 8] [--repeats 6] [--threads N] [--dim 768] [--layers 6]
"""

import argparse
import statistics
import time
from typing import NamedTuple

import torch
from machine import cpu_name, load_average, use_repository_offline  # noqa: E402  (before the project imports)

ROOT = use_repository_offline()

import transformers  # noqa: E402
from transformers.optimization import Adafactor  # noqa: E402

from modeling_pointer_distilbert import PointerDistilBertConfig, PointerDistilBertForQuestionAnswering  # noqa: E402

VOCAB_SIZE = 30522
HEAD_DIM = 64


class StepTime(NamedTuple):
    """One training step's duration: wall clock, and CPU time of this process (all its threads)."""

    wall_ms: float
    cpu_ms: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Returns the command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq-len", type=int, default=384, help="tokens per feature (the recipe's max_seq_length)")
    parser.add_argument("--batch-size", type=int, default=8, help="features per training step")
    parser.add_argument("--repeats", type=int, default=6, help="timed steps per head, after one warm-up step each")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch CPU threads; on cores shared with other jobs, 1 thread gives the steadiest ratios",
    )
    parser.add_argument("--dim", type=int, default=768, help=f"encoder width; heads = dim / {HEAD_DIM}")
    parser.add_argument("--layers", type=int, default=6, help="encoder layers")
    args = parser.parse_args(argv)
    if args.dim % HEAD_DIM:
        parser.error(f"--dim {args.dim} must be a multiple of {HEAD_DIM} (the attention head width)")
    return args


def build_model(
    args: argparse.Namespace, qa_head: str, answer_verifier: bool = False
) -> PointerDistilBertForQuestionAnswering:
    """Returns a randomly initialised distilbert-base-sized model with the given head, in training mode."""
    torch.manual_seed(0)
    config = PointerDistilBertConfig(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=max(512, args.seq_len),
        dim=args.dim,
        hidden_dim=4 * args.dim,
        n_layers=args.layers,
        n_heads=args.dim // HEAD_DIM,
        qa_head=qa_head,
        answer_verifier=answer_verifier,
        verifier_standardization=answer_verifier,  # the verifier as run_qa.py builds it
    )
    return PointerDistilBertForQuestionAnswering(config).train()


def build_optimizer(model: torch.nn.Module) -> Adafactor:
    """Returns Adafactor with the recipe's settings."""
    return Adafactor(model.parameters(), lr=1e-4, scale_parameter=False, relative_step=False, warmup_init=False)


def random_batch(batch_size: int, seq_len: int) -> dict[str, torch.Tensor]:
    """Returns a right-padded batch with labels, like SQuAD features padded to max_length."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(seq_len // 2, seq_len + 1, (batch_size,), generator=generator)  # (batch,)
    attention_mask = (torch.arange(seq_len).unsqueeze(0) < lengths.unsqueeze(1)).long()  # (batch, seq_len)
    input_ids = torch.randint(1000, VOCAB_SIZE, (batch_size, seq_len), generator=generator) * attention_mask
    start_positions = (torch.rand(batch_size, generator=generator) * (lengths - 1)).long()  # (batch,)
    end_positions = torch.minimum(start_positions + 3, lengths - 1)  # (batch,)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "start_positions": start_positions,
        "end_positions": end_positions,
    }


def timed_train_step(model: torch.nn.Module, optimizer: Adafactor, batch: dict[str, torch.Tensor]) -> StepTime:
    """Returns the wall-clock and process CPU milliseconds of one forward, backward and optimizer step."""
    wall_started, cpu_started = time.perf_counter(), time.process_time()
    model(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    wall_seconds, cpu_seconds = time.perf_counter() - wall_started, time.process_time() - cpu_started
    return StepTime(wall_ms=wall_seconds * 1000, cpu_ms=cpu_seconds * 1000)


def interleaved_step_times(runs: dict, batch: dict[str, torch.Tensor], repeats: int) -> dict[str, list[StepTime]]:
    """Returns each head's step times; one warm-up step each first, then repeats that swap the order every time."""
    for model, optimizer in runs.values():
        timed_train_step(model, optimizer, batch)
    times = {name: [] for name in runs}
    order = list(runs)
    for _ in range(repeats):
        for name in order:
            times[name].append(timed_train_step(*runs[name], batch))
        order.reverse()
    return times


def parameter_count(module: torch.nn.Module) -> int:
    """Returns the number of parameters of `module`."""
    return sum(parameter.numel() for parameter in module.parameters())


def head_parameter_count(model: PointerDistilBertForQuestionAnswering) -> int:
    """Returns the number of parameters outside the encoder (span head and verifier)."""
    return parameter_count(model) - parameter_count(model.distilbert)


def paired_ratio(step_times: list[float], baseline_times: list[float]) -> float:
    """Returns the median over repeats of a step time divided by the baseline step run right beside it.

    Load from other processes drifts over minutes, so neighbouring steps share it and it cancels in the ratio.
    """
    return statistics.median(time / baseline for time, baseline in zip(step_times, baseline_times))


def results_table(times: dict[str, list[StepTime]], head_parameters: dict[str, int]) -> str:
    """Returns the markdown table: wall ms/step (median, min), CPU ms/step and the ratios to the linear head."""
    baseline_wall = [step.wall_ms for step in times["linear"]]
    baseline_cpu = [step.cpu_ms for step in times["linear"]]
    lines = [
        "| head | head parameters | median ms/step | min ms/step | median CPU ms/step | ratio to linear "
        "| ratio to linear (min) | ratio to linear (CPU) | overhead |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, steps in times.items():
        wall, cpu = [step.wall_ms for step in steps], [step.cpu_ms for step in steps]
        wall_ratio = paired_ratio(wall, baseline_wall)
        lines.append(
            f"| {name} | {head_parameters[name]:,} | {statistics.median(wall):.0f} | {min(wall):.0f} "
            f"| {statistics.median(cpu):.0f} | {wall_ratio:.3f} | {min(wall) / min(baseline_wall):.3f} "
            f"| {paired_ratio(cpu, baseline_cpu):.3f} | {100 * (wall_ratio - 1):+.1f}% |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Times both heads and prints the machine, the setup and the results table."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    models = {
        "linear": build_model(args, "linear"),
        "pointer": build_model(args, "pointer"),
        "pointer + verifier": build_model(args, "pointer", answer_verifier=True),
    }
    runs = {name: (model, build_optimizer(model)) for name, model in models.items()}
    batch = random_batch(args.batch_size, args.seq_len)

    times = interleaved_step_times(runs, batch, args.repeats)

    head_parameters = {name: head_parameter_count(model) for name, model in models.items()}
    encoder_parameters = parameter_count(models["linear"].distilbert)
    print(
        f"Training step (forward, backward, Adafactor) on {cpu_name()}, {args.threads} threads; torch "
        f"{torch.__version__}, transformers {transformers.__version__}.\n"
        f"Encoder: dim {args.dim}, {args.layers} layers, {args.dim // HEAD_DIM} heads, {encoder_parameters:,} "
        f"parameters; batch {args.batch_size} x {args.seq_len} tokens (right-padded); {args.repeats} interleaved "
        f"repeats after one warm-up step each; load average {load_average()} at the end.\n"
        "Ratios are medians over repeats of each step against the linear step beside it; overhead is the wall ratio.\n"
    )
    print(results_table(times, head_parameters))


if __name__ == "__main__":
    main()
