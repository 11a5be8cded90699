"""The command line of `run_qa.py`: the three argument dataclasses (whose help texts are its documentation), the
recipe's defaults, their checks, and argument files (`python run_qa.py configs/cpu_small.json --seed 43`: flags
after the file win over it).
"""

import argparse
import importlib.util
import inspect
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments

from cli_errors import UserError
from modeling_pointer_distilbert import QA_HEADS, PointerDistilBertConfig
from utils_qa import (
    FLAG_DEFAULTS,
    DeviceCapabilities,
    adafactor_options,
    check_window_settings,
    choose_precision,
    refuse_deepspeed_with_adafactor,
)

LOCAL_DATA_EXTENSIONS = (".json", ".jsonl", ".csv", ".parquet")
ARGUMENT_FILE_SUFFIXES = (".json", ".yaml", ".yml")
DATA_FLAGS = ("dataset_name", "train_file", "validation_file", "test_file")
DEFAULT_DATASET = "squad_v2"
FROM_MODEL = "Default: the value the model was saved with (config.json, qa_settings), else"
# The answer head's settings: the command line's defaults are the config class's, so a model built from flags and one
# built from `PointerDistilBertConfig()` are the same model.
HEAD_DEFAULTS = {name: parameter.default for name, parameter in
                 inspect.signature(PointerDistilBertConfig.__init__).parameters.items()
                 if name in ("qa_head", "answer_verifier", "verifier_standardization", "null_span_loss_weight",
                             "answer_similarity")}


def argument(default, help_text: str, **metadata):
    """Return a dataclass field that `HfArgumentParser` makes a flag: its default, its --help text and any further
    argparse settings (`choices`, `nargs`)."""
    return field(default=default, metadata={"help": help_text, **metadata})


@dataclass
class ModelArguments:
    """Which checkpoint to start from and which answer head to put on it."""

    model_name_or_path: str | None = argument(
        None, "A DistilBERT checkpoint (hub id such as distilbert-base-uncased, or a folder) to build the pointer "
        "model on, or a pointer-model checkpoint to continue from. BERT checkpoints: convert them first with "
        "convert_bert_to_distilbert.py.")
    config_name: str | None = argument(None, "Config to use instead of the checkpoint's.")
    tokenizer_name: str | None = argument(None, "Tokenizer to use instead of the checkpoint's.")
    cache_dir: str | None = argument(None, "Where to keep models downloaded from the Hub.")
    model_revision: str = argument("main", "Branch, tag or commit of the checkpoint.")
    token: str | None = argument(None, "Hub token for private checkpoints or datasets.")
    trust_remote_code: bool = argument(False, "Allow modeling code that lives next to the checkpoint on the Hub.")
    qa_head: str = argument(
        HEAD_DEFAULTS["qa_head"], "Answer head: 'pointer' (start-conditioned answer pointer) or 'linear' (stock "
        "baseline).", choices=QA_HEADS)
    answer_verifier: bool = argument(
        HEAD_DEFAULTS["answer_verifier"], "Add a has-answer classifier, trained with its own binary loss, whose "
        "no-answer logit joins the null score (see PointerDistilBertConfig); false gives the plain pointer head.")
    verifier_standardization: bool = argument(
        HEAD_DEFAULTS["verifier_standardization"], "Standardise the verifier's features over each batch (running "
        "statistics at inference): without it the verifier barely learns within a small budget.")
    null_span_loss_weight: float = argument(
        HEAD_DEFAULTS["null_span_loss_weight"], "Weight of the span loss on windows without an answer, against 1 for "
        "the others (the stock loss): below 1 the null pointer learns more slowly and the null odds lean to answering.")
    answer_similarity: bool = argument(
        HEAD_DEFAULTS["answer_similarity"], "Keep a frozen copy of the starting sentence encoder (such as the MiniLM "
        "of configs/cpu_small.json) and weigh how close the question comes to the window's closest sentence into the "
        "null odds, on the calibration split (--calibration_fraction above 0).")
    dropout: float | None = argument(
        None, "Dropout of the encoder (hidden states and attention weights) and of the answer head. Default: the "
        "checkpoint's own (0.1 for DistilBERT).")
    attn_implementation: str | None = argument(
        None, "Encoder attention: 'sdpa' (default where available), 'eager' or 'flash_attention_2'.")

    def __post_init__(self):
        if not self.model_name_or_path:
            raise ValueError("--model_name_or_path is required: a DistilBERT checkpoint or a folder run_qa.py saved")
        if self.qa_head not in QA_HEADS:
            raise ValueError(f"--qa_head must be one of {QA_HEADS}, got {self.qa_head!r}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout must be at least 0 and below 1, got {self.dropout}")


@dataclass
class DataTrainingArguments:
    """What data to train, evaluate and predict on, and how questions and contexts become features and answers."""

    dataset_name: str | None = argument(
        None, "Hub dataset, e.g. squad_v2 or squad (squad_v2 when no data flag is given).")
    dataset_config_name: str | None = argument(None, "Configuration of the hub dataset.")
    train_file: str | None = argument(None, "Training data: official SQuAD JSON, or flat json/jsonl/csv/parquet rows.")
    validation_file: str | None = argument(None, "Evaluation data, same formats.")
    test_file: str | None = argument(None, "Data to predict on (answers optional).")
    overwrite_cache: bool = argument(False, "Recompute cached features.")
    preprocessing_num_workers: int | None = argument(None, "Processes for tokenisation.")
    max_seq_length: int | None = argument(
        None, "Longest feature in tokens (question + context window + special tokens). "
        f"{FROM_MODEL} {FLAG_DEFAULTS['max_seq_length']}.")
    pad_to_max_length: bool = argument(
        False, "Pad every feature to max_seq_length. Default: pad each batch to its longest feature (a multiple of 8), "
        "which is faster and gives the same answers.")
    max_train_samples: int | None = argument(None, "Keep only this many training examples.")
    max_eval_samples: int | None = argument(None, "Keep only this many evaluation examples.")
    max_predict_samples: int | None = argument(None, "Keep only this many test examples.")
    version_2_with_negative: bool | None = argument(
        None, "SQuAD 2.0 style data with unanswerable questions. Detected from the data when not given; an explicit "
        "value that contradicts the data is an error.")
    null_score_diff_threshold: float | None = argument(
        None, "Predict no answer when null score - best span score exceeds this. Default: when training, the one "
        "chosen on the calibration split (--calibration_fraction), else the one the model was saved with, else 0.")
    calibration_fraction: float = argument(
        0.05, "Share of the training articles (at least two, one when fewer than six are given; at most a third) "
        "held out from training to choose the null-odds threshold the model is saved with. 0, or a "
        "--null_score_diff_threshold, turns it off and trains on every article (threshold 0, or the one given).")
    calibration_standard_errors: float = argument(
        2.0, "The saved threshold must beat answering nothing on the calibration split by this many standard errors "
        "(between its questions or between its articles, the larger), so that a gain within noise does not ship. 0 "
        "takes the threshold of best F1 there.")
    doc_stride: int | None = argument(
        None, f"Tokens shared by consecutive windows of a long context. {FROM_MODEL} {FLAG_DEFAULTS['doc_stride']}.")
    n_best_size: int | None = argument(
        None, f"Start and end candidates kept per window. {FROM_MODEL} {FLAG_DEFAULTS['n_best_size']}.")
    max_answer_length: int | None = argument(
        None, f"Longest answer in tokens. {FROM_MODEL} {FLAG_DEFAULTS['max_answer_length']}.")
    max_query_length: int | None = argument(
        None, f"Questions longer than this (tokens) are truncated. {FROM_MODEL} {FLAG_DEFAULTS['max_query_length']}.")

    def __post_init__(self):
        for flag in ("train_file", "validation_file", "test_file"):
            path = getattr(self, flag)
            if path is not None and not path.endswith(LOCAL_DATA_EXTENSIONS):
                raise ValueError(f"--{flag} {path}: use one of {', '.join(LOCAL_DATA_EXTENSIONS)}")
        check_window_settings(self.max_seq_length, self.doc_stride, self.max_query_length)
        if not 0 <= self.calibration_fraction < 1:
            raise ValueError(f"--calibration_fraction must be at least 0 and below 1, got {self.calibration_fraction}")
        if not self.calibration_standard_errors >= 0:
            raise ValueError(f"--calibration_standard_errors must be at least 0, got "
                             f"{self.calibration_standard_errors}")


def _default_report_to() -> list[str] | str:
    """TensorBoard when it is installed, as the recipe promises, otherwise nothing."""
    return ["tensorboard"] if importlib.util.find_spec("tensorboard") else "none"


@dataclass
class QATrainingArguments(TrainingArguments):
    """`TrainingArguments` with the recipe's defaults: Adafactor, evaluation by F1, TensorBoard logs, the precision the
    device suits (`choose_precision`)."""

    optim: str = argument("adafactor", "Optimizer; the recipe is tuned for Adafactor.")
    # bf16 and fp16 default to None (the device chooses); a bare flag still means true.
    bf16: bool | None = argument(
        None, "Train in bf16 mixed precision. Default: chosen by the device (see choose_precision): bf16 on a CUDA "
        "device that supports it, fp16 on one that does not, float32 on a CPU.", nargs="?", const=True)
    fp16: bool | None = argument(
        None, "Train in fp16 mixed precision with a gradient scaler. Default: chosen by the device, as for --bf16; "
        "either flag given decides alone.", nargs="?", const=True)
    ddp_find_unused_parameters: bool | None = argument(
        False, "Let DDP search every step for parameters without a gradient. Off: every trainable parameter of the "
        "model gets one each step, so the search would only cost time.")
    learning_rate: float = argument(
        1e-4, "Peak learning rate (Adafactor, no relative step). Small data needs more: the CPU argument files use "
        "3e-4.")
    layerwise_learning_rate_decay: float | None = argument(
        None, "The encoder layer k layers below the head learns at --learning_rate times this factor ** k (the top "
        "layer: k = 1; the embeddings: one below the bottom layer), e.g. 0.8. Default: every layer at --learning_rate.")
    warmup_steps: float = argument(0.1, "Warm-up steps, or a fraction of all steps if < 1.")
    num_train_epochs: float = argument(2.0, "Passes over the training features.")
    per_device_train_batch_size: int = argument(32, "Training batch size per device.")
    per_device_eval_batch_size: int = argument(64, "Evaluation batch size per device.")
    train_sampling_strategy: str = argument(
        "group_by_length", "Training order: 'group_by_length' (random batches of similar lengths, which pad less) or "
        "'random'.")
    metric_for_best_model: str | None = argument("f1", "Metric that picks the best checkpoint.")
    greater_is_better: bool | None = argument(True, "Whether a higher metric is better.")
    eval_do_concat_batches: bool = argument(
        False, "Keep evaluation logits per batch (at their own length) until the end.")
    report_to: None | str | list[str] = field(
        default_factory=_default_report_to,
        metadata={"help": "Loggers to report to (default: tensorboard if installed)."},
    )
    logging_steps: float = argument(50, "Log the training loss every this many steps.")

    def __post_init__(self):
        launched_with_deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true")
        refuse_deepspeed_with_adafactor(bool(self.deepspeed) or launched_with_deepspeed, self.optim)
        self.precision = choose_precision(self.bf16, self.fp16, self.use_cpu, DeviceCapabilities.detect(),
                                          os.environ.get("ACCELERATE_MIXED_PRECISION", "no"))
        self.bf16, self.fp16 = self.precision.name == "bf16", self.precision.name == "fp16"
        super().__post_init__()
        if self.optim == "adafactor":  # OptimizerNames is a str enum
            adafactor_options(self.optim_args)
        if self.layerwise_learning_rate_decay is not None and not 0 < self.layerwise_learning_rate_decay <= 1:
            raise ValueError(f"--layerwise_learning_rate_decay must be above 0 and at most 1, got "
                             f"{self.layerwise_learning_rate_decay}")


ARGUMENT_CLASSES = (ModelArguments, DataTrainingArguments, QATrainingArguments)


class CommandLineParser(HfArgumentParser):
    """The three argument groups' parser, whose command-line mistakes are one-line `UserError`s instead of the usage
    of some 200 flags (once per process under a launcher) before argparse's message."""

    def error(self, message: str):
        raise UserError(f"{message}; `python run_qa.py --help` lists every argument")


def parse_arguments(argv: list[str]) -> tuple[ModelArguments, DataTrainingArguments, QATrainingArguments]:
    """Return the three argument groups from the command line, or from a .json/.yaml argument file and the flags
    that follow it, with what the headline command leaves out filled in (`headline_defaults`). A value that the
    argument classes refuse is a `UserError` naming the argument file when there is one."""
    parser = CommandLineParser(ARGUMENT_CLASSES)
    from_file = bool(argv) and argv[0].endswith(ARGUMENT_FILE_SUFFIXES) and not argv[0].startswith("-")
    if from_file:
        values = {**read_argument_file(Path(argv[0])), **given_flags(parser, argv[1:])}
    else:
        values = vars(parser.parse_args(argv))
    try:
        return parser.parse_dict({**values, **headline_defaults(values)})
    except (ValueError, TypeError) as error:  # __post_init__ checks, unknown or missing keys in a file
        raise UserError(f"{argv[0]}: {error}" if from_file else str(error)) from None


def given_flags(parser: CommandLineParser, argv: list[str]) -> dict:
    """Return the flags `argv` sets, by name, converted by their types, even a value equal to the default (`--bf16
    false` over a file's `"bf16": true`): a namespace whose every name is already set leaves argparse no default to
    fill in."""
    unset = object()
    names = [field.name for group in ARGUMENT_CLASSES for field in fields(group)]
    namespace = parser.parse_args(argv, argparse.Namespace(**dict.fromkeys(names, unset)))
    return {name: value for name, value in vars(namespace).items() if value is not unset}


def read_argument_file(path: Path) -> dict:
    """Return the arguments held by a .json or .yaml file, or a UserError pointing into the file."""
    if not path.is_file():
        raise UserError(f"{path}: no such argument file; check the path")
    text = path.read_text(encoding="utf-8")
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: malformed YAML: {error}") from None
    if not isinstance(values, dict):
        raise UserError(f"{path}: expected a mapping of argument names to values, got {type(values).__name__}")
    return values


def headline_defaults(values: dict) -> dict:
    """Return what the headline command (`run_qa.py --model_name_or_path M`) leaves out: SQuAD 2.0 from the Hub, train
    and evaluate, a named output folder. Each applies only when its whole group is absent: any data flag, any --do_*
    flag or --output_dir keeps Hugging Face's meaning."""
    defaults = {}
    if not any(values.get(name) for name in DATA_FLAGS):
        defaults["dataset_name"] = DEFAULT_DATASET
    if not any(values.get(name) for name in ("do_train", "do_eval", "do_predict")):
        defaults.update(do_train=True, do_eval=True)
    if not values.get("output_dir"):
        defaults["output_dir"] = default_output_dir(values.get("model_name_or_path") or "model", {**values, **defaults})
    return defaults


def default_output_dir(model_name_or_path: str, values: dict) -> str:
    """Return `out/<model>-<data>`, e.g. out/distilbert-base-uncased-squad_v2 or out/minilm-distilbert-train."""
    data = next(values[name] for name in DATA_FLAGS if values.get(name))
    data_name = Path(data).name if data == values.get("dataset_name") else Path(data).stem
    return str(Path("out") / f"{Path(model_name_or_path.rstrip('/')).name}-{data_name}")
