"""Tests of the BERT -> DistilBERT converter on the real pretrained MiniLM and on tiny BERT checkpoints."""

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, BertModel, DistilBertModel

from cli_errors import UserError
from convert_bert_to_distilbert import (
    convert_bert_checkpoint,
    convert_bert_weights,
    distilbert_config_from_bert,
    main,
    packaged_minilm_dir,
)
from modeling_pointer_distilbert import PointerDistilBertForQuestionAnswering

TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


@pytest.fixture(scope="module")
def minilm_bert(minilm_dir) -> BertModel:
    return BertModel.from_pretrained(minilm_dir).eval()


@pytest.fixture(scope="module")
def converted_minilm_dir(minilm_dir, tmp_path_factory):
    return convert_bert_checkpoint(minilm_dir, tmp_path_factory.mktemp("minilm-distilbert"))


def question_context_batch(tokenizer) -> dict[str, torch.Tensor]:
    """Returns a padded batch of two question/context pairs encoded by the real tokenizer."""
    return tokenizer(
        ["Which network points at the answer?", "When?"],
        ["A pointer network picks the start and the end token of the answer span.", "In 2015."],
        padding=True,
        return_tensors="pt",
    )


def bert_and_distilbert_hidden_states(bert, distilbert, batch):
    """Returns both encoders' hidden states (embeddings and every layer), BERT run with token_type_ids=0."""
    with torch.no_grad():
        bert_output = bert(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=torch.zeros_like(batch["input_ids"]),
            output_hidden_states=True,
        )
        distilbert_output = distilbert(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
    return bert_output.hidden_states, distilbert_output.hidden_states


def test_converted_minilm_hidden_states_equal_bert_with_token_type_zero(minilm_bert, tokenizer):
    distilbert_config, state_dict = convert_bert_weights(minilm_bert.state_dict(), minilm_bert.config)
    distilbert = DistilBertModel(distilbert_config).eval()
    distilbert.load_state_dict(state_dict)

    batch = question_context_batch(tokenizer)
    assert batch["token_type_ids"].any(), "the comparison must cover inputs that BERT would give segment ids"
    tokens = batch["attention_mask"] == 1
    bert_states, distilbert_states = bert_and_distilbert_hidden_states(minilm_bert, distilbert, batch)
    assert len(distilbert_states) == len(bert_states) == minilm_bert.config.num_hidden_layers + 1
    for bert_state, distilbert_state in zip(bert_states, distilbert_states):
        torch.testing.assert_close(distilbert_state[tokens], bert_state[tokens], atol=1e-4, rtol=0)


def test_converted_config_keeps_bert_sizes_activation_and_dropouts(minilm_bert):
    bert_config = minilm_bert.config
    config = distilbert_config_from_bert(bert_config)
    assert (config.dim, config.n_layers, config.n_heads, config.hidden_dim) == (384, 6, 12, 1536)
    assert (config.vocab_size, config.max_position_embeddings, config.pad_token_id) == (30522, 512, 0)
    assert config.activation == bert_config.hidden_act
    assert (config.dropout, config.attention_dropout) == (
        bert_config.hidden_dropout_prob,
        bert_config.attention_probs_dropout_prob,
    )


def test_converted_folder_is_a_distilbert_checkpoint_with_tokenizer(converted_minilm_dir, minilm_dir):
    names = {path.name for path in converted_minilm_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pth"))]
    text = "Who wrote the pointer network paper?"
    assert AutoTokenizer.from_pretrained(converted_minilm_dir)(text) == AutoTokenizer.from_pretrained(minilm_dir)(text)


def test_converted_folder_loads_into_the_pointer_model_with_only_the_head_missing(converted_minilm_dir):
    model, loading_info = PointerDistilBertForQuestionAnswering.from_pretrained(
        converted_minilm_dir, output_loading_info=True
    )
    head_keys = {name for name in model.state_dict() if name.startswith(("qa_outputs.", "verifier."))}
    assert {name.split(".")[0] for name in head_keys} == {"qa_outputs", "verifier"}
    assert set(loading_info["missing_keys"]) == head_keys
    assert not loading_info["unexpected_keys"]
    assert model.config.dim == 384


def test_bert_task_checkpoint_converts_from_its_encoder(tmp_path, tokenizer):
    source, output = tmp_path / "bert-qa", tmp_path / "distilbert"
    torch.manual_seed(0)
    bert_qa = BertForQuestionAnswering(BertConfig(vocab_size=tokenizer.vocab_size, **TINY_BERT)).eval()
    bert_qa.save_pretrained(source)
    tokenizer.save_pretrained(source)

    main([str(source), str(output)])

    distilbert = DistilBertModel.from_pretrained(output).eval()
    batch = question_context_batch(tokenizer)
    tokens = batch["attention_mask"] == 1
    bert_states, distilbert_states = bert_and_distilbert_hidden_states(bert_qa.bert, distilbert, batch)
    torch.testing.assert_close(distilbert_states[-1][tokens], bert_states[-1][tokens], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("setting", "named_in_error"),
    [
        ({"layer_norm_eps": 1e-5}, "layer_norm_eps"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"hidden_act": "no_such_activation"}, "hidden_act"),
        ({"is_decoder": True}, "is_decoder"),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else "",
)
def test_unsupported_bert_config_is_refused_naming_the_setting(setting, named_in_error):
    with pytest.raises(ValueError, match=f"cannot be converted to DistilBERT: {named_in_error}"):
        distilbert_config_from_bert(BertConfig(**TINY_BERT, **setting))


def test_cli_reports_a_non_bert_source_in_one_line_with_status_2(converted_minilm_dir, tmp_path, capsys):
    assert main([str(converted_minilm_dir), str(tmp_path / "output")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: '{converted_minilm_dir}' is a 'distilbert' checkpoint;")
    assert "this converter reads BERT checkpoints" in lines[0]
    assert not (tmp_path / "output").exists()


def test_cli_reports_a_missing_source_in_one_line_and_shows_the_traceback_with_debug(tmp_path, capsys):
    assert main([str(tmp_path / "no-such-folder"), str(tmp_path / "output")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Cannot read a model config from")
    with pytest.raises(UserError, match="Cannot read a model config from"):
        main([str(tmp_path / "no-such-folder"), str(tmp_path / "output"), "--debug"])
    assert not (tmp_path / "output").exists()


def test_cli_reports_a_source_without_weights_in_one_line(tmp_path, tokenizer, capsys):
    source = tmp_path / "config-only"
    BertConfig(vocab_size=tokenizer.vocab_size, **TINY_BERT).save_pretrained(source)
    tokenizer.save_pretrained(source)
    assert main([str(source), str(tmp_path / "output")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Cannot read BERT weights from '{source}'")
    assert not (tmp_path / "output").exists()


def test_cli_word_minilm_converts_the_packaged_model(tmp_path, capsys):
    main(["minilm", str(tmp_path)])
    assert f"written to {tmp_path}" in capsys.readouterr().out
    assert DistilBertModel.from_pretrained(tmp_path).config.dim == 384


def test_packaged_minilm_dir_is_the_installed_model_folder(minilm_dir):
    assert packaged_minilm_dir() == minilm_dir
