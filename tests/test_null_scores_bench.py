"""The verifier-weight bench: its logits are the model's, and weight 0 leaves exactly the span head's null odds."""

import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from conftest import save_tiny_pointer_model
from modeling_pointer_distilbert import PointerDistilBertForQuestionAnswering
from squad.features import prepare_eval_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import null_scores  # noqa: E402

CONTEXT = "The observatory was founded by Friedrich Wöhrle in 1890 on the hill above the town of Kaltenbrück. " * 8
QUESTIONS = ["Who founded the observatory?", "When was it founded?", "Who was its first director?"]


@pytest.fixture
def verifier_model(tmp_path, tokenizer):
    folder = save_tiny_pointer_model(tmp_path / "model", tokenizer, seed=3, answer_verifier=True)
    return PointerDistilBertForQuestionAnswering.from_pretrained(folder).eval()


def windows(tokenizer):
    examples = datasets.Dataset.from_dict({"id": [f"q{i}" for i in range(3)], "question": QUESTIONS,
                                           "context": [CONTEXT] * 3})
    return examples.map(lambda batch: prepare_eval_features(batch, tokenizer, max_seq_length=64, doc_stride=32),
                        batched=True, remove_columns=examples.column_names)


def test_weight_zero_gives_the_span_heads_logits_and_other_tokens_keep_theirs(verifier_model, tokenizer, monkeypatch):
    features = windows(tokenizer)
    assert len(features) > 3  # several windows per question, padded to one width
    start, end, verifier = null_scores.window_logits(verifier_model, tokenizer, features, batch_size=4)
    assert np.abs(verifier).min() > 0  # the verifier's part is there to remove

    monkeypatch.setattr(verifier_model.verifier, "forward", lambda hidden, *rest: torch.zeros(hidden.shape[0]))
    span_start, span_end, _ = null_scores.window_logits(verifier_model, tokenizer, features, batch_size=4)
    without_start, without_end = null_scores.reweight_verifier(start, end, verifier, 0.0)
    np.testing.assert_allclose(without_start, span_start, atol=1e-5)
    np.testing.assert_allclose(without_end, span_end, atol=1e-5)

    doubled_start, doubled_end = null_scores.reweight_verifier(start, end, verifier, 2.0)
    np.testing.assert_allclose(doubled_start[:, 0] + doubled_end[:, 0], start[:, 0] + end[:, 0] + verifier, atol=1e-5)
    np.testing.assert_array_equal(doubled_start[:, 1:], start[:, 1:])
