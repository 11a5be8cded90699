"""The ONNX export: the exported graphs give the PyTorch model's logits, the pipeline answers from an export folder
as from the model, int8 stays close to float32, and bad folders get one clear line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForQuestionAnswering

import export_onnx
import qa_pipeline
from cli_errors import UserError
from conftest import ROOT, save_tiny_pointer_model
from onnx_backend import MATCHER_GRAPHS, SPAN_GRAPHS, OnnxQuestionAnsweringModel
from run_qa import sentence_token_ids

pytest.importorskip("onnxruntime", reason="pip install -r requirements-onnx.txt")

SAMPLE = ROOT / "data" / "squad_v2_real_sample.json"
# Largest |ONNX - PyTorch| of a float32 logit: both compute in float32, in a different order of operations.
FLOAT32_TOLERANCE = 1e-4
# Batch sizes and window lengths (tokens) the exported graphs are checked at.
SHAPES = [(1, 30), (3, 64), (8, 160)]
MODELS = {
    "pointer": dict(qa_head="pointer"),
    "pointer-verifier": dict(qa_head="pointer", answer_verifier=True, verifier_standardization=True),
    "linear-verifier": dict(qa_head="linear", answer_verifier=True),
}


def matcher_settings(tokenizer) -> dict:
    """A pointer model with verifier whose null odds use the sentence matcher, evaluated on short windows."""
    return dict(answer_verifier=True, answer_similarity=True, sentence_token_ids=sentence_token_ids(tokenizer),
                qa_settings={"max_seq_length": 128, "doc_stride": 48, "version_2_with_negative": True,
                             "null_score_diff_threshold": 0.0, "answer_similarity_weight": 3.0,
                             "answer_similarity_center": 0.4})


def sample_questions(limit: int | None = None) -> list[dict]:
    document = json.loads(SAMPLE.read_text())
    questions = [{"question": qa["question"], "context": paragraph["context"]}
                 for article in document["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    return questions[:limit]


def window_batch(tokenizer, batch: int, length: int) -> dict[str, torch.Tensor]:
    """Return `batch` right-padded windows `[CLS] question [SEP] context [SEP]` of real sample text, the longest
    `length` tokens and each next one shorter, so every row but the first is padded."""
    questions = sample_questions()[:batch]
    rows = [tokenizer(q["question"], q["context"], truncation="only_second", max_length=length - row * (length // 16))
            ["input_ids"] for row, q in enumerate(questions)]
    input_ids = torch.zeros(batch, length, dtype=torch.long)
    attention_mask = torch.zeros(batch, length, dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def exported(tmp_path, tokenizer, int8: bool = False, **settings):
    """Save a tiny random model and export it; return (PyTorch model, export folder)."""
    model_folder = save_tiny_pointer_model(tmp_path / "model", tokenizer, **settings)
    export_folder = tmp_path / "export"
    export_onnx.export_folder_of(model_folder, export_folder, export_onnx.QUANTIZATION if int8 else None)
    return AutoModelForQuestionAnswering.from_pretrained(model_folder).eval(), export_folder


def largest_difference(expected, actual, attention_mask: torch.Tensor) -> float:
    """Return the largest |difference| of the start and end logits over the windows' real tokens."""
    real = attention_mask.bool()
    return max((expected.start_logits - actual.start_logits)[real].abs().max().item(),
               (expected.end_logits - actual.end_logits)[real].abs().max().item())


@pytest.fixture(scope="module")
def matcher_export(tmp_path_factory, tokenizer):
    """A tiny model with verifier and sentence matcher, exported with its int8 graph: (model, export folder)."""
    return exported(tmp_path_factory.mktemp("matcher"), tokenizer, int8=True, **matcher_settings(tokenizer))


@pytest.mark.parametrize("name", MODELS)
def test_exported_logits_match_pytorch_at_every_shape(name, tmp_path, tokenizer):
    model, folder = exported(tmp_path, tokenizer, **MODELS[name])
    onnx_model = OnnxQuestionAnsweringModel(folder, "float32")
    assert not (folder / MATCHER_GRAPHS["float32"]).exists()
    for batch, length in SHAPES:
        inputs = window_batch(tokenizer, batch, length)
        with torch.no_grad():
            expected = model(**inputs)
        assert largest_difference(expected, onnx_model(**inputs), inputs["attention_mask"]) < FLOAT32_TOLERANCE


def test_exported_matcher_model_matches_pytorch_with_the_similarity_shift(matcher_export, tokenizer):
    model, folder = matcher_export
    onnx_model = OnnxQuestionAnsweringModel(folder, "float32")
    without_similarity = OnnxQuestionAnsweringModel(folder, "float32")
    without_similarity.matcher = None
    for batch, length in SHAPES:
        inputs = window_batch(tokenizer, batch, length)
        with torch.no_grad():
            expected = model(**inputs)
        assert largest_difference(expected, onnx_model(**inputs), inputs["attention_mask"]) < FLOAT32_TOLERANCE
        # The similarity really moves the null logits (weight 3), so the check above covers the matcher graph.
        shifted = (expected.start_logits[:, 0] - without_similarity(**inputs).start_logits[:, 0]).abs()
        assert shifted.min().item() > 1e-3


def test_export_folder_holds_what_the_pipeline_reads(matcher_export):
    model, folder = matcher_export
    written = {path.name for path in folder.iterdir()}
    graphs = {*SPAN_GRAPHS.values(), *MATCHER_GRAPHS.values()}
    code = {"onnx_backend.py", "modeling_pointer_distilbert.py", "pipeline.py", "features.py", "spans.py"}
    assert graphs | code | {"config.json", "tokenizer.json", "onnx_export.json"} <= written
    assert json.loads((folder / "onnx_export.json").read_text())["quantization"] == export_onnx.QUANTIZATION
    config = json.loads((folder / "config.json").read_text())
    assert config["qa_settings"] == model.config.qa_settings
    assert config["qa_settings"]["answer_similarity_weight"] == 3.0


def test_exported_pipeline_gives_the_pytorch_pipelines_answers(matcher_export, tokenizer):
    model, folder = matcher_export
    questions = sample_questions()
    pytorch = qa_pipeline.PointerQuestionAnsweringPipeline(model=model, tokenizer=tokenizer, task=qa_pipeline.TASK)
    onnx = qa_pipeline.load_pipeline(str(folder), "float32")
    settings = dict(handle_impossible_answer=True, max_seq_len=128, doc_stride=48, batch_size=5)
    expected, answers = pytorch(questions, **settings), onnx(questions, **settings)
    assert len(answers) == len(questions) == 208
    assert [(a["answer"], a["start"], a["end"]) for a in answers] == [
        (a["answer"], a["start"], a["end"]) for a in expected]
    assert [a["score"] for a in answers] == pytest.approx([a["score"] for a in expected], rel=1e-3)
    assert any(a["answer"] == "" for a in expected) and any(a["answer"] for a in expected)


def test_int8_graph_keeps_the_span_head_and_the_verifiers_classifier_float32(matcher_export):
    import onnx

    _, folder = matcher_export
    nodes = onnx.load(str(folder / SPAN_GRAPHS["int8"])).graph.node
    quantized = [node.name for node in nodes if node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
    assert any("/transformer/" in name for name in quantized), "the encoder is quantized"
    assert any("/verifier/dense/" in name for name in quantized), "the verifier's hidden layer is quantized"
    assert not [name for name in quantized if "/qa_outputs/" in name or "/verifier/classifier/" in name]


# Run in a process of its own, away from the recipe's code: the folder's own files must be enough. (Remote code
# registers its classes process-wide, so a second folder loaded as remote code later in the same process would meet
# them.)
REMOTE_PIPELINE = """
import json, sys
from transformers import pipeline
qa = pipeline("question-answering", model=sys.argv[1], trust_remote_code=True, device="cpu")
answers = qa(json.loads(sys.argv[2]))
print(json.dumps([type(qa.model).__name__, qa.model.precision, [answer["answer"] for answer in answers]]))
"""


def test_transformers_pipeline_answers_from_the_export_folder_with_its_own_code(matcher_export, tmp_path):
    _, folder = matcher_export
    questions = sample_questions(12)
    done = subprocess.run([sys.executable, "-c", REMOTE_PIPELINE, str(folder), json.dumps(questions)],
                          cwd=tmp_path, capture_output=True, text=True, check=True)
    model_class, precision, answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert (model_class, precision) == ("OnnxQuestionAnsweringModel", "int8")
    assert answers == [answer["answer"] for answer in qa_pipeline.load_pipeline(str(folder))(questions)]


def test_int8_is_the_default_and_keeps_the_float32_argmax(matcher_export, tokenizer):
    """A random tiny model's logits are nearly flat, so its answers hang on near-ties and say little about int8;
    what int8 must keep is where the logits peak and how far the similarity moves the null logits. On 8 real sample
    windows the int8 graphs' start and end argmax agree with float32's on at least 7, no token logit moves by more
    than 5 % of the float32 logits' spread, and no null logit by more than 5 % of the largest similarity shift
    (the trained model's answer agreement is bench/bench_onnx.py's)."""
    _, folder = matcher_export
    assert qa_pipeline.load_pipeline(str(folder)).model.precision == "int8"
    float32, int8 = (OnnxQuestionAnsweringModel(folder, precision) for precision in ("float32", "int8"))
    inputs = window_batch(tokenizer, 8, 160)
    tokens = inputs["attention_mask"].bool()
    tokens[:, 0] = False
    reference, quantized = float32(**inputs), int8(**inputs)
    float32.matcher = None
    shift = (reference.start_logits[:, 0] - float32(**inputs).start_logits[:, 0]).abs().max().item()
    for name in ("start_logits", "end_logits"):
        expected, actual = getattr(reference, name), getattr(quantized, name)
        assert (expected.argmax(dim=1) == actual.argmax(dim=1)).float().mean().item() >= 7 / 8
        assert (expected - actual)[tokens].abs().max().item() < 0.05 * expected[tokens].std().item()
        assert (expected - actual)[:, 0].abs().max().item() < 0.05 * shift


def test_export_of_a_folder_that_is_not_a_model_is_one_line(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    missing = tmp_path / "missing"
    for source in (tmp_path, missing):
        assert export_onnx.main([str(source), str(tmp_path / "export")]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and str(source) in error
    assert not (tmp_path / "export").exists()


def test_export_into_the_model_folder_is_one_line(tiny_model_dir, capsys):
    config = (tiny_model_dir / "config.json").read_text()
    assert export_onnx.main([str(tiny_model_dir), str(tiny_model_dir)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "overwrite" in error
    assert (tiny_model_dir / "config.json").read_text() == config


def test_int8_asked_of_an_export_without_it_is_one_line(tmp_path, tokenizer, capsys):
    _, folder = exported(tmp_path, tokenizer)
    assert qa_pipeline.load_pipeline(str(folder)).model.precision == "float32"
    with pytest.raises(UserError, match="has no int8 model"):
        qa_pipeline.load_pipeline(str(folder), "int8")
    capsys.readouterr()
    status = qa_pipeline.main([str(folder), "--precision", "int8", "--question", "Who?", "--context", "Ann did."])
    error = capsys.readouterr().err
    assert status == 2 and error.count("\n") == 1 and "--int8" in error


def test_onnx_command_line_answers_like_the_pipeline(matcher_export, capsys):
    _, folder = matcher_export
    question = sample_questions(1)[0]
    status = qa_pipeline.main([str(folder), "--precision", "float32", "--question", question["question"],
                               "--context", question["context"]])
    printed = json.loads(capsys.readouterr().out)
    expected = qa_pipeline.load_pipeline(str(folder), "float32")(**question)
    assert status == 0 and printed["answer"]["answer"] == expected["answer"]
    assert np.isclose(printed["answer"]["score"], expected["score"])
