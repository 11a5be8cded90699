#!/usr/bin/env python
"""Fine-tune a pointer-network DistilBERT for extractive question answering (SQuAD 1.1 / 2.0) with Adafactor.

`accelerate launch run_qa.py --model_name_or_path distilbert-base-uncased` trains on SQuAD 2.0 from the Hub,
evaluates, and writes everything to out/distilbert-base-uncased-squad_v2. Every flag of Hugging Face's
`examples/pytorch/question-answering/run_qa.py` keeps its name and meaning (`arguments_qa.py`, which also reads
argument files); each step of a run is one named function, read in `main()`.
"""

import logging
import os
import sys
from functools import partial
from pathlib import Path

import datasets
import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, DataCollatorWithPadding, default_data_collator, set_seed
from transformers.trainer_utils import get_last_checkpoint

from arguments_qa import HEAD_DEFAULTS, DataTrainingArguments, ModelArguments, QATrainingArguments, parse_arguments
from cli_errors import UserError, run_command
from modeling_pointer_distilbert import PointerDistilBertConfig, PointerDistilBertForQuestionAnswering
from report_qa import CardData, without_loading_state, write_figures
from trainer_qa import QuestionAnsweringTrainer
from utils_qa import (
    FLAG_DEFAULTS,
    DataFormatError,
    QASettings,
    align_answers,
    article_keys,
    cpu_flags,
    has_unanswerable,
    load_qa_datasets,
    prepare_eval_features,
    prepare_train_features,
    references_from_dataset,
    resolve_settings,
    split_calibration_articles,
)

logger = logging.getLogger(__name__)


def run_plan(model_args: ModelArguments, data_args: DataTrainingArguments, training_args) -> str:
    """Return one sentence saying what this run does, with which model and data, where its outputs go, and in which
    precision (`choose_precision`) and why."""
    steps = [name for name, asked in (("train", training_args.do_train), ("evaluate", training_args.do_eval),
                                      ("predict", training_args.do_predict)) if asked]
    files = [f"{name}={path}" for name, path in (("train", data_args.train_file), ("validation",
             data_args.validation_file), ("test", data_args.test_file)) if path]
    data = ", ".join(([f"Hub dataset {data_args.dataset_name}"] if data_args.dataset_name else []) + files)
    return (f"{' and '.join(steps) or 'nothing to do'}: {model_args.model_name_or_path} on {data}; "
            f"outputs in {training_args.output_dir}; precision {training_args.precision.name} "
            f"({training_args.precision.reason})")


def warn_about_slow_bf16(training_args: QATrainingArguments, flags: set[str] | None) -> None:
    """Warn when bf16 is asked of a CPU whose `flags` lack bf16 instructions (AVX512-BF16, AMX, Arm's BF16): it is
    emulated there, about ten times slower than float32. Unknown flags (None) give no warning."""
    on_cpu = training_args.use_cpu or not torch.cuda.is_available()
    native = flags is None or bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    if training_args.bf16 and on_cpu and not native:
        logger.warning("bf16 on a CPU without AVX512-BF16 or AMX runs emulated and far slower than float32: "
                       "pass --bf16 false on this machine (lscpu lists the CPU's flags)")


def setup_logging(training_args: QATrainingArguments) -> None:
    """Log to stdout on the main process at the level `--log_level` asks for, quietly elsewhere. Without --log_level
    the libraries stay at their own level and the recipe's loggers say at INFO what the run does."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    recipe_level = logging.INFO if training_args.log_level == "passive" else level
    for name in ("squad", "utils_qa", "trainer_qa", __name__):
        logging.getLogger(name).setLevel(recipe_level if training_args.should_log else logging.WARNING)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def load_data(data_args: DataTrainingArguments, model_args: ModelArguments, training_args) -> datasets.DatasetDict:
    """Return the splits this run needs, checked and trimmed to the requested sample counts."""
    files = dict(train_file=data_args.train_file, validation_file=data_args.validation_file,
                 test_file=data_args.test_file)
    try:
        raw = load_qa_datasets(dataset_name=data_args.dataset_name, dataset_config_name=data_args.dataset_config_name,
                               cache_dir=model_args.cache_dir, token=model_args.token, **files)
    except DataFormatError as error:
        if any(files.values()):
            raise
        raise UserError(f"{error}; `make demo` runs the recipe offline on the bundled sample") from None
    wanted = [  # (split, asked for, its --do flag, its file flag, sample limit)
        ("train", training_args.do_train, "--do_train", "--train_file", data_args.max_train_samples),
        ("validation", training_args.do_eval, "--do_eval", "--validation_file", data_args.max_eval_samples),
        ("test", training_args.do_predict, "--do_predict", "--test_file", data_args.max_predict_samples),
    ]
    splits = {}
    for split, asked, do_flag, file_flag, limit in wanted:
        if not asked:
            continue
        if split not in raw:
            raise UserError(f"{do_flag} needs a {split} split: give {file_flag} or a --dataset_name that has one")
        splits[split] = raw[split] if limit is None else raw[split].select(range(min(limit, len(raw[split]))))
    return datasets.DatasetDict(splits)


def resolve_version_2(requested: bool | None, raw: datasets.DatasetDict, saved_settings: dict | None) -> bool:
    """Return whether the data is SQuAD 2.0 style, refusing a flag that contradicts the labelled data. Without
    labelled data (prediction only) the flag decides, else the model's saved settings."""
    labelled = [raw[split] for split in ("train", "validation") if split in raw]
    if not labelled:
        if requested is None and saved_settings:
            return bool(saved_settings.get("version_2_with_negative", False))
        return bool(requested)
    detected = any(has_unanswerable(dataset) for dataset in labelled)
    if requested is None:
        logger.info("version_2_with_negative=%s (detected from the data)", detected)
        return detected
    if requested != detected:
        found = "has unanswerable questions" if detected else "has no unanswerable question"
        raise UserError(f"--version_2_with_negative {requested} contradicts the data, which {found}: drop the flag "
                        f"to detect it, or pass --version_2_with_negative {detected}")
    return requested


def hold_out_calibration(raw: datasets.DatasetDict, data_args: DataTrainingArguments, training_args,
                         version_2: bool) -> datasets.DatasetDict:
    """Return the splits with a `calibration` split of whole training articles held out from training, when the
    shipped threshold is to be chosen on it (training SQuAD 2.0 data, no --null_score_diff_threshold given)."""
    wanted = (training_args.do_train and version_2 and data_args.calibration_fraction > 0
              and data_args.null_score_diff_threshold is None)
    if not wanted:
        return raw
    try:
        train, calibration, articles = split_calibration_articles(raw["train"], data_args.calibration_fraction,
                                                                  training_args.seed)
    except ValueError as error:  # a smoke run on a few questions of one article still trains
        logger.warning("No calibration split (%s); the model is saved with threshold 0", error)
        return raw
    logger.info("Calibration split: %d questions of %d held-out training article(s), training on the other %d",
                len(calibration), len(articles), len(train))
    return datasets.DatasetDict({**raw, "train": train, "calibration": calibration})


def resolve_qa_settings(data_args: DataTrainingArguments, saved_settings: dict | None, version_2: bool,
                        training: bool) -> QASettings:
    """Return this run's window, answer and threshold settings (`utils_qa.resolve_settings`: the flags, else the
    model's saved settings, else the defaults), or a UserError naming the settings that cannot make a window."""
    given = {name: getattr(data_args, name) for name in (*FLAG_DEFAULTS, "null_score_diff_threshold")}
    try:
        return resolve_settings(given, saved_settings, version_2, training)
    except ValueError as error:
        raise UserError(f"{error} (settings from the flags, then the model's qa_settings)") from None


def build_tokenizer(model_args: ModelArguments):
    """Return the fast tokenizer (offset mappings need it) of the checkpoint."""
    source = model_args.tokenizer_name or model_args.model_name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=model_args.trust_remote_code,
                                                  **hub_arguments(model_args))
    except (OSError, ValueError) as error:
        raise unreadable_checkpoint(source, "tokenizer", error) from None
    if not tokenizer.is_fast:
        raise UserError(f"{source} has no fast tokenizer; the recipe needs offset mappings, which only fast "
                        "tokenizers give: pass --tokenizer_name with a checkpoint that has tokenizer.json")
    return tokenizer


def unreadable_checkpoint(source: str, part: str, error: Exception) -> UserError:
    """Return the one-line error for a checkpoint part that cannot be read: a wrong path or Hub id, or no internet."""
    return UserError(f"cannot load the {part} of {source!r} ({error}); give a folder that holds it or a Hub id "
                     "reachable from here (offline, `make demo` shows the recipe on a local checkpoint)")


def hub_arguments(model_args: ModelArguments) -> dict:
    """Return the keyword arguments that every checkpoint download of this run shares."""
    return dict(cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token)


def load_base_config(model_args: ModelArguments):
    """Return the checkpoint's config (a DistilBERT or pointer-model config), or a UserError when unreadable."""
    source = model_args.config_name or model_args.model_name_or_path
    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=model_args.trust_remote_code,
                                          **hub_arguments(model_args))
    except (OSError, ValueError) as error:
        raise unreadable_checkpoint(source, "config", error) from None


def build_model(model_args: ModelArguments, base_config, tokenizer=None) -> PointerDistilBertForQuestionAnswering:
    """Return the pointer model: a pointer checkpoint with this run's loss weight, or a DistilBERT encoder with the head
    the arguments ask for (with `--answer_similarity`, a frozen copy of it matches sentences cut at `tokenizer` ids)."""
    source = model_args.config_name or model_args.model_name_or_path
    if base_config.model_type == "pointer_distilbert":
        # The head's shape is the checkpoint's; how this run weighs its loss is this run's.
        config = base_config
        config.null_span_loss_weight = model_args.null_span_loss_weight
    elif base_config.model_type == "distilbert":
        head = {name: getattr(model_args, name) for name in HEAD_DEFAULTS if name != "answer_similarity"}
        if model_args.answer_similarity:
            tokenizer = tokenizer or build_tokenizer(model_args)
            head.update(answer_similarity=True, sentence_token_ids=sentence_token_ids(tokenizer))
        config = PointerDistilBertConfig(**{**base_config.to_dict(), **head})
    else:
        raise UserError(f"{source} is a {base_config.model_type!r} checkpoint; the recipe builds on DistilBERT. For a "
                        f"BERT checkpoint run `python convert_bert_to_distilbert.py {source} converted/` and pass "
                        "converted/")
    if model_args.dropout is not None:
        config.dropout = config.attention_dropout = config.qa_dropout = model_args.dropout
    try:  # float32 master weights, whatever dtype the checkpoint was saved in
        model = PointerDistilBertForQuestionAnswering.from_pretrained(
            model_args.model_name_or_path, config=config, attn_implementation=model_args.attn_implementation,
            dtype=torch.float32, **hub_arguments(model_args),
        )
    except OSError as error:
        raise unreadable_checkpoint(model_args.model_name_or_path, "weights", error) from None
    if model.sentence_matcher is not None and base_config.model_type == "distilbert":
        model.sentence_matcher.copy_encoder(model.distilbert)
    return model


def sentence_token_ids(tokenizer) -> dict:
    """Return the ids the sentence matcher cuts windows with: [CLS], [SEP] and the sentence-ending punctuation."""
    ends = [tokenizer.convert_tokens_to_ids(mark) for mark in (".", "?", "!")]
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise UserError("--answer_similarity needs a tokenizer with [CLS] and [SEP] tokens")
    return {"cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id,
            "sentence_ends": [token for token in ends if token != tokenizer.unk_token_id]}


def make_features(raw: datasets.DatasetDict, tokenizer, qa_settings: QASettings, data_args: DataTrainingArguments,
                  training_args) -> dict:
    """Return the tokenised features of each split: labelled windows for training, offset-mapped ones otherwise."""
    settings = dict(tokenizer=tokenizer, max_seq_length=qa_settings.max_seq_length, doc_stride=qa_settings.doc_stride,
                    max_query_length=qa_settings.max_query_length, pad_to_max_length=data_args.pad_to_max_length)
    features = {}
    for split, examples in raw.items():
        builder = prepare_train_features if split == "train" else prepare_eval_features
        if split == "train":
            examples, _ = align_answers(examples)
        with training_args.main_process_first(desc=f"{split} features"):
            features[split] = examples.map(
                partial(builder, **settings), batched=True, remove_columns=examples.column_names,
                num_proc=data_args.preprocessing_num_workers, load_from_cache_file=not data_args.overwrite_cache,
                desc=f"Tokenising {split} windows",
            )
        if split != "train":
            features[split] = sort_by_length(features[split])
        elif data_args.max_train_samples is not None:
            features[split] = features[split].select(range(min(data_args.max_train_samples, len(features[split]))))
    return features


def sort_by_length(features: datasets.Dataset) -> datasets.Dataset:
    """Return the features longest first, so each evaluation batch pads only to its own, similar lengths, and an
    out-of-memory error shows at the first batch. Post-processing finds windows by `example_id`: the order is free."""
    lengths = [len(ids) for ids in features["input_ids"]]
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    return features.select(order)


def build_trainer(model, tokenizer, raw, features, settings: QASettings, data_args, training_args
                  ) -> QuestionAnsweringTrainer:
    """Return the trainer wired with the collator, the evaluation examples and the answer settings."""
    collator = (default_data_collator if data_args.pad_to_max_length
                else DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8))
    return QuestionAnsweringTrainer(
        model=model, args=training_args, train_dataset=features.get("train"), eval_dataset=features.get("validation"),
        eval_examples=raw.get("validation"), processing_class=tokenizer, data_collator=collator,
        answer_settings=settings,
    )


def prepare_run(model_args: ModelArguments, data_args: DataTrainingArguments, training_args,
                train_features: datasets.Dataset | None = None
                ) -> tuple[QuestionAnsweringTrainer, datasets.DatasetDict, dict]:
    """Return (trainer, raw splits, features): config, data with its calibration split held out, settings, windows,
    model, and the trainer wired with them. `train_features` (benchmarks that time training on chosen windows)
    replaces the data steps: no split is loaded and the trainer trains on exactly those windows."""
    base_config = load_base_config(model_args)
    saved_settings = getattr(base_config, "qa_settings", None)
    raw = load_data(data_args, model_args, training_args) if train_features is None else datasets.DatasetDict()
    version_2 = resolve_version_2(data_args.version_2_with_negative, raw, saved_settings)
    raw = hold_out_calibration(raw, data_args, training_args, version_2)
    settings = resolve_qa_settings(data_args, saved_settings, version_2, training_args.do_train)
    tokenizer = build_tokenizer(model_args)
    if train_features is None:
        features = make_features(raw, tokenizer, settings, data_args, training_args)
    else:
        features = {"train": train_features}
    without_loading_state(tokenizer)  # saved with every checkpoint, and no call of it follows
    model = build_model(model_args, base_config, tokenizer)
    return build_trainer(model, tokenizer, raw, features, settings, data_args, training_args), raw, features


def run_training(trainer: QuestionAnsweringTrainer, training_args, calibration: tuple | None,
                 standard_errors: float) -> None:
    """Train (resuming from --resume_from_checkpoint or the last checkpoint in output_dir), choose the null-odds
    threshold on `calibration` (features, examples) if given, `standard_errors` clear of answering nothing, and save."""
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
        if checkpoint is not None:
            logger.info("Resuming from %s (found in --output_dir)", checkpoint)
    if getattr(trainer.model, "sentence_matcher", None) is not None and calibration is None:
        logger.warning("the answer similarity is weighed on a calibration split, and this run has none "
                       "(--calibration_fraction 0): the model will not use it")
    result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = dict(result.metrics, train_samples=len(trainer.train_dataset))
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    if calibration is not None:
        features, examples = calibration
        articles = len(set(article_keys(examples)))
        source = (f"calibration split: {len(examples)} questions of {articles} held-out training article(s), "
                  f"{standard_errors:g} standard errors")
        calibration_metrics = trainer.calibrate_null_threshold(features, examples, source, standard_errors)
        trainer.log_metrics("calibration", calibration_metrics)
        trainer.save_metrics("calibration", calibration_metrics)
    trainer.save_model()
    trainer.save_state()


def run_evaluation(trainer: QuestionAnsweringTrainer) -> None:
    """Evaluate the final model and save eval_results.json."""
    metrics = trainer.evaluate()
    metrics["eval_samples"] = len(trainer.eval_examples)
    metrics["eval_null_score_diff_threshold_source"] = trainer.answer_settings.null_score_diff_threshold_source
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)


def run_prediction(trainer: QuestionAnsweringTrainer, features, examples) -> None:
    """Predict answers for the test split and save predict_results.json (test_* metrics only when it has answers)."""
    output = trainer.predict(features, examples)
    metrics = dict(output.metrics, predict_samples=len(examples))
    metrics["test_null_score_diff_threshold_source"] = trainer.answer_settings.null_score_diff_threshold_source
    trainer.log_metrics("predict", metrics)
    trainer.save_metrics("predict", metrics)


def write_reports(trainer: QuestionAnsweringTrainer, model_args, data_args, training_args) -> None:
    """Write the figures and the model card, and push to the Hub when asked."""
    if trainer.is_world_process_zero():
        examples = trainer.eval_examples
        references = references_from_dataset(examples) if examples is not None else None
        write_figures(trainer.state.log_history, training_args.output_dir, references)
    card = dict(finetuned_from=model_args.model_name_or_path, card_data=card_data(data_args))
    if training_args.push_to_hub:
        trainer.push_to_hub(**card)
    else:
        trainer.create_model_card(**card)


def card_data(data_args: DataTrainingArguments) -> CardData:
    """Return how the model card names the data: the Hub id where a split came from the Hub, else the file's name."""
    hub = data_args.dataset_name
    training = Path(data_args.train_file).stem if data_args.train_file else hub
    evaluation = Path(data_args.validation_file).stem if data_args.validation_file else hub
    from_hub = hub is not None and not (data_args.train_file and data_args.validation_file)
    return CardData(training, evaluation, (hub,) if from_hub else ())


def end_run(trainer: QuestionAnsweringTrainer) -> None:
    """Close the trackers and the process group once nothing needs the other processes: `Trainer.end` from
    transformers 5.18 on, on 5.17 (which requirements.txt allows) the accelerator's call that `Trainer.end` runs."""
    if hasattr(trainer, "end"):
        trainer.end()
    else:
        trainer.accelerator.end_training()


def main(argv: list[str] | None = None) -> None:
    model_args, data_args, training_args = parse_arguments(sys.argv[1:] if argv is None else argv)
    setup_logging(training_args)
    warn_about_slow_bf16(training_args, cpu_flags())
    logger.info("Run: %s", run_plan(model_args, data_args, training_args))
    logger.debug("Training arguments:\n%s", training_args.to_json_string())
    set_seed(training_args.seed)
    trainer, raw, features = prepare_run(model_args, data_args, training_args)

    if training_args.do_train:
        calibration = (features["calibration"], raw["calibration"]) if "calibration" in raw else None
        run_training(trainer, training_args, calibration, data_args.calibration_standard_errors)
    if training_args.do_eval:
        run_evaluation(trainer)
    if training_args.do_predict:
        run_prediction(trainer, features["test"], raw["test"])
    if training_args.do_train or training_args.do_eval:
        write_reports(trainer, model_args, data_args, training_args)
    end_run(trainer)


if __name__ == "__main__":
    sys.exit(run_command(main, user_errors=(UserError, DataFormatError)))
