"""Tests of the pointer-network DistilBERT: config, heads, loss, outputs, checkpoints and Auto registration."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertForQuestionAnswering,
)

import modeling_pointer_distilbert
from modeling_pointer_distilbert import (
    PointerDistilBertConfig,
    PointerDistilBertForQuestionAnswering,
    window_segments,
)

TINY_ENCODER = dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64)
HEAD_SETTINGS = {
    "pointer": dict(qa_head="pointer"),
    "linear": dict(qa_head="linear"),
    "pointer-verifier": dict(qa_head="pointer", answer_verifier=True, null_span_loss_weight=0.3),
    "linear-verifier-standardized": dict(qa_head="linear", answer_verifier=True, verifier_standardization=True),
    "pointer-verifier-standardized": dict(qa_head="pointer", answer_verifier=True, verifier_standardization=True),
    "pointer-verifier-similarity": dict(qa_head="pointer", answer_verifier=True, answer_similarity=True,
                                        qa_settings={"answer_similarity_weight": 1.5, "answer_similarity_center": 0.2},
                                        sentence_token_ids={"cls": 1, "sep": 2, "sentence_ends": [3]}),
}
SERIALISATION_ONLY_FIELDS = {"transformers_version", "_name_or_path"}
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
LABELS = {"start_positions": torch.tensor([3, 0, 2]), "end_positions": torch.tensor([5, 0, 3])}


def build_model(**settings) -> PointerDistilBertForQuestionAnswering:
    """Returns a tiny model with seeded random weights, in eval mode: the plain pointer head unless `settings` add
    the verifier."""
    torch.manual_seed(0)
    config = PointerDistilBertConfig(**{**TINY_ENCODER, "answer_verifier": False, **settings})
    return PointerDistilBertForQuestionAnswering(config).eval()


def padded_batch() -> dict[str, torch.Tensor]:
    """Returns input_ids and attention_mask of 3 rows of 12 tokens, rows 2 and 3 right-padded."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1, TINY_ENCODER["vocab_size"], (3, 12), generator=generator)  # (batch, seq_len)
    attention_mask = torch.ones_like(input_ids)  # (batch, seq_len)
    attention_mask[1, 8:] = 0
    attention_mask[2, 4:] = 0
    input_ids[attention_mask == 0] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def config_fields(config: PointerDistilBertConfig) -> dict:
    """Returns the config's fields without those that only record where and how it was saved."""
    return {key: value for key, value in config.to_dict().items() if key not in SERIALISATION_ONLY_FIELDS}


def head_parameter_names(model: PointerDistilBertForQuestionAnswering) -> set[str]:
    """Returns the state-dict names of the answer head's parameters (span head and verifier)."""
    return {name for name, _ in model.named_parameters() if not name.startswith("distilbert.")}


def save_distilbert_checkpoint(directory: pathlib.Path) -> DistilBertForMaskedLM:
    """Returns a tiny DistilBertForMaskedLM after saving it in `directory` (the layout of distilbert-base-uncased)."""
    torch.manual_seed(1)
    masked_lm = DistilBertForMaskedLM(DistilBertConfig(**TINY_ENCODER))
    masked_lm.save_pretrained(directory)
    return masked_lm


def test_config_serialises_every_head_setting(tmp_path):
    PointerDistilBertConfig(**TINY_ENCODER).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "pointer_distilbert"
    head_settings = (saved["qa_head"], saved["answer_verifier"], saved["verifier_standardization"],
                     saved["null_span_loss_weight"], saved["answer_similarity"])
    assert head_settings == ("pointer", True, True, 1.0, False)
    assert not {"pointer_attention", "pointer_hidden_size", "verifier_loss_weight", "nonnull_loss_weight",
                "answer_similarity_weight"} & saved.keys(), "retired settings are not written"
    assert saved["qa_dropout"] == DistilBertConfig().qa_dropout


@pytest.mark.parametrize(
    "setting",
    [
        {"qa_head": "span"},
        {"null_span_loss_weight": -0.5},
        {"qa_settings": [0.0]},
        {"pointer_attention": "additive"},
        {"pointer_hidden_size": 16},
    ],
    ids=str,
)
def test_invalid_head_setting_is_refused_naming_the_field(setting):
    (field,) = setting
    with pytest.raises(ValueError, match=field):
        PointerDistilBertConfig(**setting)


def test_plain_distilbert_config_loads_into_the_pointer_config(tmp_path):
    DistilBertConfig(**TINY_ENCODER).save_pretrained(tmp_path)
    config = PointerDistilBertConfig.from_pretrained(tmp_path)
    assert config.model_type == "pointer_distilbert"
    assert (config.dim, config.n_layers, config.vocab_size) == (32, 2, 99)
    assert (config.qa_head, config.answer_verifier, config.verifier_standardization) == ("pointer", True, True)


def test_a_config_saved_with_the_retired_settings_loads_with_its_similarity_weight_in_qa_settings(tmp_path):
    saved = dict(TINY_ENCODER, model_type="pointer_distilbert", pointer_attention="bilinear", pointer_hidden_size=None,
                 verifier_loss_weight=0.5, nonnull_loss_weight=0.0, answer_similarity_weight=2.5,
                 answer_similarity_center=0.25, qa_settings={"null_score_diff_threshold": -1.0})
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = PointerDistilBertConfig.from_pretrained(tmp_path)
    assert config.qa_settings == {"null_score_diff_threshold": -1.0, "answer_similarity_weight": 2.5,
                                  "answer_similarity_center": 0.25}
    assert modeling_pointer_distilbert.similarity_weighting(config) == (2.5, 0.25)
    assert not hasattr(config, "verifier_loss_weight") and not hasattr(config, "pointer_attention")
    with pytest.raises(ValueError, match="retired after commit e7becc9"):
        PointerDistilBertConfig(**dict(saved, pointer_attention="additive"))


@pytest.mark.parametrize("settings", HEAD_SETTINGS.values(), ids=HEAD_SETTINGS.keys())
def test_save_pretrained_round_trip_keeps_logits_config_and_safetensors(tmp_path, settings):
    model = build_model(**settings)
    model.save_pretrained(tmp_path)
    reloaded = PointerDistilBertForQuestionAnswering.from_pretrained(tmp_path).eval()

    batch = padded_batch()
    with torch.no_grad():
        expected, actual = model(**batch), reloaded(**batch)
    # Equal up to float rounding: the verifier's matrix products may take other kernel paths in another model object.
    torch.testing.assert_close(actual.start_logits, expected.start_logits)
    torch.testing.assert_close(actual.end_logits, expected.end_logits)
    assert config_fields(reloaded.config) == config_fields(model.config)
    assert load_file(tmp_path / "model.safetensors").keys() == model.state_dict().keys()
    assert not [path.name for path in tmp_path.rglob("*") if path.suffix in PICKLE_SUFFIXES]


def test_save_pretrained_writes_auto_map_and_copies_the_modeling_file(tmp_path):
    build_model().save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"] == {
        "AutoConfig": "modeling_pointer_distilbert.PointerDistilBertConfig",
        "AutoModelForQuestionAnswering": "modeling_pointer_distilbert.PointerDistilBertForQuestionAnswering",
    }
    copied = tmp_path / "modeling_pointer_distilbert.py"
    assert copied.read_text() == pathlib.Path(modeling_pointer_distilbert.__file__).read_text()


FRESH_PROCESS_LOAD = """
import importlib.util, sys
import torch
from safetensors.torch import load_file
from transformers import AutoModelForQuestionAnswering

assert importlib.util.find_spec("modeling_pointer_distilbert") is None, "the project must not be importable here"
checkpoint, tensors_file = sys.argv[1], sys.argv[2]
tensors = load_file(tensors_file)
model = AutoModelForQuestionAnswering.from_pretrained(checkpoint, trust_remote_code=True).eval()
with torch.no_grad():
    output = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"])
assert type(model).__name__ == "PointerDistilBertForQuestionAnswering", type(model)
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
torch.testing.assert_close(output.start_logits, tensors["start_logits"])
torch.testing.assert_close(output.end_logits, tensors["end_logits"])
print("same logits from", type(model).__module__)
"""


def fresh_process_environment(tmp_path: pathlib.Path) -> dict[str, str]:
    """Returns an offline environment without the repository on PYTHONPATH and with a private modules cache."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    return environment


@pytest.mark.parametrize("settings", [{}, HEAD_SETTINGS["pointer-verifier"]], ids=["default", "verifier"])
def test_fresh_process_loads_the_saved_folder_with_remote_code(tmp_path, settings):
    checkpoint, elsewhere = tmp_path / "checkpoint", tmp_path / "elsewhere"
    elsewhere.mkdir()
    model = build_model(**settings)
    model.save_pretrained(checkpoint)
    batch = padded_batch()
    with torch.no_grad():
        output = model(**batch)
    tensors_file = tmp_path / "expected.safetensors"
    save_file({**batch, "start_logits": output.start_logits, "end_logits": output.end_logits}, tensors_file)

    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_LOAD, str(checkpoint), str(tensors_file)],
        cwd=elsewhere,
        env=fresh_process_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "same logits from transformers_modules." in completed.stdout


DOUBLE_IMPORT = """
import runpy
import modeling_pointer_distilbert
runpy.run_path(modeling_pointer_distilbert.__file__, run_name="__main__")
from transformers import AutoConfig, AutoModelForQuestionAnswering
config = AutoConfig.for_model("pointer_distilbert", vocab_size=99, dim=32, n_layers=1, n_heads=4, hidden_dim=37)
print(type(AutoModelForQuestionAnswering.from_config(config)).__name__)
"""


def test_importing_the_module_twice_registers_without_error(tmp_path):
    environment = fresh_process_environment(tmp_path)
    environment["PYTHONPATH"] = str(pathlib.Path(modeling_pointer_distilbert.__file__).parent)
    completed = subprocess.run(
        [sys.executable, "-c", DOUBLE_IMPORT], env=environment, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip() == "PointerDistilBertForQuestionAnswering"


def test_auto_classes_build_the_pointer_model():
    config = AutoConfig.for_model("pointer_distilbert", **TINY_ENCODER)
    assert isinstance(config, PointerDistilBertConfig)
    assert isinstance(AutoModelForQuestionAnswering.from_config(config), PointerDistilBertForQuestionAnswering)


def test_distilbert_checkpoint_loads_every_encoder_weight_and_only_the_head_is_missing(tmp_path):
    masked_lm = save_distilbert_checkpoint(tmp_path)
    model, loading_info = PointerDistilBertForQuestionAnswering.from_pretrained(tmp_path, output_loading_info=True)

    head_state = {name for name in model.state_dict() if not name.startswith("distilbert.")}
    assert head_parameter_names(model) < head_state, "the verifier's running statistics are missing too"
    assert set(loading_info["missing_keys"]) == head_state
    assert all(key.startswith("vocab_") for key in loading_info["unexpected_keys"])
    source_weights = masked_lm.state_dict()
    encoder_weights = {key: value for key, value in model.state_dict().items() if key.startswith("distilbert.")}
    assert encoder_weights
    for key, value in encoder_weights.items():
        assert torch.equal(value, source_weights[key]), key


def test_head_missing_from_a_checkpoint_is_initialised_like_the_linear_layers(tmp_path):
    save_distilbert_checkpoint(tmp_path)
    torch.manual_seed(2)
    model = PointerDistilBertForQuestionAnswering.from_pretrained(tmp_path)
    std = model.config.initializer_range
    for name, parameter in model.qa_outputs.named_parameters():
        if name.rsplit(".", 1)[-1].startswith("bias"):
            assert torch.count_nonzero(parameter) == 0, name
        else:
            assert 0.5 * std < parameter.std().item() < 2 * std, name


def test_linear_head_logits_equal_stock_distilbert_question_answering():
    torch.manual_seed(3)
    stock = DistilBertForQuestionAnswering(DistilBertConfig(**TINY_ENCODER)).eval()
    model = build_model(qa_head="linear")
    model.load_state_dict(stock.state_dict())

    batch = padded_batch()
    unpadded = batch["attention_mask"] == 1
    all_ones = {"input_ids": batch["input_ids"], "attention_mask": torch.ones_like(batch["attention_mask"])}
    with torch.no_grad():
        for inputs, positions in ((all_ones, torch.ones_like(unpadded)), (batch, unpadded)):
            expected, actual = stock(**inputs), model(**inputs)
            for name in ("start_logits", "end_logits"):
                actual_logits, expected_logits = getattr(actual, name)[positions], getattr(expected, name)[positions]
                torch.testing.assert_close(actual_logits, expected_logits, atol=1e-5, rtol=0)


def perturb_(module: torch.nn.Module, seed: int) -> None:
    """Adds large random noise to every parameter of `module`, in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator))


def test_moving_only_the_start_distribution_changes_the_end_logits():
    # Weights of order one: at the usual 0.02 a 32-wide model's end logits move only by about 1e-4.
    model = build_model(initializer_range=0.2)
    batch = padded_batch()
    unpadded = batch["attention_mask"] == 1
    with torch.no_grad():
        before = model(**batch)
        perturb_(model.qa_outputs.start_scorer, seed=4)
        after = model(**batch)
    end_logits_spread = before.end_logits[unpadded].std()
    assert (after.start_logits - before.start_logits)[unpadded].abs().max() > end_logits_spread
    assert (after.end_logits - before.end_logits)[unpadded].abs().max() > 0.1 * end_logits_spread


def test_changing_the_end_scorer_leaves_the_start_logits_alone():
    model = build_model()
    batch = padded_batch()
    with torch.no_grad():
        before = model(**batch)
        perturb_(model.qa_outputs.end_scorer, seed=5)
        after = model(**batch)
    assert torch.equal(after.start_logits, before.start_logits)
    assert not torch.equal(after.end_logits, before.end_logits)


@pytest.mark.parametrize("verifier", [False, True], ids=["no-verifier", "verifier"])
def test_every_head_parameter_receives_a_gradient(verifier):
    model = build_model(answer_verifier=verifier).train()
    model(**padded_batch(), **LABELS).loss.backward()
    names = head_parameter_names(model)
    assert any(name.startswith("verifier.") for name in names) == verifier
    for name, parameter in model.named_parameters():
        if name in names:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_verifier_logit_moves_the_null_score_and_nothing_else():
    model = build_model(answer_verifier=True)
    batch = padded_batch()
    with torch.no_grad():
        before = model(**batch)
        model.verifier.classifier.bias += 1.5
        after = model(**batch)
    null_before = before.start_logits[:, 0] + before.end_logits[:, 0]
    null_after = after.start_logits[:, 0] + after.end_logits[:, 0]
    torch.testing.assert_close(null_after - null_before, torch.full((3,), 1.5))
    assert torch.equal(after.start_logits[:, 1:], before.start_logits[:, 1:])
    assert torch.equal(after.end_logits[:, 1:], before.end_logits[:, 1:])


def similarity_model(tokenizer, **settings) -> PointerDistilBertForQuestionAnswering:
    """Returns a tiny model over the real vocabulary with a sentence matcher, in eval mode."""
    token_ids = {"cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id,
                 "sentence_ends": tokenizer.convert_tokens_to_ids([".", "?", "!"])}
    return build_model(**{**TINY_ENCODER, "vocab_size": tokenizer.vocab_size, "max_position_embeddings": 128},
                       answer_similarity=True, sentence_token_ids=token_ids, **settings)


def test_window_segments_are_the_question_and_each_context_sentence(tokenizer):
    window = tokenizer("Where is Paris?", "Paris is in France. It is big! Its old town")["input_ids"]
    ends = set(tokenizer.convert_tokens_to_ids([".", "?", "!"]))
    segments = window_segments(window, tokenizer.sep_token_id, ends)
    assert [tokenizer.decode(segment) for segment in segments] == [
        "where is paris?", "paris is in france.", "it is big!", "its old town"]
    question_only = tokenizer("Where is Paris?")["input_ids"]
    assert [tokenizer.decode(s) for s in window_segments(question_only, tokenizer.sep_token_id, ends)] == [
        "where is paris?"]


def test_matcher_finds_the_sentence_that_repeats_the_question_whatever_the_padding(tokenizer):
    model = similarity_model(tokenizer)
    batch = tokenizer(["Where is Paris?"] * 3,
                      ["The sky is blue. Where is Paris? Rain falls.", "The sky is blue. Rain falls.",
                       "The sky is blue. Where is Paris? Rain falls. " * 3], padding=True, return_tensors="pt")
    similarity = model.sentence_matcher(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(similarity[[0, 2]], torch.ones(2))
    assert -1 <= similarity[1] < 0.999
    alone = tokenizer(["Where is Paris?"], ["The sky is blue. Rain falls."], return_tensors="pt")
    torch.testing.assert_close(model.sentence_matcher(alone["input_ids"], alone["attention_mask"]), similarity[[1]])


def test_weighed_similarity_moves_the_null_score_and_nothing_else(tokenizer):
    model = similarity_model(tokenizer)
    batch = tokenizer(["Where is Paris?", "Who wrote it?"], ["Paris is in France. It is big.", "Rain falls."],
                      padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(**batch)
        model.config.qa_settings = {"answer_similarity_weight": 2.0, "answer_similarity_center": 0.3}
        after = model(**batch)
        similarity = model.sentence_matcher(batch["input_ids"], batch["attention_mask"])
    null_before = before.start_logits[:, 0] + before.end_logits[:, 0]
    null_after = after.start_logits[:, 0] + after.end_logits[:, 0]
    torch.testing.assert_close(null_after - null_before, -2.0 * (similarity - 0.3))
    assert torch.equal(after.start_logits[:, 1:], before.start_logits[:, 1:])
    assert torch.equal(after.end_logits[:, 1:], before.end_logits[:, 1:])
    with pytest.raises(ValueError, match="reads input_ids: pass input_ids, not inputs_embeds"):
        model(inputs_embeds=model.distilbert.embeddings.word_embeddings(batch["input_ids"]),
              attention_mask=batch["attention_mask"])


def test_matcher_never_trains_and_stays_in_inference_mode(tokenizer):
    model = similarity_model(tokenizer, qa_settings={"answer_similarity_weight": 1.0}, dropout=0.5,
                             attention_dropout=0.5).train()
    assert not model.sentence_matcher.training and model.distilbert.training
    batch = tokenizer(["Where is Paris?"], ["Paris is in France. It is big."], return_tensors="pt")
    model(**batch, start_positions=torch.tensor([6]), end_positions=torch.tensor([6])).loss.backward()
    assert all(parameter.grad is None and not parameter.requires_grad
               for parameter in model.sentence_matcher.parameters())
    first = model.sentence_matcher(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(model.sentence_matcher(batch["input_ids"], batch["attention_mask"]), first)


def test_similarity_needs_the_tokenizers_ids():
    with pytest.raises(ValueError, match="answer_similarity needs the tokenizer's ids"):
        PointerDistilBertConfig(answer_similarity=True)


def span_loss_of(output) -> torch.Tensor:
    """Returns the span loss alone of a model output on `LABELS`."""
    return modeling_pointer_distilbert.span_loss(output.start_logits, output.end_logits, *LABELS.values())


def test_verifier_loss_adds_the_binary_loss_of_windows_without_answer():
    model = build_model(answer_verifier=True)
    logits = []
    model.verifier.register_forward_hook(lambda module, inputs, output: logits.append(output))
    with torch.no_grad():
        output = model(**padded_batch(), **LABELS)
    no_answer = torch.tensor([0.0, 1.0, 0.0])  # LABELS: rows 1 and 3 have answers, row 2 has none
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[0], no_answer)
    torch.testing.assert_close(output.loss - span_loss_of(output), expected)


def test_verifier_loss_trains_the_encoder_but_not_the_pointers():
    gradients = {}
    for name, loss_of in (("span", span_loss_of), ("total", lambda output: output.loss)):
        model = build_model(answer_verifier=True)
        loss_of(model(**padded_batch(), **LABELS)).backward()
        gradients[name] = {name: parameter.grad for name, parameter in model.named_parameters()}
    pointer_names = [name for name in gradients["span"] if name.startswith("qa_outputs.")]
    assert pointer_names
    for name in pointer_names:
        torch.testing.assert_close(gradients["total"][name], gradients["span"][name], msg=name)
    encoder_top = "distilbert.transformer.layer.1.output_layer_norm.weight"
    assert not torch.allclose(gradients["total"][encoder_top], gradients["span"][encoder_top])


def test_standardized_verifier_learns_running_statistics_and_uses_them_at_inference():
    model = build_model(answer_verifier=True, verifier_standardization=True)
    standardize = model.verifier.standardize
    features = []
    standardize.register_forward_hook(lambda module, inputs, output: features.append(inputs[0]))
    batch = padded_batch()
    with torch.no_grad():
        model.train()(**batch)
        expected_mean = 0.9 * torch.zeros_like(standardize.running_mean) + 0.1 * features[0].mean(dim=0)
        torch.testing.assert_close(standardize.running_mean, expected_mean)
        single = {key: value[:1] for key, value in batch.items()}
        model(**single)  # a one-window training batch falls back to the running statistics
        model.eval()
        first = model(**batch).start_logits
        second = model(**batch).start_logits
    assert torch.equal(first, second)  # no statistics update at inference
    assert standardize.num_batches_tracked == 1  # the one-window batch read the statistics, did not update them


def test_verifier_saved_without_the_standardization_field_loads_without_it(tmp_path):
    model = build_model(answer_verifier=True)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved.pop("verifier_standardization")
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = PointerDistilBertForQuestionAnswering.from_pretrained(tmp_path).eval()
    assert isinstance(loaded.verifier.standardize, torch.nn.Identity)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**padded_batch()).start_logits, model(**padded_batch()).start_logits)


def test_null_span_loss_weight_scales_the_windows_without_an_answer():
    torch.manual_seed(0)
    start_logits, end_logits = torch.randn(4, 9, requires_grad=True), torch.randn(4, 9, requires_grad=True)
    starts, ends = torch.tensor([3, 0, 2, 0]), torch.tensor([5, 0, 4, 0])  # rows 1 and 3 hold no answer
    per_window = (torch.nn.functional.cross_entropy(start_logits, starts, reduction="none")
                  + torch.nn.functional.cross_entropy(end_logits, ends, reduction="none")) / 2
    weights = torch.tensor([1.0, 0.25, 1.0, 0.25])
    weighted = modeling_pointer_distilbert.span_loss(start_logits, end_logits, starts, ends, null_weight=0.25)
    torch.testing.assert_close(weighted, (per_window * weights).sum() / weights.sum())
    plain = modeling_pointer_distilbert.span_loss(start_logits, end_logits, starts, ends)
    torch.testing.assert_close(plain, per_window.mean())
    # Weight 0 leaves the null windows out: they get no gradient, the answered ones do.
    modeling_pointer_distilbert.span_loss(start_logits, end_logits, starts, ends, null_weight=0.0).backward()
    assert start_logits.grad[[1, 3]].abs().sum() == 0 and end_logits.grad[[1, 3]].abs().sum() == 0
    assert start_logits.grad[[0, 2]].abs().sum() > 0


@pytest.mark.parametrize("settings", HEAD_SETTINGS.values(), ids=HEAD_SETTINGS.keys())
@pytest.mark.parametrize("autocast_dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16-autocast"])
def test_padded_batch_gives_finite_logits_and_loss_with_padding_at_the_dtype_minimum(settings, autocast_dtype):
    model = build_model(**settings).train()
    batch = padded_batch()
    padding = batch["attention_mask"] == 0
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_dtype == torch.bfloat16):
        output = model(**batch, **LABELS)
    assert torch.isfinite(output.loss)
    for logits in (output.start_logits, output.end_logits):
        assert logits.dtype == torch.float32
        assert torch.isfinite(logits).all()
        assert (logits[padding] == torch.finfo(logits.dtype).min).all()
        assert not padding.gather(1, logits.argmax(dim=-1, keepdim=True)).any()


def test_labels_outside_the_sequence_are_ignored_by_the_loss():
    model = build_model()
    batch = padded_batch()
    first_row = {key: value[:1] for key, value in batch.items()}
    with torch.no_grad():
        with_ignored_row = model(
            **batch, start_positions=torch.tensor([3, 50, 70]), end_positions=torch.tensor([5, 60, 99])
        ).loss
        first_row_only = model(**first_row, start_positions=torch.tensor([3]), end_positions=torch.tensor([5])).loss
    torch.testing.assert_close(with_ignored_row, first_row_only)


def describe(item: torch.Tensor | tuple) -> tuple:
    """Returns a tensor's shape, or a tuple's length: what identifies an item of a model's output tuple."""
    return ("tensor", tuple(item.shape)) if isinstance(item, torch.Tensor) else ("tuple", len(item))


def test_return_dict_false_gives_tuples_in_the_stock_order():
    model = build_model()
    torch.manual_seed(6)
    stock = DistilBertForQuestionAnswering(DistilBertConfig(**TINY_ENCODER)).eval()
    batch = padded_batch()
    with torch.no_grad():
        output = model(**batch, **LABELS)
        for kwargs in (LABELS, {}, {"output_hidden_states": True}):
            as_tuple = model(**batch, **kwargs, return_dict=False)
            stock_tuple = stock(**batch, **kwargs, return_dict=False)
            assert isinstance(as_tuple, tuple)
            assert [describe(item) for item in as_tuple] == [describe(item) for item in stock_tuple]
        loss, start_logits, end_logits = model(**batch, **LABELS, return_dict=False)
    assert torch.equal(loss, output.loss)
    assert torch.equal(start_logits, output.start_logits)
    assert torch.equal(end_logits, output.end_logits)


def test_sdpa_and_eager_attention_give_the_same_logits(tmp_path):
    build_model().save_pretrained(tmp_path)
    sdpa = PointerDistilBertForQuestionAnswering.from_pretrained(tmp_path).eval()
    eager = PointerDistilBertForQuestionAnswering.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert sdpa.config._attn_implementation == "sdpa"
    batch = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(sdpa(**batch).end_logits, eager(**batch).end_logits, atol=1e-5, rtol=1e-5)


def forward_calls(module: torch.nn.Module) -> list[int]:
    """Returns a list that grows by one entry at every forward call of `module`."""
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


# `gradient_checkpointing_enable` is the name every transformers 5.x release knows; 5.24 calls it deprecated.
@pytest.mark.filterwarnings("ignore:`gradient_checkpointing_enable` is deprecated:FutureWarning")
def test_gradient_checkpointing_recomputes_the_encoder_and_gives_the_same_gradients():
    no_dropout = dict(dropout=0.0, attention_dropout=0.0, qa_dropout=0.0)
    gradients, ffn_calls = [], []
    for checkpointing in (False, True):
        model = build_model(**no_dropout).train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        calls = forward_calls(model.distilbert.transformer.layer[0].ffn)
        model(**padded_batch(), **LABELS).loss.backward()
        gradients.append({name: parameter.grad for name, parameter in model.named_parameters()})
        ffn_calls.append(len(calls))
    assert ffn_calls == [1, 2]
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], gradient, msg=name)


def test_resizing_embeddings_keeps_the_model_working():
    model = build_model()
    model.resize_token_embeddings(120)
    model.resize_position_embeddings(80)
    assert (model.config.vocab_size, model.config.max_position_embeddings) == (120, 80)
    assert model.get_position_embeddings().num_embeddings == 80
    input_ids = torch.full((1, 70), 119)  # (batch, seq_len): a new token id at positions beyond the old table
    # Explicit positions: the encoder's cached position_ids buffer keeps its old length (stock DistilBERT behaviour).
    position_ids = torch.arange(70).unsqueeze(0)  # (batch, seq_len)
    with torch.no_grad():
        output = model(input_ids=input_ids, position_ids=position_ids)
    assert output.start_logits.shape == (1, 70)
    assert torch.isfinite(output.end_logits).all()
