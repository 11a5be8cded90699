"""The recipe on a CUDA device: bf16 and fp16 weights and autocast, SDPA against eager attention, a few steps of
run_qa.py in the precision the device chooses and in fp16, and bf16 answers against float32. Skipped without CUDA;
`make gpu-check` runs them on a GPU machine (bench/README.md)."""

import json
import logging
import pathlib
import sys

import pytest
import torch
from test_precision import (
    HALF_DTYPES,
    HEADS,
    assert_autocast_close_to_float32,
    assert_half_precision_answers_like_float32,
    build_model,
    on_device,
    save_confident_model,
    sentence_batch,
    train_steps,
)
from test_run_qa import tiny_run_args
from transformers import AutoTokenizer

import run_qa
from conftest import save_tiny_pointer_model
from modeling_pointer_distilbert import PointerDistilBertForQuestionAnswering

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from gpu_check import uncased_tokenizer_dir  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = "cuda"


@pytest.fixture(scope="module")
def tokenizer():
    """The uncased BERT vocabulary's tokenizer, also where only the files `make gpu-carry` packs are at hand."""
    return AutoTokenizer.from_pretrained(uncased_tokenizer_dir())


@pytest.mark.parametrize("settings", HEADS.values(), ids=HEADS.keys())
@pytest.mark.parametrize("dtype", HALF_DTYPES.values(), ids=HALF_DTYPES.keys())
def test_half_precision_weights_train_on_cuda(settings, dtype):
    losses = train_steps(build_model(**settings).to(CUDA, dtype), CUDA)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("settings", HEADS.values(), ids=HEADS.keys())
@pytest.mark.parametrize("dtype", HALF_DTYPES.values(), ids=HALF_DTYPES.keys())
def test_autocast_on_cuda_gives_float32_logits_close_to_float32(settings, dtype):
    assert_autocast_close_to_float32(build_model(**settings).to(CUDA).eval(), CUDA, dtype)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-4), (torch.bfloat16, 5e-2)], ids=["fp32", "bf16"])
def test_sdpa_and_eager_attention_agree_on_cuda(tmp_path, dtype, tolerance):
    build_model(**HEADS["pointer-verifier"]).save_pretrained(tmp_path)
    logits = {}
    for attention in ("sdpa", "eager"):
        model = PointerDistilBertForQuestionAnswering.from_pretrained(tmp_path, attn_implementation=attention)
        model = model.to(CUDA).eval()
        assert model.config._attn_implementation == attention
        with torch.no_grad(), torch.autocast(CUDA, dtype=dtype, enabled=dtype != torch.float32):
            logits[attention] = model(**on_device(sentence_batch(), CUDA)).start_logits
    real = sentence_batch()["attention_mask"].to(CUDA) == 1
    torch.testing.assert_close(logits["sdpa"][real], logits["eager"][real], atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize(("flags", "precision"), [((), "bf16"), (("--fp16", "true"), "fp16")], ids=["chosen", "fp16"])
def test_run_qa_trains_and_evaluates_on_cuda(tmp_path, tokenizer, monkeypatch, caplog, flags, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this CUDA device has no bf16")
    model_dir = save_tiny_pointer_model(tmp_path / "model", tokenizer, **HEADS["pointer-verifier"])
    trainers = []
    build_trainer = run_qa.build_trainer
    monkeypatch.setattr(run_qa, "build_trainer", lambda *args: trainers.append(build_trainer(*args)) or trainers[-1])
    argv = tiny_run_args(model_dir, tmp_path / "out", *flags, "--use_cpu", "false", "--report_to", "none")
    with caplog.at_level(logging.INFO, logger="run_qa"):
        run_qa.main(argv)
    messages = [record.getMessage() for record in caplog.records if record.name == "run_qa"]
    assert messages[0].startswith("Run: ") and f"; precision {precision} (" in messages[0]
    accelerator = trainers[0].accelerator
    assert accelerator.device.type == CUDA and accelerator.mixed_precision == precision
    assert (accelerator.scaler is not None) == (precision == "fp16")
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert torch.isfinite(torch.tensor(results["train_loss"])) and "eval_f1" in results


def test_bf16_and_fp16_answers_agree_with_float32_on_cuda(tmp_path, tokenizer):
    assert_half_precision_answers_like_float32(save_confident_model(tmp_path, tokenizer), CUDA)
