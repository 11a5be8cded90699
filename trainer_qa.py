"""`QuestionAnsweringTrainer`: a `Trainer` whose evaluation speaks in answer texts and SQuAD scores."""

import logging
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from huggingface_hub import HfApi
from torch.utils.data import SequentialSampler
from transformers import Trainer
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_utils import PredictionOutput, speed_metrics

from utils_qa import (
    QASettings,
    adafactor_options,
    answer_similarity_scale,
    article_keys,
    calibrated_null_threshold,
    compute_squad_metrics,
    null_odds_auc,
    parameter_groups,
    references_from_dataset,
    select_answers,
    stack_logits,
    write_predictions,
)

logger = logging.getLogger(__name__)


class QuestionAnsweringTrainer(Trainer):
    """`Trainer` that post-processes span logits into answers, scores them and saves the prediction files. `evaluate`
    and `predict` take the tokenised features (what the model sees) and the raw examples (what the answers are cut
    from and scored against). Under DDP every process computes the same metrics; the main one writes files."""

    def __init__(self, *args, eval_examples=None, answer_settings: QASettings | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_examples = eval_examples
        self.use_answer_settings(answer_settings or QASettings())

    def use_answer_settings(self, settings: QASettings) -> None:
        """Answer with `settings` from now on: evaluation reads them here, the model (whose null score weighs the
        question–sentence similarity by them, and which saves them) from its `config.qa_settings`."""
        self.answer_settings = settings
        self.model.config.qa_settings = asdict(settings)

    def evaluate(self, eval_dataset=None, eval_examples=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """Return the SQuAD metrics of the evaluation set, prefixed with `metric_key_prefix` and logged."""
        features = self.eval_dataset if eval_dataset is None else eval_dataset
        examples = self.eval_examples if eval_examples is None else eval_examples
        metrics, _ = self._answer_and_score(self.get_eval_dataloader(features), features, examples, "Evaluation",
                                            ignore_keys, metric_key_prefix)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def predict(self, test_dataset, test_examples=None, ignore_keys=None, metric_key_prefix: str = "test"):
        """Return a `PredictionOutput` whose predictions are `{id: answer}`; metrics when the examples have answers.
        As in Hugging Face's run_qa.py the files are predict_*.json while the metric keys take `metric_key_prefix`."""
        if test_examples is None:
            raise ValueError("predict() needs the raw examples that `test_dataset` was built from (test_examples=...)")
        metrics, result = self._answer_and_score(self.get_test_dataloader(test_dataset), test_dataset, test_examples,
                                                 "Prediction", ignore_keys, metric_key_prefix, "predict")
        self.control = self.callback_handler.on_predict(self.args, self.state, self.control, metrics)
        return PredictionOutput(predictions=result.answers, label_ids=None, metrics=metrics)

    def create_optimizer(self, model=None):
        """Create the optimizer over the recipe's parameter groups (`parameter_groups`), with Adafactor's
        `--optim_args` applied (the stock Trainer passes none on to Adafactor)."""
        if self.optimizer is None:
            model = self.model if model is None else model
            optimizer_class, options = self.get_optimizer_cls_and_kwargs(self.args, model)
            if self.args.optim == "adafactor":  # OptimizerNames is a str enum
                options.update(adafactor_options(self.args.optim_args))
            groups = parameter_groups(model, self.get_decay_parameter_names(model), self.args.weight_decay,
                                      self.args.learning_rate, self.args.layerwise_learning_rate_decay)
            self.optimizer = optimizer_class(groups, **options)
        return self.optimizer

    def _get_eval_sampler(self, eval_dataset):
        """Keep evaluation windows in dataset order (logits are matched to features by position; run_qa sorted them by
        length), where the stock Trainer would group them by length under `train_sampling_strategy="group_by_length"`.
        Under several processes accelerate shards the sequential order and gathers it back; there is no public hook."""
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Run the stock prediction step without autograd bookkeeping (no graph, no version counters)."""
        with torch.inference_mode():
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    def save_model(self, output_dir: str | None = None, **kwargs) -> None:
        """Save as the stock Trainer does, but keep the training arguments as JSON instead of a pickle (the only
        non-safetensors file the Trainer writes): Hub users are warned about pickles; JSON says the same to a person."""
        super().save_model(output_dir, **kwargs)
        folder = Path(output_dir or self.args.output_dir)
        pickled = folder / TRAINING_ARGS_NAME
        if self.is_world_process_zero() and pickled.exists():
            (folder / "training_args.json").write_text(self.args.to_json_string(), encoding="utf-8")
            pickled.unlink()

    def push_to_hub(self, *args, **kwargs):
        """Push as the stock Trainer does, then delete the pickled `training_args.bin` that its checkpoint pushes add
        (with `torch.save`, right before uploading): the repository keeps them as training_args.json (`save_model`)."""
        commit = super().push_to_hub(*args, **kwargs)
        if self.is_world_process_zero():
            repository = dict(repo_id=self.hub_model_id, revision=self.args.hub_revision, token=self.args.hub_token)
            hub = HfApi()
            if hub.file_exists(filename=TRAINING_ARGS_NAME, **repository):
                hub.delete_file(TRAINING_ARGS_NAME, commit_message="Training arguments as JSON only", **repository)
        return commit

    def create_model_card(self, finetuned_from: str | None = None, card_data=None, **_stock_fields):
        """Write the recipe's model card (scores, settings, usage); `push_to_hub` calls this before uploading.
        `finetuned_from` is the model this run started from (default: the one it loaded); `card_data` (a
        `report_qa.CardData`) names the data as the card shows it."""
        if not self.is_world_process_zero():
            return
        from report_qa import CardData, how_it_answered, training_record, write_model_card

        record = training_record(self.args, self.state, finetuned_from or self.model.config.name_or_path)
        answered = how_it_answered(asdict(self.answer_settings), self.model.config.to_dict())
        model_id = self.args.hub_model_id or Path(self.args.output_dir).resolve().name
        write_model_card(self.args.output_dir, model_id, card_data or CardData(), record, answered)

    def calibrate_null_threshold(self, features, examples, source: str, standard_errors: float = 0.0
                                 ) -> dict[str, float]:
        """Set the answer settings' null-odds threshold to the one chosen on held-out `examples` and return their
        metrics at it (prefix `calibration_`). Their answers are written as `calibration_*.json`, so other ways of
        choosing can be replayed without training again."""
        dataloader = self.get_test_dataloader(features)
        references = references_from_dataset(examples)
        result, _ = self._answers(dataloader, features, examples, "Calibration", None, "calibration")
        if getattr(self.model, "sentence_matcher", None) is not None:
            result = self._weigh_answer_similarity(dataloader, features, examples, references, result)
        if self.is_world_process_zero():
            write_predictions(result, self.args.output_dir, prefix="calibration")
        articles = dict(zip(examples["id"], article_keys(examples)))
        threshold = calibrated_null_threshold(references, result.non_null_answers, result.null_odds, articles,
                                              standard_errors)
        self.use_answer_settings(replace(self.answer_settings, null_score_diff_threshold=threshold,
                                         null_score_diff_threshold_source=source))
        scores = compute_squad_metrics(references, result.non_null_answers, result.null_odds,
                                       null_odds_threshold=threshold, non_null_predictions=result.non_null_answers)
        logger.info("null-odds threshold %.4f chosen on the %s: F1 %.2f there (null-odds AUC %.3f)",
                    threshold, source, scores["f1"], scores["null_odds_auc"])
        keep = ("f1", "exact", "null_odds_auc", "forced_HasAns_f1", "total")
        return {f"calibration_{name}": scores[name] for name in keep if name in scores}

    def _weigh_answer_similarity(self, dataloader, features, examples, references, reader):
        """Give the model's answer similarity its weight in the null odds (`answer_similarity_scale`, from a pass with
        weight 1) and return the calibration answers with it; keep it out (weight 0) unless it separates the
        calibration questions better than the `reader`'s null odds alone."""
        def weigh(weight: float, center: float) -> None:
            self.use_answer_settings(replace(self.answer_settings, answer_similarity_weight=weight,
                                             answer_similarity_center=center))

        weigh(1.0, 0.0)
        probe, _ = self._answers(dataloader, features, examples, "Calibration (similarity)", None, "calibration")
        similarity = {q: reader.null_odds[q] - probe.null_odds[q] for q in reader.null_odds}
        weight, center = answer_similarity_scale(reader.null_odds, similarity)
        weigh(weight, center)
        combined, _ = self._answers(dataloader, features, examples, "Calibration (weighed)", None, "calibration")
        has_answer = {q: bool(golds) for q, golds in references.items()}
        reader_auc = null_odds_auc(reader.null_odds, has_answer)
        combined_auc = null_odds_auc(combined.null_odds, has_answer)
        if not combined_auc > reader_auc:
            weigh(0.0, 0.0)
            logger.info("answer similarity left out: null-odds AUC %.3f with it, %.3f without, on the calibration "
                        "split", combined_auc, reader_auc)
            return reader
        logger.info("answer similarity weighed %.4f (centre %.4f): null-odds AUC %.3f with it, %.3f without, on the "
                    "calibration split", weight, center, combined_auc, reader_auc)
        return combined

    def _answers(self, dataloader, features, examples, description, ignore_keys, prefix):
        """Run the model over `features` and turn its logits into answers; return (QAPredictions, loop output).
        Under several processes each first takes the main process's buffers (the verifier's running statistics),
        which DDP syncs only before a training step, so that every window is answered by the model that is saved."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer, src=0)
        output = self.evaluation_loop(dataloader, description=description, prediction_loss_only=False,
                                      ignore_keys=ignore_keys, metric_key_prefix=prefix)
        logits = stack_logits(output.predictions, len(features))
        settings = self.answer_settings
        result = select_answers(
            examples, features, logits, version_2_with_negative=settings.version_2_with_negative,
            n_best_size=settings.n_best_size, max_answer_length=settings.max_answer_length,
            null_score_diff_threshold=settings.null_score_diff_threshold,
        )
        return result, output

    def _answer_and_score(self, dataloader, features, examples, description, ignore_keys, prefix, files_prefix=None):
        """Run the model over `features`, turn logits into answers, score them, save files (named with `files_prefix`,
        default `prefix`); return (prefixed metrics, QAPredictions)."""
        start_time = time.time()
        result, output = self._answers(dataloader, features, examples, description, ignore_keys, prefix)
        settings = self.answer_settings
        if self.is_world_process_zero():
            write_predictions(result, self.args.output_dir, prefix=files_prefix or prefix)

        metrics = dict(output.metrics)
        if settings.version_2_with_negative:
            metrics[f"{prefix}_null_score_diff_threshold"] = settings.null_score_diff_threshold
        references = references_from_dataset(examples) if "answers" in examples.column_names else {}
        if any(references.values()):  # an unlabelled test file carries no gold answers to score against
            scores = compute_squad_metrics(
                references, result.answers, result.null_odds, settings.version_2_with_negative,
                null_odds_threshold=settings.null_score_diff_threshold, non_null_predictions=result.non_null_answers,
            )
            metrics.update({f"{prefix}_{name}": value for name, value in scores.items()})
            _log_hints(scores, settings)
        steps = math.ceil(len(features) / (self.args.eval_batch_size * self.args.world_size))
        metrics.update(speed_metrics(prefix, start_time, num_samples=len(examples), num_steps=steps))
        return metrics, result


def _log_hints(scores: dict, settings: QASettings) -> None:
    """Say which threshold the answers used and where it came from, next to the best one on this data; and in plain
    words when the spans are learned but the null odds do not tell answerable questions apart."""
    if "best_f1_thresh" in scores:
        logger.info(
            "F1 %.2f at null-odds threshold %.4f (%s); the best threshold on this data would give %.2f (at %.4f), "
            "an optimistic figure: choose thresholds on held-out training articles (--calibration_fraction)",
            scores["f1"], settings.null_score_diff_threshold, settings.null_score_diff_threshold_source,
            scores["best_f1"], scores["best_f1_thresh"],
        )
    if scores.get("null_odds_auc", 1.0) < 0.6:
        logger.warning(
            "null-odds AUC %.2f: the model finds answers (best non-null span: HasAns F1 %.1f) but cannot yet tell "
            "when to abstain; train for more epochs or on more data, with --answer_verifier on",
            scores["null_odds_auc"], scores.get("forced_HasAns_f1", float("nan")),
        )
