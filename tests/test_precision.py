"""Every precision: the model trains and answers with float32, bf16 and fp16 weights and under autocast, a
half-precision start checkpoint trains in float32, a run picks its precision from the device, and data-parallel
training needs no search for unused parameters."""

import json
import logging
import pathlib

import pytest
import torch
from transformers import AutoModelForQuestionAnswering, DistilBertConfig, DistilBertForMaskedLM, pipeline
from transformers.optimization import Adafactor

import run_qa
import utils_qa
from cli_errors import UserError
from conftest import save_tiny_pointer_model
from modeling_pointer_distilbert import PointerDistilBertConfig, PointerDistilBertForQuestionAnswering

ROOT = pathlib.Path(__file__).resolve().parents[1]
HALF_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CLS, SEP, SENTENCE_END = 1, 2, 3
TINY_ENCODER = dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64,
                    dropout=0.0, attention_dropout=0.0, qa_dropout=0.0)
MATCHER = dict(answer_similarity=True, answer_similarity_weight=1.5, answer_similarity_center=0.2,
               sentence_token_ids={"cls": CLS, "sep": SEP, "sentence_ends": [SENTENCE_END]})
VERIFIER = dict(answer_verifier=True, verifier_standardization=True)
HEADS = {
    "pointer": dict(qa_head="pointer"),
    "linear": dict(qa_head="linear"),
    "pointer-verifier": dict(qa_head="pointer", **VERIFIER),
    "pointer-verifier-matcher": dict(qa_head="pointer", **VERIFIER, **MATCHER),
    "linear-verifier-matcher": dict(qa_head="linear", **VERIFIER, **MATCHER),
}
LABELS = {"start_positions": torch.tensor([6, 0, 7, 0]), "end_positions": torch.tensor([8, 0, 7, 0])}


def build_model(**settings) -> PointerDistilBertForQuestionAnswering:
    """Returns a tiny pointer model with seeded random weights, in training mode."""
    torch.manual_seed(0)
    return PointerDistilBertForQuestionAnswering(PointerDistilBertConfig(**TINY_ENCODER, **settings)).train()


def sentence_batch() -> dict[str, torch.Tensor]:
    """Returns 4 right-padded windows `[CLS] question [SEP] sentence. sentence. [SEP]` of random words."""
    generator = torch.Generator().manual_seed(0)
    rows = []
    for length in (20, 16, 12, 20):
        words = torch.randint(SENTENCE_END + 1, TINY_ENCODER["vocab_size"], (length,), generator=generator)
        words[[3]] = SEP  # question: tokens 1-2
        words[[8, length - 2]] = SENTENCE_END
        words[0], words[-1] = CLS, SEP
        rows.append(words)
    input_ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)  # (batch, seq_len)
    return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long()}


def on_device(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {name: tensor.to(device) for name, tensor in batch.items()}


def train_steps(model: PointerDistilBertForQuestionAnswering, device: str = "cpu", steps: int = 4) -> list[float]:
    """Returns the losses of `steps` steps of Adafactor (as the recipe sets it up, at a learning rate that moves bf16
    weights) on the sentence batch, asserting that every step's logits and loss are float32 and finite."""
    optimizer = Adafactor(model.parameters(), lr=1e-2, scale_parameter=False, relative_step=False, warmup_init=False)
    losses = []
    for _ in range(steps):
        output = model(**on_device(sentence_batch(), device), **on_device(LABELS, device))
        assert output.start_logits.dtype == output.end_logits.dtype == output.loss.dtype == torch.float32
        assert torch.isfinite(output.loss)
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(output.loss.item())
    return losses


def assert_autocast_close_to_float32(model: PointerDistilBertForQuestionAnswering, device: str, dtype: torch.dtype):
    """Asserts that under `dtype` autocast the model's logits are float32 and close to its float32 logits."""
    batch = on_device(sentence_batch(), device)
    with torch.no_grad():
        exact = model(**batch)
        with torch.autocast(device, dtype=dtype):
            mixed = model(**batch)
    real = batch["attention_mask"] == 1
    for name in ("start_logits", "end_logits"):
        logits = getattr(mixed, name)[real]
        assert logits.dtype == torch.float32
        span_logits = getattr(mixed, name)[:, 1:][real[:, 1:]]  # the null logit also carries float32 additions
        assert not torch.equal(span_logits, span_logits.to(dtype).float())  # scored in float32, not in `dtype`
        torch.testing.assert_close(logits, getattr(exact, name)[real], atol=2e-2, rtol=2e-2)


# ----------------------------------------------------------------------------------------------------------------
# The model in every dtype
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", HEADS.values(), ids=HEADS.keys())
@pytest.mark.parametrize("dtype", HALF_DTYPES.values(), ids=HALF_DTYPES.keys())
def test_half_precision_weights_train_with_float32_logits_and_loss(settings, dtype):
    model = build_model(**settings).to(dtype)
    trainable = {name: parameter.detach().clone() for name, parameter in model.named_parameters()
                 if parameter.requires_grad}
    losses = train_steps(model)
    assert losses[-1] < losses[0]
    unchanged = [name for name, parameter in model.named_parameters()
                 if name in trainable and torch.equal(parameter, trainable[name])]
    assert unchanged == []
    assert all(parameter.dtype == dtype for parameter in model.parameters())


def test_half_precision_standardizer_keeps_learning_running_statistics():
    model = build_model(**VERIFIER).to(torch.bfloat16)
    standardizer = model.verifier.standardize
    model(**sentence_batch())
    assert standardizer.num_batches_tracked.item() == 1
    assert standardizer.running_mean.abs().sum() > 0 and standardizer.running_mean.dtype == torch.bfloat16
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(**sentence_batch()).start_logits).all()


@pytest.mark.parametrize("settings", HEADS.values(), ids=HEADS.keys())
@pytest.mark.parametrize("dtype", HALF_DTYPES.values(), ids=HALF_DTYPES.keys())
def test_autocast_gives_float32_logits_close_to_float32(settings, dtype):
    assert_autocast_close_to_float32(build_model(**settings).eval(), "cpu", dtype)


def test_fp16_autocast_with_a_gradient_scaler_trains_adafactor_and_skips_overflowing_steps():
    """The path of `--fp16` on a CUDA device without bf16: autocast, a scaled loss, unscaling, the Trainer's
    clipping, and a step that the scaler skips when the gradients overflow."""
    model = build_model(**HEADS["pointer-verifier"])
    optimizer = Adafactor(model.parameters(), lr=1e-2, scale_parameter=False, relative_step=False, warmup_init=False)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    losses = []
    for _ in range(4):
        with torch.autocast("cpu", dtype=torch.float16):
            loss = model(**sentence_batch(), **LABELS).loss
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    scale = scaler.get_scale()
    with torch.autocast("cpu", dtype=torch.float16):
        loss = model(**sentence_batch(), **LABELS).loss
    scaler.scale(loss * float("inf")).backward()
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() < scale
    assert all(torch.equal(parameter, before[name]) for name, parameter in model.named_parameters())


def sample_questions() -> tuple[list[str], list[str]]:
    """Returns the questions of data/sample_dev.json and their contexts."""
    document = json.loads((ROOT / "data" / "sample_dev.json").read_text(encoding="utf-8"))
    pairs = [(qa["question"], paragraph["context"]) for article in document["data"]
             for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    return [question for question, _ in pairs], [context for _, context in pairs]


def save_confident_model(folder: pathlib.Path, tokenizer) -> pathlib.Path:
    """Saves a tiny model with the recipe's default head whose logits spread like a trained model's: its key
    projection and verifier are scaled up, so null scores lie near -3 rather than -0.03 and rounding has something
    to move. Returns the folder."""
    save_tiny_pointer_model(folder, tokenizer, **VERIFIER)
    model = AutoModelForQuestionAnswering.from_pretrained(folder)
    with torch.no_grad():
        model.qa_outputs.key_proj.weight.mul_(100)
        model.verifier.classifier.weight.mul_(100)
    model.save_pretrained(folder)
    return folder


def median_threshold(qa, questions, contexts) -> float:
    """Returns the null-odds threshold at which `qa` abstains on about half of the questions (bisection)."""
    low, high = -50.0, 50.0
    for _ in range(14):
        middle = (low + high) / 2
        answers = qa(question=questions, context=contexts, handle_impossible_answer=True,
                     null_score_diff_threshold=middle)
        abstains_on_most = sum(found["answer"] == "" for found in answers) > len(answers) / 2
        low, high = (middle, high) if abstains_on_most else (low, middle)
    return (low + high) / 2


def assert_half_precision_answers_like_float32(model_dir: pathlib.Path, device: str) -> None:
    """Asserts that the pipeline with bf16 and with fp16 weights gives float32's answers to at least 95 % of the
    sample's questions, at a threshold where float32 abstains on about half of them."""
    questions, contexts = sample_questions()
    answers = {}
    for name, dtype in {"float32": torch.float32, **HALF_DTYPES}.items():
        qa = pipeline("question-answering", model=str(model_dir), trust_remote_code=True, dtype=dtype, device=device)
        assert qa.model.dtype == dtype
        if name == "float32":
            threshold = median_threshold(qa, questions, contexts)
        found = qa(question=questions, context=contexts, handle_impossible_answer=True,
                   null_score_diff_threshold=threshold)
        answers[name] = [answer["answer"] for answer in found]
    reference = answers["float32"]
    assert 0.3 < reference.count("") / len(reference) < 0.7
    assert len(set(reference)) > 10
    for name in HALF_DTYPES:
        agreement = sum(mine == theirs for mine, theirs in zip(answers[name], reference)) / len(reference)
        assert agreement >= 0.95, f"{name}: {agreement:.1%}"


def test_half_precision_pipeline_answers_the_sample_like_float32(tmp_path, tokenizer):
    assert_half_precision_answers_like_float32(save_confident_model(tmp_path, tokenizer), "cpu")


@pytest.mark.parametrize("start", ["distilbert", "pointer"])
def test_a_half_precision_start_checkpoint_trains_with_float32_weights(tmp_path, start):
    torch.manual_seed(0)
    if start == "distilbert":
        checkpoint = DistilBertForMaskedLM(DistilBertConfig(**TINY_ENCODER))
    else:
        checkpoint = build_model(**VERIFIER)
    checkpoint.to(torch.bfloat16).save_pretrained(tmp_path)
    model_args = run_qa.ModelArguments(model_name_or_path=str(tmp_path))
    model = run_qa.build_model(model_args, run_qa.load_base_config(model_args))
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float32}
    original = checkpoint.state_dict()
    for name, parameter in model.distilbert.state_dict().items():
        torch.testing.assert_close(parameter, original[f"distilbert.{name}"].float())


# ----------------------------------------------------------------------------------------------------------------
# The run's precision
# ----------------------------------------------------------------------------------------------------------------

AMPERE = utils_qa.DeviceCapabilities(cuda=True, cuda_bf16=True)
VOLTA = utils_qa.DeviceCapabilities(cuda=True, cuda_bf16=False)
CPU_ONLY = utils_qa.DeviceCapabilities(cuda=False, cuda_bf16=False)


@pytest.mark.parametrize(("bf16", "fp16", "use_cpu", "device", "launcher", "expected"), [
    (None, None, False, AMPERE, "no", "bf16"),
    (None, None, False, VOLTA, "no", "fp16"),
    (None, None, False, CPU_ONLY, "no", "float32"),
    (None, None, True, AMPERE, "no", "float32"),
    (False, None, False, AMPERE, "no", "float32"),
    (None, False, False, VOLTA, "no", "float32"),
    (None, True, False, AMPERE, "no", "fp16"),
    (True, None, True, CPU_ONLY, "no", "bf16"),
    (True, False, False, AMPERE, "no", "bf16"),
    (None, None, False, AMPERE, "fp16", "fp16"),
    (False, False, False, AMPERE, "fp16", "float32"),
])
def test_the_device_chooses_the_precision_unless_a_flag_or_the_launcher_says(bf16, fp16, use_cpu, device, launcher,
                                                                             expected):
    precision = utils_qa.choose_precision(bf16, fp16, use_cpu, device, launcher)
    assert precision.name == expected
    given = bf16 is not None or fp16 is not None
    assert ("--bf16/--fp16" in precision.reason) == given
    assert ("accelerate" in precision.reason) == (not given and launcher != "no")
    if not given and launcher == "no" and expected != "float32":
        assert "CUDA" in precision.reason and "float32" in precision.reason  # says how to turn it off


def test_argument_files_and_flags_tell_an_explicit_false_from_none(tmp_path, monkeypatch):
    monkeypatch.setattr(utils_qa.DeviceCapabilities, "detect", classmethod(lambda cls: CPU_ONLY))
    (tmp_path / "run.json").write_text(json.dumps({"model_name_or_path": "m", "bf16": False}))
    cases = {
        (str(tmp_path / "run.json"),): ("float32", "as --bf16/--fp16 ask"),
        ("--model_name_or_path", "m"): ("float32", "CPU run"),
        ("--model_name_or_path", "m", "--bf16", "--use_cpu", "true"): ("bf16", "as --bf16/--fp16 ask"),
        (str(tmp_path / "run.json"), "--bf16", "true", "--use_cpu", "true"): ("bf16", "as --bf16/--fp16 ask"),
    }
    for argv, (name, reason) in cases.items():
        training_args = run_qa.parse_arguments(list(argv))[2]
        assert training_args.precision.name == name and reason in training_args.precision.reason, argv
        assert (training_args.bf16, training_args.fp16) == (name == "bf16", name == "fp16")


def test_the_first_log_line_says_the_precision_and_why(tmp_path, monkeypatch, caplog):
    def stop(*_):
        raise RuntimeError("stop after logging the plan")

    monkeypatch.setattr(run_qa, "prepare_run", stop)
    with caplog.at_level(logging.INFO, logger="run_qa"), pytest.raises(RuntimeError, match="stop"):
        run_qa.main(["--model_name_or_path", "m", "--output_dir", str(tmp_path), "--use_cpu", "true"])
    messages = [record.getMessage() for record in caplog.records if record.name == "run_qa"]
    assert messages[0].startswith("Run: ") and messages[0].endswith("; precision float32 (CPU run; --bf16 true "
                                                                      "speeds it up on CPUs with AVX512-BF16 or AMX)")


# ----------------------------------------------------------------------------------------------------------------
# Scale-out
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", HEADS.values(), ids=HEADS.keys())
def test_every_trainable_parameter_gets_a_gradient_so_ddp_needs_no_unused_parameter_search(settings):
    model = build_model(**settings)
    model(**sentence_batch(), **LABELS).loss.backward()
    missing = [name for name, parameter in model.named_parameters()
               if parameter.requires_grad and parameter.grad is None]
    assert missing == []
    assert run_qa.parse_arguments(["--model_name_or_path", "m"])[2].ddp_find_unused_parameters is False


@pytest.mark.parametrize("launch", ["flag", "accelerate"])
def test_deepspeed_with_adafactor_is_refused_with_the_reason(launch, tmp_path, monkeypatch):
    argv = ["--model_name_or_path", "m", "--output_dir", str(tmp_path)]
    if launch == "flag":
        argv += ["--deepspeed", str(tmp_path / "zero2.json")]
    else:
        monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(UserError, match="1-D partitions, so Adafactor would lose its factored second moments"):
        run_qa.parse_arguments(argv)
